package ledger

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// TestPipelinedTxRollsBack checks that a pipelined transaction that fails,
// or is left open, is rolled back: nothing it wrote stays, and no pooled
// connection is left inside a transaction.
func TestPipelinedTxRollsBack(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	_, err := l.pool.Exec(ctx, `CREATE TABLE pipe_probe (n int PRIMARY KEY)`)
	require.NoError(t, err)
	tests := []struct {
		name    string
		queue   func(b *pgx.Batch)
		wantErr bool
		kept    int
	}{
		{"commits", func(b *pgx.Batch) { b.Queue("BEGIN"); b.Queue("INSERT INTO pipe_probe VALUES (1)"); b.Queue("COMMIT") }, false, 1},
		{"failing statement", func(b *pgx.Batch) {
			b.Queue("BEGIN")
			b.Queue("INSERT INTO pipe_probe VALUES (2)")
			b.Queue("INSERT INTO pipe_probe VALUES (1)") // duplicate key
			b.Queue("COMMIT")
		}, true, 1},
		{"left open", func(b *pgx.Batch) { b.Queue("BEGIN"); b.Queue("INSERT INTO pipe_probe VALUES (3)") }, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := l.pipelinedOnce(ctx, func(q batchSender) error {
				b := &pgx.Batch{}
				tc.queue(b)
				return q.SendBatch(ctx, b).Close()
			})
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			var n int
			require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM pipe_probe`).Scan(&n))
			require.Equal(t, tc.kept, n)
			// Every idle pooled connection is outside any transaction.
			for _, c := range l.pool.AcquireAllIdle(ctx) {
				require.Equal(t, byte('I'), c.Conn().PgConn().TxStatus())
				c.Release()
			}
		})
	}
	var pe *pgconn.PgError
	err = l.pipelinedOnce(ctx, func(q batchSender) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("INSERT INTO pipe_probe VALUES (1)")
		return q.SendBatch(ctx, b).Close()
	})
	require.ErrorAs(t, err, &pe)
	require.True(t, retryable(err), "a unique violation is retried by inPipelinedTx")
}

// TestSubmitRejectsForgedAmongCoalesced submits good transactions and one
// signed by a key that is not the terminal's, concurrently, so that some are
// coalesced and verified together (how many depends on timing; verifyAll's
// own fallback is TestVerifyAllFindsBadSignatures): the forged one is
// rejected and the good ones are recorded.
func TestSubmitRejectsForgedAmongCoalesced(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	cards := make([]*card, 8)
	for i := range cards {
		cards[i] = newCard(i + 1)
	}
	fund(t, l, 1000, cards...)

	raws := make([][]byte, len(cards))
	for i, c := range cards {
		raws[i] = bar.pay(t, c, 10)
	}
	// The last one is re-signed by another key.
	fs, err := terminaltx.Parse(raws[len(raws)-1])
	require.NoError(t, err)
	other := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	forged, err := terminaltx.Sign(&fs.Tx, other)
	require.NoError(t, err)
	raws[len(raws)-1] = forged.Bytes()

	res := make([]Result, len(raws))
	errs := make([]error, len(raws))
	var wg sync.WaitGroup
	for i, raw := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = l.Submit(ctx, org, raw)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	want := make([]string, len(raws))
	for i := range want {
		want[i] = "accepted"
	}
	want[len(want)-1] = "rejected"
	require.Equal(t, want, statuses(res))
	require.ErrorIs(t, res[len(res)-1].Err, terminaltx.ErrSignature)
	for _, c := range cards[:len(cards)-1] {
		info, err := l.Card(ctx, org, c.uid)
		require.NoError(t, err)
		require.Equal(t, int64(990), info.Balance)
	}
	requireInvariants(t, l)
}
