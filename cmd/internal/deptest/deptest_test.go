package deptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(string(out[:len(out)-1]))
}

// TestLayering holds the module to the arrows of docs/architecture.md.
func TestLayering(t *testing.T) {
	g, err := List(moduleRoot(t), "./...")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{Module + "/api/terminal", Module + "/personalize/handover/audit", Module + "/keys"} {
		if g[want] == nil {
			t.Fatalf("go list did not list %s", want)
		}
	}
	for _, v := range Check(g, Layering) {
		t.Error(v)
	}
}

// TestCgoFreeBuild builds the clients as a vendor would, without cgo.
func TestCgoFreeBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds packages")
	}
	cmd := exec.Command("go", "build", "./api/apitype", "./api/terminal/...", "./api/storeclient/...", "./keys/keyderiv/...",
		"./personalize/handover", "./personalize/handover/audit/...")
	cmd.Dir = moduleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
}

// TestCheckCatchesBrokenArrows runs the checker on made-up graphs in which
// one arrow is broken on purpose: each must be reported, and only it.
func TestCheckCatchesBrokenArrows(t *testing.T) {
	const m = Module + "/"
	pkg := func(path string, deps ...string) *Package { return &Package{ImportPath: path, Deps: deps} }
	// ok is the module as the rules want it.
	ok := func() Graph {
		return Graph{
			m + "cmd/loopcard":               pkg(m+"cmd/loopcard", m+"api", m+"ledger", m+"keys"),
			m + "api":                        pkg(m+"api", m+"ledger", m+"keys", m+"personalize/handover", "github.com/jackc/pgx/v5"),
			m + "api/terminal":               pkg(m+"api/terminal", m+"api/apitype", m+"keys/keyderiv", m+"ledger/terminaltx", "net"),
			m + "ledger":                     pkg(m+"ledger", m+"keys", "github.com/jackc/pgx/v5"),
			m + "keys":                       pkg(m+"keys", m+"keys/keyderiv", "github.com/miekg/pkcs11"),
			m + "personalize/handover":       pkg(m+"personalize/handover", m+"personalize"),
			m + "personalize/handover/audit": pkg(m+"personalize/handover/audit", m+"personalize/handover"),
			"github.com/miekg/pkcs11":        {ImportPath: "github.com/miekg/pkcs11", CgoFiles: []string{"pkcs11.go"}},
			"net":                            {ImportPath: "net", Standard: true, CgoFiles: []string{"cgo_unix.go"}},
			"some.example/cgolib":            {ImportPath: "some.example/cgolib", CgoFiles: []string{"c.go"}},
		}
	}
	tests := []struct {
		name   string
		break_ func(g Graph)
		want   []string // "pkg -> dep" of each violation, in order
	}{
		{"none", func(Graph) {}, nil},
		{"terminal imports the server", func(g Graph) {
			g[m+"api/terminal"].Deps = append(g[m+"api/terminal"].Deps, m+"api")
		}, []string{"api/terminal -> api"}},
		{"terminal links pgx through the ledger", func(g Graph) {
			g[m+"api/terminal"].Deps = append(g[m+"api/terminal"].Deps, m+"ledger", "github.com/jackc/pgx/v5")
		}, []string{"api/terminal -> ledger", "api/terminal -> github.com/jackc/pgx/v5"}},
		{"auditor links a cgo package", func(g Graph) {
			g[m+"personalize/handover/audit"].Deps = append(g[m+"personalize/handover/audit"].Deps, "some.example/cgolib")
		}, []string{"personalize/handover/audit -> some.example/cgolib"}},
		{"personalize imports the ledger", func(g Graph) {
			g[m+"personalize/station"] = pkg(m+"personalize/station", m+"keys", m+"ledger")
		}, []string{"personalize/station -> ledger"}},
		{"the custody log's format links the database", func(g Graph) {
			g[m+"personalize/handover"].Deps = append(g[m+"personalize/handover"].Deps, m+"personalize/batch", "github.com/jackc/pgx/v5")
		}, []string{"personalize/handover -> personalize/batch", "personalize/handover -> github.com/jackc/pgx/v5"}},
		{"a test helper of personalize may migrate with the ledger", func(g Graph) {
			g[m+"personalize/handover/internal/handovertest"] = pkg(m+"personalize/handover/internal/handovertest", m+"ledger")
		}, nil},
		{"ledger imports the station", func(g Graph) {
			g[m+"ledger"].Deps = append(g[m+"ledger"].Deps, m+"personalize/station")
		}, []string{"ledger -> personalize/station"}},
		{"keys imports the API", func(g Graph) {
			g[m+"keys"].Deps = append(g[m+"keys"].Deps, m+"api/apitype")
		}, []string{"keys -> api/apitype"}},
		{"api imports a command", func(g Graph) {
			g[m+"api"].Deps = append(g[m+"api"].Deps, m+"cmd/internal/runbook")
		}, []string{"api -> cmd/internal/runbook"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := ok()
			tc.break_(g)
			var got []string
			for _, v := range Check(g, Layering) {
				short := func(p string) string {
					if len(p) > len(m) && p[:len(m)] == m {
						return p[len(m):]
					}
					return p
				}
				got = append(got, short(v.Pkg)+" -> "+short(v.Dep))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"api", Module + "/api", true},
		{"api", Module + "/api/terminal", false},
		{"api/...", Module + "/api", true},
		{"api/...", Module + "/api/terminal", true},
		{"api/...", Module + "/apitype", false},
		{"github.com/jackc/pgx/v5/...", "github.com/jackc/pgx/v5/pgxpool", true},
		{"github.com/jackc/pgx/v5/...", "github.com/jackc/pgx/v4", false},
	} {
		if got := match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}
