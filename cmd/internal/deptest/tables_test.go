package deptest

import (
	"go/token"
	"slices"
	"testing"

	"github.com/loopcard/loopcard/ledger/migrations"
)

func knownTable(t string) bool {
	_, ok := migrations.Owner(t)
	return ok
}

// TestTablesOwned holds the module to one owner per table
// (ledger/migrations/owners.go): no package runs SQL over another's
// tables.
func TestTablesOwned(t *testing.T) {
	refs, err := ModuleTables(moduleRoot(t), knownTable)
	if err != nil {
		t.Fatal(err)
	}
	// The scan must see each owner's own SQL, or it proves nothing.
	seen := map[string]bool{}
	for _, r := range refs {
		seen[r.Pkg] = true
	}
	for _, pkg := range []string{"ledger", "personalize/batch", "personalize/handover/handoverdb", "api"} {
		if !seen[pkg] {
			t.Errorf("found no table in the SQL of %s", pkg)
		}
	}
	for _, v := range CheckTables(refs, migrations.Owner, TableExceptions) {
		t.Error(v)
	}
}

// TestCheckTablesCatchesForeignSQL runs the scan and the check on made-up
// files, some of which query another package's table on purpose.
func TestCheckTablesCatchesForeignSQL(t *testing.T) {
	tests := []struct {
		name, pkg, src string
		want           []string // the tables reported
	}{
		{"api reads its own table", "api", "package api\nconst q = `SELECT role FROM api_tokens WHERE token_hash = $1`\n", nil},
		{"api reads the ledger's cards", "api", "package api\nconst q = `SELECT balance FROM cards WHERE org_id = $1`\n", []string{"cards"}},
		{"api joins batch tables", "api", "package api\nfunc f() { q(`SELECT b.layout FROM batch_cards c\n\t\tJOIN card_batches b ON b.batch_no = c.batch_no`) }\n",
			[]string{"batch_cards", "card_batches"}},
		{"a station writes the ledger's topups", "personalize/station", "package station\nconst q = \"INSERT INTO topups (org_id) VALUES ($1)\"\n", []string{"topups"}},
		{"the ledger updates a batch", "ledger", "package ledger\nconst q = `UPDATE batch_cards SET status = 'done'`\n", []string{"batch_cards"}},
		{"copy into another's table", "api", "package api\nvar t = pgx.Identifier{\"handover_entries\"}\n", []string{"handover_entries"}},
		{"the owner's sub-package", "personalize/handover/handoverdb", "package handoverdb\nvar t = pgx.Identifier{\"handover_entries\"}\n", nil},
		{"a component that only shares a prefix", "personalize/batchx", "package batchx\nconst q = `SELECT 1 FROM batch_cards`\n", []string{"batch_cards"}},
		{"prose and comments are not SQL", "api", "package api\n// SELECT * FROM cards\nconst msg = \"money from cards and refunds\"\n", nil},
		{"aliases and functions are not tables", "api", "package api\nconst q = `SELECT extract(epoch FROM at) FROM api_audit a JOIN api_alerts x ON true`\n", nil},
		{"an exception", "cmd/loopcard/fake", "package fake\nconst q = `SELECT * FROM cards`\n", nil},
	}
	except := []TableException{{Pkg: "cmd/loopcard/fake", Table: "*", Why: "made up for this test"}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			refs, err := FileTables(token.NewFileSet(), tc.pkg+"/x.go", tc.src, knownTable)
			if err != nil {
				t.Fatal(err)
			}
			for i := range refs {
				refs[i].Pkg = tc.pkg
			}
			var got []string
			for _, v := range CheckTables(refs, migrations.Owner, except) {
				got = append(got, v.Ref.Table)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSQLTables(t *testing.T) {
	got := SQLTables(`WITH x AS (SELECT 1) SELECT * FROM ONLY public.cards c LEFT JOIN "topups" t ON true;
		DELETE FROM api_nonces; COPY terminal_txs (a) FROM STDIN; TRUNCATE TABLE events; LOCK TABLE stores`)
	want := []string{"cards", "topups", "api_nonces", "terminal_txs", "events", "stores"}
	if !slices.Equal(got, want) {
		t.Errorf("SQLTables = %q, want %q", got, want)
	}
}
