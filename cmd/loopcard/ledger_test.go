package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loopcard/loopcard/ledger/pgcluster"
)

// The ledger, report, backup and restore commands against a private PostgreSQL given by
// LOOPCARD_DATABASE_URL, and once against the embedded default.
func TestLedgerCLI(t *testing.T) {
	dir, err := os.MkdirTemp("", "lcledger-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir + "/pg"})
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = cl.Stop() })
	for _, db := range []string{"ledgercli", "backupsrc", "backupdst"} {
		if err := cl.CreateDatabase(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/ledger",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			data, err := os.MkdirTemp(dir, "data-")
			if err != nil {
				return err
			}
			if err := os.Chmod(data, 0o711); err != nil {
				return err
			}
			env.Setenv("EMBEDDED_DATA_DIR", data)
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			env.Setenv("DBURL", cl.URL("ledgercli"))
			env.Setenv("SRCURL", cl.URL("backupsrc"))
			env.Setenv("DSTURL", cl.URL("backupdst"))
			return nil
		},
	})
}
