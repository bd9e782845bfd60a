package main

import (
	"context"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loopcard/loopcard/softhsm"
)

// batchScripts drive batch and personalize end to end: embedded SoftHSM2,
// a real PostgreSQL, in-process virtual cards, label files checked with
// pdfinfo and for mode 0600.
var batchScripts = map[string]string{
	"batch.txtar": `
exec loopcard keys init

# The station registers each card under the batch's event: the ledger must
# know the event before a batch of it exists.
! exec loopcard batch create --event summer-2026 --count 12
stderr '^loopcard: unknown event "summer-2026" of organizer 1: add it with ''loopcard ledger event --event summer-2026 --name NAME''$'
! stdout .
exec loopcard batch list --json
stdout '^\[\]$'
exec loopcard ledger event --event summer-2026 --name 'Summer 2026'
exec loopcard batch create --event summer-2026 --count 12
stdout '^1$'
exec loopcard batch create --event summer-2026 --count 2 --json
stdout '"batch": 2'
stdout '"status": "open"'
exec loopcard batch list
stdout '^BATCH +EVENT +COUNT +DONE +STATUS +CREATED$'
stdout '^2 +summer-2026 +2 +0 +open '
stdout '^1 +summer-2026 +12 +0 +open '

# Virtual cards are kept as vcard state files, or refused.
! exec loopcard personalize --batch 1 --reader virtual --labels labels.pdf
stderr '^loopcard: --reader virtual needs --cards DIR: without it the virtual cards are lost'
! exists labels.pdf
ledgercards summer-2026 0
exec loopcard personalize --batch 1 --reader virtual --cards cards --labels labels.pdf --csv labels.csv
stdout '^batch 1: 12 of 12 cards done$'
stderr '12/12 card 1-00012 personalized'
stderr '^loopcard: 12 virtual cards kept in cards \(one UID.json each\); put one into a vpcd slot with ''loopcard vcard --state cards/04[0-9A-F]{12}.json --port PORT''$'
filecount cards 12
ledgercards summer-2026 12
stderr 'wrote labels.pdf: 12 labels with the PINs in clear \(mode 0600\); print it, then destroy it'
stderr 'wrote labels.csv: 12 labels'
mode labels.pdf 0600
mode labels.csv 0600
grep -count=12 '(?m)^1-[0-9]{5},' labels.csv
grep '^card_number,url,pin$' labels.csv
grep '^1-00007,https://localhost:8443/c/[A-Za-z0-9_-]{22},[0-9]{6}$' labels.csv
exec pdfinfo labels.pdf
stdout 'Pages: +2'

exec loopcard batch show 1
stdout '^batch 1 of organizer 1: event summer-2026, 12 cards, 12 done, 0 reserved, complete$'
stdout '^1-00012 +04[0-9A-F]{12} +done '
exec loopcard batch show 1 --json
stdout '"status": "complete"'
stdout '"card_number": "1-00001"'

# The PINs of a finished batch exist nowhere else: no second print.
! exec loopcard personalize --batch 1 --reader virtual --cards cards --labels again.pdf
stderr '^loopcard: batch 1 is complete and its labels were written when it was finished; the PINs exist nowhere else and cannot be printed again$'
! exists again.pdf

exec loopcard personalize --batch 2 --reader virtual --cards cards2 --labels cards.pdf --sheet card --public-url https://pay.example.com/c/ --json
stdout '^\{"type":"card","uid":"04[0-9A-F]{12}","card_number":"2-00001","slot":1,"outcome":"personalized","batch_complete":false,"done":1,"count":2\}$'
stdout '"batch_complete":true'
stdout '"type": "summary"'
stdout '"status": "complete"'
stdout '"card_files": \[\n +"cards2/04[0-9A-F]{12}.json",\n +"cards2/04[0-9A-F]{12}.json"\n +\]'
filecount cards2 2
ledgercards summer-2026 14
! exists cards.spool.csv
exec pdfinfo cards.pdf
stdout 'Pages: +2'
stdout 'Page size: +242.65 x 153.07 pts'
`,
	"crash.txtar": `
# The station process is killed in the middle of a batch; the rerun
# finishes it: every card recorded once, one label per card.
exec loopcard keys init
exec loopcard ledger event --event summer-2026 --name 'Summer 2026'
exec loopcard batch create --event summer-2026 --count 120
! exec loopcard personalize --batch 1 --reader virtual --cards cards --csv labels.csv &station&
waitdone 1 15
kill -KILL station
wait station
exec loopcard personalize --batch 1 --reader virtual --cards cards --csv labels.csv --labels labels.pdf
stdout '^batch 1: 120 of 120 cards done$'
ledgercards summer-2026 120
grep -count=120 '(?m)^1-[0-9]{5},https://' labels.csv
mode labels.csv 0600
exec pdfinfo labels.pdf
stdout 'Pages: +12'
exec loopcard batch show 1
stdout ', 120 done, 0 reserved, complete$'
# Flags before and after the argument (flagsFirst).
exec loopcard batch show --organizer 1 1 --json
stdout '"status": "complete"'
exec loopcard batch show 1 --organizer 1 --json
stdout '"status": "complete"'
`,
	"badinput.txtar": `
! exec loopcard batch create --event 'bad event' --count 2
stderr '^loopcard: invalid batch: event "bad event": use 1 to 32 letters, digits'
! exec loopcard batch create --event e --count 0
stderr '^loopcard: invalid batch: count 0: a batch holds 1 to 99999 cards$'
! exec loopcard batch create --event e --count 2 --layout layout.json
stderr 'system identifier is 2 bytes, want 6 to 21'
! exec loopcard batch show 99
stderr '^loopcard: batch not found: batch 99 of organizer 1$'
! exec loopcard batch show x
stderr '^loopcard: invalid batch: batch "x" is not a batch number$'
! exec loopcard batch show
stderr '^loopcard: usage: loopcard batch show BATCH \[--json\]$'
! exec loopcard batch show 1 2
stderr '^loopcard: usage: loopcard batch show BATCH \[--json\]$'
! exec loopcard batch show 1 --organizer
stderr '^loopcard: flag --organizer needs a value: usage: loopcard batch show BATCH$'
! exec loopcard batch show 1 --colour
stderr '^loopcard: unknown flag --colour: usage: loopcard batch show BATCH$'
! exec loopcard batch create --event nosuch --count 2
stderr '^loopcard: unknown event "nosuch" of organizer 1: add it with ''loopcard ledger event --event nosuch --name NAME''$'
! exec loopcard batch create --organizer 2 --event nosuch --count 2
stderr '^loopcard: unknown event "nosuch" of organizer 2: add it with ''loopcard ledger event --organizer 2 --event nosuch --name NAME''$'
! exec loopcard personalize --batch 1 --reader virtual
stderr '^loopcard: name --labels FILE.pdf or --csv FILE.csv: the PINs are printed there and stored nowhere else$'
! exec loopcard personalize --batch 1 --reader virtual --cards c --csv x.csv --public-url ftp://x/
stderr 'public URL "ftp://x/" must be an http\(s\) URL'
! exec loopcard personalize --batch 7 --reader virtual --cards c --csv x.csv
stderr '^loopcard: batch not found: batch 7 of organizer 1$'
! exec loopcard personalize --batch 7 --reader 'some reader' --cards c --csv x.csv
stderr '^loopcard: --cards is for --reader virtual: real cards keep themselves$'
exec loopcard batch list --json
stdout '^\[\]$'

-- layout.json --
{"system_id": "LC"}
`,
}

func atoi(ts *testscript.TestScript, s string) int {
	n, err := strconv.Atoi(s)
	ts.Check(err)
	return n
}

func TestBatchCLI(t *testing.T) {
	module, err := softhsm.ModulePath()
	if err != nil {
		t.Fatalf("%v", err)
	}
	cluster := pgtest.Cluster(t)
	scripts := t.TempDir()
	for name, body := range batchScripts {
		if err := os.WriteFile(filepath.Join(scripts, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Scripts run in parallel: each gets its own database.
	var n atomic.Int64
	testscript.Run(t, testscript.Params{
		Dir:                 scripts,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			db := "cli" + strconv.FormatInt(n.Add(1), 10)
			if err := cluster.CreateDatabase(context.Background(), db); err != nil {
				return err
			}
			env.Setenv("MODULE", module)
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			env.Setenv("LOOPCARD_DATABASE_URL", cluster.URL(db))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitdone BATCH N waits until N cards of the batch are done.
			"waitdone": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: waitdone BATCH N")
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				conn, err := pgx.Connect(ctx, ts.Getenv("LOOPCARD_DATABASE_URL"))
				ts.Check(err)
				defer conn.Close(ctx)
				for {
					var done int
					err := conn.QueryRow(ctx, `SELECT done_count FROM card_batches WHERE org_id = 1 AND batch_no = $1`, args[0]).Scan(&done)
					if err == nil && done >= atoi(ts, args[1]) {
						return
					}
					select {
					case <-ctx.Done():
						ts.Fatalf("batch %s: %d cards done, not %s: %v", args[0], done, args[1], err)
					case <-time.After(20 * time.Millisecond):
					}
				}
			},
			// ledgercards EVENT N checks that the ledger holds N cards of
			// the event.
			"ledgercards": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: ledgercards EVENT N")
				}
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, ts.Getenv("LOOPCARD_DATABASE_URL"))
				ts.Check(err)
				defer conn.Close(ctx)
				var n int
				ts.Check(conn.QueryRow(ctx, `SELECT count(*) FROM cards WHERE org_id = 1 AND event_id = $1`, args[0]).Scan(&n))
				if n != atoi(ts, args[1]) {
					ts.Fatalf("the ledger holds %d cards of %s, want %s", n, args[0], args[1])
				}
			},
			// filecount DIR N checks that DIR holds N files.
			"filecount": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 || neg {
					ts.Fatalf("usage: filecount DIR N")
				}
				es, err := os.ReadDir(ts.MkAbs(args[0]))
				ts.Check(err)
				if len(es) != atoi(ts, args[1]) {
					ts.Fatalf("%s holds %d files, want %s", args[0], len(es), args[1])
				}
			},
			// mode FILE PERM checks a file's permission bits.
			"mode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: mode FILE PERM")
				}
				st, err := os.Stat(ts.MkAbs(args[0]))
				ts.Check(err)
				want, err := strconv.ParseUint(args[1], 8, 32)
				ts.Check(err)
				if got := st.Mode().Perm(); (got == os.FileMode(want)) == neg {
					ts.Fatalf("%s has mode %04o, want %s%04o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
				}
			},
		},
	})
}
