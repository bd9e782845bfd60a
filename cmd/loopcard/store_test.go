package main

import (
	"context"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loopcard/loopcard/softhsm"
)

// The store commands with the store's key in its own PKCS#11 token
// (testdata/store): HQ's hierarchy in one SoftHSM2 token, the store's key in
// a second one, a real PostgreSQL; keygen, enrol, receive and card events
// signed in the store's token, and an export that verifies.
func TestStoreCLI(t *testing.T) {
	module, err := softhsm.ModulePath()
	if err != nil {
		t.Fatalf("%v", err)
	}
	// Every token before any HSM opens (the scripts' processes open them).
	hqURI := softhsm.NewTestToken(t)
	storeURI := softhsm.NewTestToken(t)
	otherURI := softhsm.NewTestToken(t)
	cluster := pgtest.Cluster(t)
	n := 0
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/store",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			n++
			db := "store" + string(rune('0'+n))
			if err := cluster.CreateDatabase(context.Background(), db); err != nil {
				return err
			}
			env.Setenv("MODULE", module)
			env.Setenv(softhsm.ConfEnv, os.Getenv(softhsm.ConfEnv))
			env.Setenv("LOOPCARD_HSM", hqURI)
			env.Setenv("STORE_HSM", storeURI)
			env.Setenv("OTHER_HSM", otherURI)
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			env.Setenv("LOOPCARD_DATABASE_URL", cluster.URL(db))
			return nil
		},
	})
}
