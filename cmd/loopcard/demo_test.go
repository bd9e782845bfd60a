package main

import (
	"context"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// demoScript runs `loopcard demo` and `loopcard terminal simulate` as a
// user would, small, against the embedded SoftHSM2 and a real PostgreSQL,
// and checks their output and their refusals.
const demoScript = `
! exec loopcard demo extra
stderr 'demo takes no arguments'

exec loopcard demo --json --cards 6 --taps 5 --seed 7
stderr '== key ceremony'
stderr 'pending load'
stdout '"cards_issued": 6'
stdout '"cards_recorded": 6'
stdout '"blocked": true'
stdout '"sum": 0'
exists $LOOPCARD_DATA_DIR/demo/summary.json
exists $LOOPCARD_DATA_DIR/demo/labels-batch-1.pdf

exec loopcard demo --cards 6 --taps 3
stdout 'payments taken \d+, counted by the ledger \d+'
stdout 'audit export verified true'
stdout 'organizer 2, event'
stdout 'labels_pdf +\S+labels-batch-1.pdf'

exec loopcard terminal simulate --terminals 2 --taps 10 --cards-per-terminal 1 --json
stdout '"taps": 20'
stdout '"recorded": 20'
stdout '"cards_mismatched": 0'
exec loopcard terminal simulate --terminals 2 --taps 10 --restart-every 5
stdout '16 taps at \d+ taps/s, 4 restarts'
stdout ', 0 cards differ'

! exec loopcard terminal status --event e --merchant m
stderr 'state is required'
! exec loopcard terminal enrol --terminal t1 --state $WORK/t1 --ca $LOOPCARD_DATA_DIR/demo-ca.pem
stderr 'no enrolment token'
`

func TestDemoCLI(t *testing.T) {
	cluster := pgtest.Cluster(t)
	if err := cluster.CreateDatabase(context.Background(), "democli"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "demo.txtar"), []byte(demoScript), 0o600); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			env.Setenv("LOOPCARD_DATABASE_URL", cluster.URL("democli"))
			return nil
		},
	})
}
