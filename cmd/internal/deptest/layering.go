package deptest

// Layering is the arrows of docs/architecture.md as rules: cmd → api →
// ledger, personalize, keys; personalize → keys; ledger → keys; and the
// clients that build alone, without the server, the database or cgo.
var Layering = []Rule{
	{
		Why:  "keys is the bottom layer: it knows no ledger, API, personalization or command",
		Pkgs: []string{"keys/...", "softhsm/..."},
		Bad:  []string{"ledger/...", "api/...", "personalize/...", "cmd/..."},
	},
	{
		Why:  "the ledger stands beside personalize, under api: it imports keys only",
		Pkgs: []string{"ledger/..."},
		Bad:  []string{"api/...", "personalize/...", "cmd/..."},
	},
	{
		Why:  "personalize stands beside the ledger, under api: it imports keys only",
		Pkgs: []string{"personalize/..."},
		// A test helper that starts a test database (ledger/pgcluster/pgtest)
		// and migrates it (ledger/migrations).
		Except: []string{"personalize/handover/internal/handovertest"},
		Bad:    []string{"ledger/...", "api/...", "cmd/..."},
	},
	{
		Why:  "the HQ console renders and guards: it asks the API for everything and runs no SQL and no HSM call itself",
		Pkgs: []string{"api/console"},
		Bad:  []string{"api", "ledger/...", "keys/...", "personalize/...", "github.com/jackc/...", "github.com/miekg/pkcs11/..."},
	},
	{
		Why:  "api serves the commands, never the other way",
		Pkgs: []string{"api/..."},
		Bad:  []string{"cmd/..."},
	},
	{
		Why: "clients (wire types, the reference terminal, the store client, the POS apps over them, the custody log's format, the offline auditor, " +
			"the software key derivations) " +
			"build with CGO_ENABLED=0 and without the server, the database or the HSM module",
		Pkgs: []string{
			"api/apitype",
			"api/blocklist",
			"api/terminal",
			"api/storeclient",
			"api/pos",
			"keys/keyderiv",
			"personalize/handover",
			"personalize/handover/audit",
		},
		Bad: []string{
			"api", "api/stack", "api/sim",
			"ledger", "ledger/migrations", "ledger/pgcluster/...",
			"keys",
			"personalize/batch", "personalize/station", "personalize/handover/handoverdb",
			"github.com/jackc/pgx/v5/...", "github.com/jackc/tern/v2/...",
			"github.com/ThalesIgnite/crypto11", "github.com/miekg/pkcs11",
		},
		NoCgo: true,
	},
}
