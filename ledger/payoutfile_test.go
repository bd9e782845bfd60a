package ledger

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPayoutFileKept: a booked payout run keeps its pain.001 file sealed
// with the run; PayoutFile opens exactly that file, for its organizer and
// run only; a dry run keeps nothing; Payouts lists the run with its file.
func TestPayoutFileKept(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	a := newCard(1)
	fund(t, l, 1000, a)
	_, _, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ada Lovelace", IBAN: "DE89370400440532013000"})
	require.NoError(t, err)
	dry, err := l.RunPayout(ctx, org, testDebtor, l.now(), PayoutOptions{DryRun: true})
	require.NoError(t, err)
	ps, err := l.Payouts(ctx, org, 10)
	require.NoError(t, err)
	require.Empty(t, ps, "a dry run keeps nothing")
	run, err := l.RunPayout(ctx, org, testDebtor, l.now(), PayoutOptions{Approve: dry.Plan})
	require.NoError(t, err)
	require.NotEmpty(t, run.XML)

	got, err := l.PayoutFile(ctx, org, run.ID)
	require.NoError(t, err)
	require.Equal(t, run.XML, got, "the very file the run answered")
	var sealed []byte
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT sealed_file FROM payouts WHERE org_id = $1`, org).Scan(&sealed))
	require.NotContains(t, string(sealed), "DE89370400440532013000", "sealed")
	ps, err = l.Payouts(ctx, org, 10)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, run.ID, ps[0].ID)
	require.True(t, ps[0].File)
	require.Equal(t, run.Total, ps[0].Total)

	_, err = l.PayoutFile(ctx, org+1, run.ID)
	require.ErrorIs(t, err, ErrNotFound, "another organizer's")
	_, err = l.PayoutFile(ctx, org, dry.ID)
	require.ErrorIs(t, err, ErrNotFound, "no such run")
	// The sealed file moved to another run does not open: it is bound to
	// its organizer and run.
	other := l.newID()
	_, err = l.pool.Exec(ctx, `INSERT INTO payouts (org_id, payout_id, message_id, count, total, sealed_file)
		VALUES ($1, $2, 'x', 1, 1, $3)`, org, other[:], sealed)
	require.NoError(t, err)
	_, err = l.PayoutFile(ctx, org, other)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrNotFound)
}
