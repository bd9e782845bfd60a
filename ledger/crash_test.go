package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

const crashHelperEnv = "LOOPCARD_LEDGER_CRASH_HELPER"

// crashHelper is the process the crash test kills: it uploads the batch file
// named by the environment, in random batches, over and over.
func crashHelper() int {
	ctx := context.Background()
	body, err := os.ReadFile(os.Getenv("LOOPCARD_LEDGER_CRASH_FILE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	txs, err := terminaltx.SplitBatch(body)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	pool, err := pgxpool.New(ctx, os.Getenv(crashHelperEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	l := New(pool, Options{})
	done := make(chan error, 4)
	for w := range 4 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(os.Getpid()+w), uint64(time.Now().UnixNano())))
			for {
				n := 1 + r.IntN(40)
				start := r.IntN(len(txs))
				batch := txs[start:min(len(txs), start+n)]
				if _, err := l.Upload(ctx, org, batch); err != nil {
					done <- err
					return
				}
			}
		}()
	}
	fmt.Fprintln(os.Stderr, <-done)
	return 1
}

// TestCrashRecovery kills the uploading process with SIGKILL at random
// moments, restarts it, and finally uploads everything again: nothing is
// lost and nothing is counted twice.
func TestCrashRecovery(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	terms := []*terminal{newTerminal(t, l, "t-1", "bar"), newTerminal(t, l, "t-2", "food")}
	cards := make([]*card, 30)
	for i := range cards {
		cards[i] = newCard(i + 1)
	}
	fund(t, l, 100_000, cards...)
	var body []byte
	var all [][]byte
	want := map[string]int64{}
	for i := range 20 {
		for j, c := range cards {
			tm := terms[(i+j)%2]
			amt := int64(1 + (i+j)%50)
			raw := tm.pay(t, c, amt)
			want[tm.merchant] += amt
			all = append(all, raw)
			body = append(body, byte(len(raw)>>8), byte(len(raw)))
			body = append(body, raw...)
		}
	}
	file := filepath.Join(t.TempDir(), "batch")
	require.NoError(t, os.WriteFile(file, body, 0o600))
	exe, err := os.Executable()
	require.NoError(t, err)
	url := l.pool.Config().ConnString()

	r := rand.New(rand.NewPCG(5, 6))
	for round := range 4 {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashHelperEnv+"="+url, "LOOPCARD_LEDGER_CRASH_FILE="+file)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(100+r.IntN(300)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err := cmd.Wait()
		require.Error(t, err, "round %d: the helper should have been killed", round)
		requireInvariants(t, l)
	}
	var before int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM terminal_txs`).Scan(&before))
	t.Logf("recorded before the final upload: %d of %d", before, len(all))

	res, err := l.Upload(ctx, org, all)
	require.NoError(t, err)
	for _, x := range res {
		require.Contains(t, []Status{Accepted, Duplicate}, x.Status)
	}
	res, err = l.Upload(ctx, org, all)
	require.NoError(t, err)
	for _, x := range res {
		require.Equal(t, Duplicate, x.Status)
	}
	for _, c := range cards {
		b, err := l.CardBalance(ctx, org, c.uid)
		require.NoError(t, err)
		require.Equal(t, c.bal, b)
	}
	for m, v := range want {
		b, err := l.Balance(ctx, org, Merchant, m)
		require.NoError(t, err)
		require.Equal(t, v, b)
	}
	var n int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM terminal_txs WHERE status = 'posted'`).Scan(&n))
	require.Equal(t, int64(len(all)), n)
	require.Empty(t, alertKinds(t, l))
	requireInvariants(t, l)
}
