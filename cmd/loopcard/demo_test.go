package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/cmd/internal/runbook"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
)

// TestRunbookEndToEnd runs `loopcard demo` — the runbook of
// docs/run-an-event.md — as a separate process of this binary, which runs
// every step as a process of its own: serve, a private pcscd with a vpcd
// reader, `loopcard vcard` cards, the station, the store client, two
// terminals of different merchants, Chromium on the card page. It checks
// every figure the issue asks for from the run's summary and its files.
func TestRunbookEndToEnd(t *testing.T) {
	for _, tool := range []string{"pcscd", "chromium"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install %s (scripts/setup does)", tool, tool)
		}
	}
	dir := t.TempDir()
	// The embedded PostgreSQL runs as the postgres user when the test runs
	// as root: it must be able to enter the data directory.
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "--data-dir", dir, "demo", "--json", "--cards", "10", "--taps", "4", "--seed", "16", "--require-browser")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	log, _ := os.ReadFile(filepath.Join(dir, "demo-commands.log"))
	require.NoError(t, err, "stderr:\n%s\ncommands' log (end):\n%s", stderr.String(), tail(string(log), 4000))
	t.Logf("the runbook took %s", time.Since(start))

	var s runbook.Summary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &s), stdout.String())
	// The commentary shows each command as an operator types it.
	require.Contains(t, stderr.String(), "$ loopcard personalize --batch 1 --reader 'vpcd 00 00'")
	require.Contains(t, stderr.String(), "$ loopcard store sell --reader 'vpcd 00 00'")
	require.Contains(t, stderr.String(), "$ loopcard terminal register --terminal food-1 --merchant food")

	// 10 cards personalized through pcscd, each registered in the ledger.
	require.Equal(t, 10, s.CardsIssued)
	require.Equal(t, 10, s.CardsRecorded)
	// Handed to two stores, all but one each sold with cash credit.
	require.Equal(t, 8, s.CardsSold)
	require.Len(t, s.Stores, 2)
	for _, d := range s.Stores {
		require.Equal(t, 5, d.Received, d.Store)
		require.Equal(t, 4, d.Sold, d.Store)
		require.Equal(t, 1, d.InStock, d.Store)
		require.Equal(t, int64(4*(runbook.Deposit+runbook.Credit)), d.CashCounted, d.Store)
		require.Equal(t, d.CashCounted, d.CashExpected, d.Store)
		require.True(t, d.Balanced, d.Store)
	}
	// Two terminals of different merchants took payments, each counted
	// once; the clone's payment is held and its card blocked.
	require.Len(t, s.Terminals, 2)
	require.NotEqual(t, s.Terminals[0].Merchant, s.Terminals[1].Merchant)
	for _, tm := range s.Terminals {
		require.Positive(t, tm.Taken, tm.ID)
	}
	require.Equal(t, s.Taken, s.Counted)
	require.Equal(t, 1, s.Ledger.Held)
	require.Equal(t, "clone", s.Clone.Alert)
	require.True(t, s.Clone.Blocked)
	// The online top-up was pending until a tap wrote it; the card page in
	// Chromium shows what the card holds.
	require.Equal(t, int64(runbook.TopUp), s.Online.PendingBefore)
	require.Equal(t, s.Online.CardBalance, s.Online.LedgerBalance)
	require.True(t, s.Online.PageShows)
	// Auto top-up: one charge, written at the tap that triggered it.
	require.Equal(t, s.Online.CardBalance, s.Auto.Before)
	require.Equal(t, s.Auto.Before+runbook.AutoAmount-300, s.Auto.CardBalance)
	require.Equal(t, s.Auto.CardBalance, s.Auto.LedgerBalance)
	require.Equal(t, 1, s.Auto.Charges)
	require.True(t, s.Auto.PageShowsCharge)
	png, err := os.ReadFile(s.Files["card_page"])
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG")), "the screenshot is a PNG")
	// The refund is in a pain.001 file.
	require.Positive(t, s.Refund.Amount)
	require.Equal(t, 1, s.Refund.Refunds)
	x, err := os.ReadFile(s.Refund.Payout)
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(x, new(struct{})), "the payout file is XML")
	require.Contains(t, string(x), "pain.001")
	// The audit export verifies against the pinned key; the ledger verifies.
	require.True(t, s.Audit.Verified)
	require.True(t, s.Ledger.Verified)
	// Every card read from the card equals the ledger.
	require.Len(t, s.Cards, 10)
	require.True(t, s.Agree(), "%+v", s.Cards)

	// Issue 17 L7: the print files are the only copy of the tokens and
	// PINs; no other file the demo leaves holds one (a spool once did).
	secrets := printedSecrets(t, s.Files["labels_csv"])
	require.Len(t, secrets, 20)
	print := map[string]bool{s.Files["labels_csv"]: true, s.Files["labels_pdf"]: true}
	files := 0
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || print[path] {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a socket or a file of the database's own user
		}
		files++
		for _, sec := range secrets {
			require.False(t, bytes.Contains(b, []byte(sec)), "%s holds a token or PIN of the print file", path)
		}
		return nil
	}))
	require.Positive(t, files)

	// The HQ console on the installation the event left (issue 20).
	walkRunbookConsole(t, filepath.Join(dir, "demo"), s)
}

// printedSecrets reads the label CSV (number, URL ending in the token,
// PIN) and returns each token, and each PIN with its card number as a
// label row holds them.
func printedSecrets(t *testing.T, path string) []string {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	var out []string
	for _, row := range rows[1:] {
		require.Len(t, row, 3)
		out = append(out, row[1][strings.LastIndexByte(row[1], '/')+1:], row[0]+","+row[1]+","+row[2])
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// simulateScript runs `loopcard terminal simulate` as a user would, small,
// against the embedded SoftHSM2 and a real PostgreSQL, and the demo's and
// terminals' refusals.
const simulateScript = `
! exec loopcard demo extra
stderr 'demo takes no arguments'

exec loopcard terminal simulate --terminals 2 --taps 10 --cards-per-terminal 1 --json
stdout '"taps": 20'
stdout '"recorded": 20'
stdout '"cards_mismatched": 0'
# The labels were kept in memory only: the station's spool, a second copy
# of every token and PIN, is gone (issue 17 L7).
exists $WORK/data/sim
! exists $WORK/data/sim/batch-1-spool.csv
exec loopcard terminal simulate --terminals 2 --taps 10 --restart-every 5
stdout '16 taps at \d+ taps/s, 4 restarts'
stdout ', 0 cards differ'

! exec loopcard terminal status
stderr 'state is required'
! exec loopcard terminal enrol --terminal t1 --state $WORK/t1 --ca $WORK/none.pem
stderr 'CA file'
`

func TestSimulateCLI(t *testing.T) {
	cluster := pgtest.Cluster(t)
	if err := cluster.CreateDatabase(context.Background(), "simcli"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "simulate.txtar"), []byte(simulateScript), 0o600); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			env.Setenv("LOOPCARD_DATABASE_URL", cluster.URL("simcli"))
			return nil
		},
	})
}
