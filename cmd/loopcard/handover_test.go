package main

import (
	"context"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loopcard/loopcard/softhsm"
)

// The store, handover and audit commands end to end (testdata/handover):
// embedded SoftHSM2 with hq-sign, a real PostgreSQL, a batch personalized
// on virtual cards, store keys in files, an export verified, then
// tampered with.
func TestHandoverCLI(t *testing.T) {
	module, err := softhsm.ModulePath()
	if err != nil {
		t.Fatalf("%v", err)
	}
	cluster := pgtest.Cluster(t)
	n := 0
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/handover",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			n++
			db := "handover" + strconv.Itoa(n)
			if err := cluster.CreateDatabase(context.Background(), db); err != nil {
				return err
			}
			env.Setenv("MODULE", module)
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			env.Setenv("LOOPCARD_DATABASE_URL", cluster.URL(db))
			env.Setenv("TODAY", time.Now().UTC().Format(time.DateOnly))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// filemode FILE PERM checks a file's permission bits.
			"filemode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: filemode FILE PERM")
				}
				st, err := os.Stat(ts.MkAbs(args[0]))
				ts.Check(err)
				want, err := strconv.ParseUint(args[1], 8, 32)
				ts.Check(err)
				if got := st.Mode().Perm(); (got == os.FileMode(want)) == neg {
					ts.Fatalf("%s has mode %04o, want %04o", args[0], got, want)
				}
			},
			// replace FILE OLD NEW replaces the first OLD in FILE by NEW.
			"replace": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 3 || neg {
					ts.Fatalf("usage: replace FILE OLD NEW")
				}
				p := ts.MkAbs(args[0])
				b, err := os.ReadFile(p)
				ts.Check(err)
				s := string(b)
				i := indexOf(s, args[1])
				if i < 0 {
					ts.Fatalf("%s does not contain %q", args[0], args[1])
				}
				ts.Check(os.WriteFile(p, []byte(s[:i]+args[2]+s[i+len(args[1]):]), 0o644))
			},
			// rmglob DIR PATTERN removes the files of DIR matching PATTERN.
			"rmglob": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: rmglob DIR PATTERN")
				}
				m, err := filepath.Glob(filepath.Join(ts.MkAbs(args[0]), args[1]))
				ts.Check(err)
				if len(m) == 0 {
					ts.Fatalf("nothing matches %s", args[1])
				}
				for _, p := range m {
					ts.Check(os.Remove(p))
				}
			},
		},
	})
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
