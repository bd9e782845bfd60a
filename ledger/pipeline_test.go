package ledger

import (
	"context"
	"crypto/ed25519"
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

// TestPreVerifiedCheckedAgainstCurrentKey checks that a signature verified
// before queueing (Submit) counts only if it was verified against the
// terminal's current key.
func TestPreVerifiedCheckedAgainstCurrentKey(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 1000, c)

	good := bar.pay(t, c, 10)
	gs, err := terminaltx.Parse(good)
	require.NoError(t, err)

	// Signed by another key, "verified" against that key: not the terminal's.
	other := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	forged := gs.Tx
	forged.ID, forged.TerminalSeq, forged.CardSeq = testID(), forged.TerminalSeq+1, forged.CardSeq+1
	forged.BalanceBefore, forged.BalanceAfter = c.bal, c.bal-10
	fs, err := terminaltx.Sign(&forged, other)
	require.NoError(t, err)

	res, err := l.upload(ctx, org, [][]byte{good, fs.Bytes()}, []preVerified{
		{tx: gs, pub: bar.key.Public().(ed25519.PublicKey)},
		{tx: fs, pub: other.Public().(ed25519.PublicKey)},
	})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "rejected"}, statuses(res))
	require.ErrorIs(t, res[1].Err, terminaltx.ErrSignature)
	requireInvariants(t, l)
}
