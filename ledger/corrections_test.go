package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/sepa"
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

// TestCorrectionAfterRefund: a correction of a payment of a card whose
// refund was paid out is refused and changes nothing (its load could never
// reach the card nor be paid: before, it stayed pending for good); one
// awaiting approval when the refund was paid out stays awaiting; before the
// payout it is paid with the refund; a correction of a replaced card's
// payment is loaded onto the card that replaced it.
func TestCorrectionAfterRefund(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b, c, d := newCard(1), newCard(2), newCard(3), newCard(4)
	fund(t, l, 5000, a, b, c)
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 1000), bar.pay(t, b, 1000), bar.pay(t, c, 1000)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted", "accepted"}, statuses(res))
	payA, payB, payC := res[0].ID, res[1].ID, res[2].ID
	require.NoError(t, l.SetCorrectionThreshold(ctx, org, 500))

	waiting, err := l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payA, Amount: 800, Reason: "round refused", Actor: "hq:1:alice"})
	require.NoError(t, err)
	require.Equal(t, CorrectionAwaitingApproval, waiting.Status)
	// b: corrected after its refund was asked for, before the payout: the refund pays it.
	_, _, err = l.RequestRefund(ctx, org, RefundRequest{Card: b.uid, Holder: "Bo Example", IBAN: "DE89 3704 0044 0532 0130 00"})
	require.NoError(t, err)
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payB, Amount: 200, Reason: "overcharged", Actor: "hq:1:alice"})
	require.NoError(t, err)
	_, _, err = l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89 3704 0044 0532 0130 00"})
	require.NoError(t, err)
	p, err := l.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, time.Now(), 0)
	require.NoError(t, err)
	require.Equal(t, int64(4000+4200), p.Total, "b's refund pays its correction")

	merchant := func() int64 {
		bal, err := l.Balance(ctx, org, Merchant, "bar")
		require.NoError(t, err)
		return bal
	}
	before := merchant()
	_, err = l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payA, Amount: 100, Reason: "overcharged", Actor: "hq:1:alice"})
	require.ErrorIs(t, err, ErrCreditLeft)
	_, err = l.ApproveCorrection(ctx, org, waiting.ID, "hq:1:bob")
	require.ErrorIs(t, err, ErrCreditLeft)
	require.Equal(t, before, merchant(), "nothing charged back")
	loads, err := l.PendingLoads(ctx, org, a.uid)
	require.NoError(t, err)
	require.Empty(t, loads, "no load that could never be paid")
	requireBalance(t, l, PendingLoads, 0)
	list, err := l.Corrections(ctx, org)
	require.NoError(t, err)
	require.Len(t, list, 2, "the refused one is not recorded")
	require.Equal(t, CorrectionAwaitingApproval, list[0].Status)

	// c replaced by d: its correction goes to d, which takes it at its next write.
	fund(t, l, 100, d)
	_, err = l.ReplaceCard(ctx, org, ReplaceRequest{Old: c.uid, New: d.uid, Reason: "lost", Actor: "hq:1:alice"})
	require.NoError(t, err)
	cr, err := l.RequestCorrection(ctx, org, CorrectionRequest{Payment: payC, Amount: 300, Reason: "overcharged", Actor: "hq:1:alice"})
	require.NoError(t, err)
	require.Equal(t, CorrectionPosted, cr.Status)
	loads, err = l.PendingLoads(ctx, org, d.uid)
	require.NoError(t, err)
	var ids []txid.ID
	for _, ld := range loads {
		ids = append(ids, ld.ID)
	}
	require.Contains(t, ids, cr.ID)
	requireInvariants(t, l)
}

// TestCorrectionOfVoucherPayment: a correction of a payment that spent
// voucher (non-refundable) credit gives that part back as non-refundable
// credit, not as money (before, all of it came back refundable); a partial
// one gives back the refundable part first, leaving the card as if the
// payment had been smaller; the refund then pays only money.
func TestCorrectionOfVoucherPayment(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a := newCard(1)
	fund(t, l, 1000, a)
	_, codes, err := l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 500, Count: 1, Expires: time.Now().Add(time.Hour), Actor: "hq"})
	require.NoError(t, err)
	redeem(t, l, a, codes[0])
	requireCredit(t, l, a, 1500, 500)
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 800), bar.pay(t, a, 100)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	requireCredit(t, l, a, 600, 0) // the first spent the voucher's 500 and 300 of money
	load := func(c Correction) {
		t.Helper()
		a.seq++
		require.NoError(t, l.LoadPending(ctx, org, a.uid, c.ID, &CardWrite{Seq: a.seq, Before: a.bal, After: a.bal + c.Amount}))
		a.bal += c.Amount
	}

	// 200 of the 800: money, which a payment of 600 would have spent as well.
	c1, err := l.RequestCorrection(ctx, org, CorrectionRequest{Payment: res[0].ID, Amount: 200, Reason: "one beer too many", Actor: "hq:1:alice"})
	require.NoError(t, err)
	require.Equal(t, int64(0), c1.NonRefundable)
	load(c1)
	requireCredit(t, l, a, 800, 0)
	// The other 600: 100 of money, then the voucher's 500, back as voucher credit.
	c2, err := l.RequestCorrection(ctx, org, CorrectionRequest{Payment: res[0].ID, Amount: 600, Reason: "round refused", Actor: "hq:1:alice"})
	require.NoError(t, err)
	require.Equal(t, int64(500), c2.NonRefundable)
	cr, err := l.CardCredit(ctx, org, a.uid)
	require.NoError(t, err)
	require.Equal(t, [2]int64{100, 500}, [2]int64{cr.PendingRefundable, cr.PendingNonRefundable}, "pending by kind")
	load(c2)
	requireCredit(t, l, a, 1400, 500)
	spent, err := l.Balance(ctx, org, NonRefundableCredit, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(0), spent, "no voucher credit stays spent at the bar")
	requireInvariants(t, l)

	// The refund pays the money: 1000 paid in, less the 100 the second payment spent.
	_, credit, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89 3704 0044 0532 0130 00"})
	require.NoError(t, err)
	require.Equal(t, int64(900), credit)
	requireInvariants(t, l)
}
