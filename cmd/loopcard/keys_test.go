package main

import (
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"os"
	"testing"

	"github.com/loopcard/loopcard/softhsm"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run "loopcard" as a subprocess of the test
// binary that calls run: every command of a script gets a fresh process,
// so each can point SOFTHSM2_CONF at its own data directory.
func TestMain(m *testing.M) {
	testscript.Main(stopPostgresAfter{m}, map[string]func(){
		"loopcard": func() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) },
	})
}

// stopPostgresAfter stops the test binary's shared PostgreSQL (pgtest)
// once the tests have run.
type stopPostgresAfter struct{ m *testing.M }

func (s stopPostgresAfter) Run() int {
	code := s.m.Run()
	pgtest.Stop()
	return code
}

// The keys subcommands against the embedded SoftHSM2 default under a
// temporary --data-dir: every subcommand, --json, and bad input.
func TestKeysCLI(t *testing.T) {
	module, err := softhsm.ModulePath()
	if err != nil {
		t.Fatalf("%v", err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/keys",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("MODULE", module)
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			// No PostgreSQL: the HSM's commands run and say that they are in
			// no audit log (TestCLIAuditedHSM records them in one).
			env.Setenv("LOOPCARD_PG_BINDIR", env.WorkDir+"/no-postgresql")
			return nil
		},
	})
}
