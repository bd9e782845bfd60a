package ledger

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/txid"
)

// TestCorrections: a correction within the organizer's threshold is posted
// at once, one above it waits for a second person and is posted when they
// approve it; each is charged back to the merchant and written onto the
// card as a load; the corrections of a payment never exceed it, a held or
// unknown payment is not corrected, and a repeated request posts nothing
// twice.
func TestCorrections(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b := newCard(1), newCard(2)
	fund(t, l, 5000, a)
	b.bal = 1000 // never registered: its debit is held
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 1000), bar.pay(t, b, 500)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "held/unknown_card"}, statuses(res))
	payment, held := res[0].ID, res[1].ID
	require.NoError(t, l.SetCorrectionThreshold(ctx, org, 500))
	merchant := func() int64 {
		bal, err := l.Balance(ctx, org, Merchant, "bar")
		require.NoError(t, err)
		return bal
	}
	require.Equal(t, int64(1000), merchant())

	// Within the threshold: posted at once, the card gets it at its next write.
	c1, err := l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payment, Amount: 300, Reason: "charged two beers, served one", Actor: "store:1:tok-a"})
	require.NoError(t, err)
	require.Equal(t, CorrectionPosted, c1.Status)
	require.Equal(t, "", c1.ApprovedBy)
	require.Equal(t, int64(700), merchant(), "charged back")
	loads, err := l.PendingLoads(ctx, org, a.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, c1.ID, loads[0].ID)
	require.Equal(t, "correction", loads[0].Channel)
	a.seq++
	require.NoError(t, l.LoadPending(ctx, org, a.uid, c1.ID, &CardWrite{Seq: a.seq, Before: a.bal, After: a.bal + 300}))
	a.bal += 300
	requireCredit(t, l, a, 4300, 0)

	// The same request again is the same correction; other content under its id is refused.
	again, err := l.RequestCorrection(ctx, org, CorrectionRequest{ID: c1.ID, Payment: payment, Amount: 300, Reason: "charged two beers, served one", Actor: "store:1:tok-a"})
	require.NoError(t, err)
	require.Equal(t, c1.ID, again.ID)
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{ID: c1.ID, Payment: payment, Amount: 301, Reason: "charged two beers, served one", Actor: "store:1:tok-a"})
	require.ErrorIs(t, err, ErrConflict)
	require.Equal(t, int64(700), merchant())

	// Above it: waits for a second HQ person.
	c2, err := l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payment, Amount: 600, Reason: "whole round refused", Actor: "hq:1:tok-alice"})
	require.NoError(t, err)
	require.Equal(t, CorrectionAwaitingApproval, c2.Status)
	require.Equal(t, int64(700), merchant(), "nothing charged before approval")
	_, err = l.ApproveCorrection(ctx, org, c2.ID, "hq:1:tok-alice")
	require.ErrorIs(t, err, ErrSameActor)
	_, err = l.ApproveCorrection(ctx, org, txid.ID{1}, "hq:1:tok-bob")
	require.ErrorIs(t, err, ErrNotFound)
	// Asked for, not yet approved, it already counts against the payment.
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payment, Amount: 101, Reason: "more", Actor: "hq:1:tok-bob"})
	require.ErrorIs(t, err, ErrExceedsPayment)
	ok, err := l.ApproveCorrection(ctx, org, c2.ID, "hq:1:tok-bob")
	require.NoError(t, err)
	require.Equal(t, CorrectionPosted, ok.Status)
	require.Equal(t, "hq:1:tok-bob", ok.ApprovedBy)
	require.Equal(t, int64(100), merchant())
	_, err = l.ApproveCorrection(ctx, org, c2.ID, "hq:1:tok-carol")
	require.ErrorIs(t, err, ErrExists, "approved once")
	require.Equal(t, int64(100), merchant())

	// Up to the payment, not beyond.
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payment, Amount: 100, Reason: "the rest", Actor: "hq:1:tok-bob"})
	require.NoError(t, err)
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payment, Amount: 1, Reason: "beyond", Actor: "hq:1:tok-bob"})
	require.ErrorIs(t, err, ErrExceedsPayment)
	require.Equal(t, int64(0), merchant())

	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: held, Amount: 100, Reason: "held", Actor: "hq"})
	require.ErrorIs(t, err, ErrNotPosted)
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: txid.ID{9}, Amount: 100, Reason: "unknown", Actor: "hq"})
	require.ErrorIs(t, err, ErrNotFound)
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payment, Amount: 100, Reason: "", Actor: "hq"})
	require.ErrorIs(t, err, ErrInvalid)

	list, err := l.Corrections(ctx, org)
	require.NoError(t, err)
	require.Len(t, list, 3)
	requireInvariants(t, l)
}
