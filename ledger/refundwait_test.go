package ledger

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

var testDebtor = sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}

// cardRefund returns the card's refund status and its amount (-1 while
// not fixed).
func cardRefund(t *testing.T, l *Ledger, c *card) (string, int64) {
	t.Helper()
	r, err := l.CardRefund(context.Background(), org, c.uid)
	require.NoError(t, err)
	if r.Amount == nil {
		return r.Status, -1
	}
	return r.Status, *r.Amount
}

// Spend, then refund (issue 17, M5): a debit the card made offline before
// the refund request, uploaded only after it, is paid from the card, not
// lost by the merchant. The refund's amount is fixed at payout, once every
// terminal of the event has uploaded since the request.
func TestRefundWaitsForTerminals(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	food := newTerminal(t, l, "food-1", "food")
	a, b := newCard(1), newCard(2)
	fund(t, l, 1000, a, b)

	// Both terminals upload a payment; then food takes 3.00 from card a
	// offline and keeps it.
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 100)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	res, err = l.Upload(ctx, org, [][]byte{food.pay(t, b, 50)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	offline := food.pay(t, a, 300)

	// The holder asks for the rest: what the ledger holds now is 9.00, but
	// nothing is fixed or booked yet.
	_, credit, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89370400440532013000"})
	require.NoError(t, err)
	require.Equal(t, int64(900), credit)
	st, amt := cardRefund(t, l, a)
	require.Equal(t, RefundPending, st)
	require.Equal(t, int64(-1), amt)
	payable, err := l.Balance(ctx, org, RefundsPayable, "")
	require.NoError(t, err)
	require.Zero(t, payable)

	// Payout before the terminals sync: the refund waits.
	p, err := l.ExportPayouts(ctx, org, testDebtor, l.now(), DefaultSyncWindow)
	require.ErrorIs(t, err, ErrNothingToPay)
	require.Equal(t, 1, p.Waiting)
	st, _ = cardRefund(t, l, a)
	require.Equal(t, RefundPending, st)

	// Food uploads the debit: posted from the card. Bar has still not
	// uploaded since the request, so the refund still waits.
	res, err = l.Upload(ctx, org, [][]byte{offline})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	p, err = l.ExportPayouts(ctx, org, testDebtor, l.now(), DefaultSyncWindow)
	require.ErrorIs(t, err, ErrNothingToPay)
	require.Equal(t, 1, p.Waiting)

	// Bar uploads too (a payment of another card): every terminal of the
	// event has synced, and the payout pays the balance minus the debit.
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, b, 50)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	p, err = l.ExportPayouts(ctx, org, testDebtor, l.now(), DefaultSyncWindow)
	require.NoError(t, err)
	require.Equal(t, 1, p.Count)
	require.Zero(t, p.Waiting)
	require.Equal(t, int64(600), p.Total)
	require.Contains(t, string(p.XML), `<InstdAmt Ccy="EUR">6.00</InstdAmt>`)
	st, amt = cardRefund(t, l, a)
	require.Equal(t, RefundPaid, st)
	require.Equal(t, int64(600), amt)
	for kind, want := range map[AccountKind]int64{Bank: -600, RefundsPayable: 0, RefundLosses: 0} {
		got, err := l.Balance(ctx, org, kind, "")
		require.NoError(t, err)
		require.Equal(t, want, got, kind)
	}
	for m, want := range map[string]int64{"bar": 150, "food": 350} {
		got, err := l.Balance(ctx, org, Merchant, m)
		require.NoError(t, err)
		require.Equal(t, want, got, m)
	}
	cb, err := l.CardBalance(ctx, org, a.uid)
	require.NoError(t, err)
	require.Zero(t, cb)
	require.Empty(t, alertKinds(t, l))
	requireInvariants(t, l)
}

// A terminal that stays offline past the sync window brings its debit
// after the refund was paid out: the merchant is paid from refund losses,
// HQ gets an alert, and the ledger balances.
func TestLateDebitAfterRefundPayout(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b := newCard(1), newCard(2)
	fund(t, l, 1000, a, b)
	offline := []([]byte){bar.pay(t, a, 200), bar.pay(t, a, 50)}

	_, credit, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89370400440532013000"})
	require.NoError(t, err)
	require.Equal(t, int64(1000), credit)
	// Bar never uploaded; with the window passed (0 here) the payout fixes
	// what the ledger holds.
	p, err := l.ExportPayouts(ctx, org, testDebtor, l.now(), DefaultSyncWindow)
	require.ErrorIs(t, err, ErrNothingToPay)
	require.Equal(t, 1, p.Waiting)
	p, err = l.ExportPayouts(ctx, org, testDebtor, l.now(), 0)
	require.NoError(t, err)
	require.Equal(t, int64(1000), p.Total)

	// The late debits arrive, with one of card b in the same batch.
	res, err := l.Upload(ctx, org, append(offline, bar.pay(t, b, 100)))
	require.NoError(t, err)
	require.Equal(t, []string{"accepted/refunded_card", "accepted/refunded_card", "accepted"}, statuses(res))
	require.Equal(t, []string{ReasonRefundedCard, ReasonRefundedCard}, alertKinds(t, l))
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Equal(t, terminaltx.CardHex(a.uid), terminaltx.CardHex(alerts[0].Card))
	for kind, want := range map[AccountKind]int64{Bank: -1000, RefundsPayable: 0, RefundLosses: 250} {
		got, err := l.Balance(ctx, org, kind, "")
		require.NoError(t, err)
		require.Equal(t, want, got, kind)
	}
	got, err := l.Balance(ctx, org, Merchant, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(350), got, "the merchant is paid for every payment it took")
	info, err := l.Card(ctx, org, a.uid)
	require.NoError(t, err)
	require.Equal(t, "refunded", info.Status, "a notice, not a block")
	require.Zero(t, info.Balance)
	require.Equal(t, int64(3), info.LastSeq, "the debits take their place in the card's chain")
	// Again: duplicates, nothing moves.
	res, err = l.Upload(ctx, org, offline)
	require.NoError(t, err)
	require.Equal(t, []string{"duplicate", "duplicate"}, statuses(res))
	got, err = l.Balance(ctx, org, RefundLosses, "")
	require.NoError(t, err)
	require.Equal(t, int64(250), got)
	requireInvariants(t, l)
}

// An offline debit that used up the card's whole credit before payout
// closes the refund with nothing to pay.
func TestRefundNothingDueAtPayout(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a := newCard(1)
	fund(t, l, 400, a)
	offline := bar.pay(t, a, 400)
	_, _, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89370400440532013000"})
	require.NoError(t, err)
	res, err := l.Upload(ctx, org, [][]byte{offline})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	p, err := l.ExportPayouts(ctx, org, testDebtor, l.now(), DefaultSyncWindow)
	require.ErrorIs(t, err, ErrNothingToPay)
	require.Equal(t, 1, p.NothingDue)
	st, amt := cardRefund(t, l, a)
	require.Equal(t, RefundNothingDue, st)
	require.Zero(t, amt)
	_, err = l.ExportPayouts(ctx, org, testDebtor, l.now(), 0)
	require.ErrorIs(t, err, ErrNothingToPay)
	requireInvariants(t, l)
}
