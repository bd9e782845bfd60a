package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReplacementHold(t *testing.T) {
	for _, c := range []struct {
		balance, cents int64
		percent        int
		want           int64
	}{
		{1000, 2500, 0, 1000}, // all of it
		{10000, 2500, 0, 2500},
		{10000, 500, 10, 1000}, // the percentage is more
		{10000, 2000, 10, 2000},
		{0, 2500, 50, 0},
		{10000, 0, 0, 0},
		{10000, 0, 100, 10000},
	} {
		require.Equal(t, c.want, replacementHold(c.balance, c.cents, c.percent), "%+v", c)
	}
}

// A lost card's debits beyond the hold, and those that come after the
// hold moved on (the window passed with a terminal offline), are paid to
// their merchant all the same: from the card while it holds something,
// then from refund losses with an alert. The ledger sums to zero
// throughout and the replacement cannot be repeated or undone.
func TestReplacementLateDebits(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	lost, fresh, other := newCard(1), newCard(2), newCard(3)
	fund(t, l, 1000, lost, fresh, other)
	require.NoError(t, l.SetReplacementHold(ctx, org, 200, 0))
	offline1, offline2 := bar.pay(t, lost, 150), bar.pay(t, lost, 400)

	r, err := l.ReplaceCard(ctx, org, ReplaceRequest{Old: lost.uid, New: fresh.uid, Actor: "hq", Reason: "lost"})
	require.NoError(t, err)
	require.Equal(t, int64(1000), r.Balance)
	require.Equal(t, int64(200), r.Hold)
	require.NoError(t, l.LoadPending(ctx, org, fresh.uid, r.FirstLoad, &CardWrite{Seq: 2, Before: 1000, After: 1800}))
	requireInvariants(t, l)

	// Again with the same id: the same replacement; with another: refused.
	again, err := l.ReplaceCard(ctx, org, ReplaceRequest{ID: r.ID, Old: lost.uid, New: fresh.uid, Actor: "store", Reason: "lost"})
	require.NoError(t, err)
	require.Equal(t, r.ID, again.ID)
	_, err = l.ReplaceCard(ctx, org, ReplaceRequest{Old: lost.uid, New: other.uid, Actor: "store", Reason: "lost"})
	require.ErrorIs(t, err, ErrExists)
	require.ErrorIs(t, l.UnblockCard(ctx, org, lost.uid, "hq", "found"), ErrConflict, "a replaced card stays off the terminals")
	_, _, err = l.RequestRefund(ctx, org, RefundRequest{Card: lost.uid, Holder: "A", IBAN: "DE89370400440532013000"})
	require.ErrorIs(t, err, ErrConflict, "its credit moved: no refund")

	// The terminal has not synced: nothing is due within the window.
	rs, err := l.SettleReplacements(ctx, org, time.Hour)
	require.NoError(t, err)
	require.Empty(t, rs)

	// The first offline debit is paid from the hold.
	res, err := l.Upload(ctx, org, [][]byte{offline1})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))

	// The window passes with the terminal still holding the second debit:
	// the rest of the hold (50) moves to the new card.
	rs, err = l.SettleReplacements(ctx, org, 0)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, int64(50), rs[0].Rest)
	require.NoError(t, l.LoadPending(ctx, org, fresh.uid, rs[0].RestLoad, &CardWrite{Seq: 3, Before: 1800, After: 1850}))

	// The second debit arrives: the merchant is paid from refund losses.
	res, err = l.Upload(ctx, org, [][]byte{offline2})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted/" + ReasonRefundedCard}, statuses(res))
	paid, err := l.Balance(ctx, org, Merchant, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(550), paid)
	loss, err := l.Balance(ctx, org, RefundLosses, "")
	require.NoError(t, err)
	require.Equal(t, int64(400), loss)
	bal, err := l.CardBalance(ctx, org, fresh.uid)
	require.NoError(t, err)
	require.Equal(t, int64(1850), bal, "the new card has all that was left when the window closed")
	requireInvariants(t, l)
}

// Every way a card is blocked reaches the blocklist: a block asked for
// (here by a store) and a clone an upload found; HQ's unblocking after
// review takes the card off. A terminal holding any version gets the
// change since.
func TestBlocklistVersions(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	lost, cloned := newCard(1), newCard(2)
	fund(t, l, 1000, lost, cloned)

	v, err := l.BlockCard(ctx, org, lost.uid, BlockByStore, "store-1", "lost")
	require.NoError(t, err)
	require.Equal(t, uint64(1), v)
	_, err = l.BlockCard(ctx, org, lost.uid, BlockByStore, "store-1", "")
	require.ErrorIs(t, err, ErrInvalid)

	// Two debits with one card sequence: the clone blocks the card.
	tx1 := bar.pay(t, cloned, 10)
	cloned.seq--
	tx2 := bar.pay(t, cloned, 20)
	_, err = l.Upload(ctx, org, [][]byte{tx1, tx2})
	require.NoError(t, err)
	ch, err := l.Blocklist(ctx, org, 1, true)
	require.NoError(t, err)
	require.Equal(t, uint64(2), ch.Version)
	require.Equal(t, [][]byte{cloned.uid}, ch.Listed)
	require.Len(t, ch.All, 2)

	// HQ reviews the clone and unblocks the card: off the list.
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	for _, a := range alerts {
		if a.Blocking {
			_, err := l.ReviewAlert(ctx, org, a.ID, "hq", "a torn write, checked")
			require.NoError(t, err)
		}
	}
	require.NoError(t, l.UnblockCard(ctx, org, cloned.uid, "hq", "checked"))
	ch, err = l.Blocklist(ctx, org, 2, true)
	require.NoError(t, err)
	require.Equal(t, uint64(3), ch.Version)
	require.Empty(t, ch.Listed)
	require.Equal(t, [][]byte{cloned.uid}, ch.Unlisted)
	require.Equal(t, [][]byte{lost.uid}, ch.All)
	// From nothing: the whole list; from a version the ledger never had
	// (a database restored under the terminal): the whole list too.
	for _, since := range []uint64{0, 99} {
		ch, err = l.Blocklist(ctx, org, since, false)
		require.NoError(t, err)
		require.Zero(t, ch.Since)
		require.Equal(t, [][]byte{lost.uid}, ch.Listed)
		require.Empty(t, ch.Unlisted)
	}

	// A terminal says it synced; a version beyond the list's is not believed.
	require.NoError(t, l.BlocklistSynced(ctx, org, "bar-1", 99))
	var synced int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT blocklist_synced FROM terminals WHERE terminal_id = 'bar-1'`).Scan(&synced))
	require.Equal(t, int64(3), synced)
}

// A replaced card's voucher credit stays credit that is not money: the
// new card gets it as its non-refundable part (first load, up to what
// moves; the rest load, the remainder), so a refund of the new card pays
// only the money paid in. On the old code the new card's whole balance
// was refundable.
func TestReplacementKeepsCreditKinds(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	lost, fresh := newCard(1), newCard(2)
	fund(t, l, 1000, lost)
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{fresh.uid}))
	_, codes, err := l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 500, Count: 1, Expires: time.Now().Add(time.Hour),
		Label: "artist drinks", Actor: "hq:1:alice"})
	require.NoError(t, err)
	redeem(t, l, lost, codes[0])
	requireCredit(t, l, lost, 1500, 500)
	require.NoError(t, l.SetReplacementHold(ctx, org, 1200, 0))

	// 300 moves now: all of it voucher credit, which payments spend first.
	r, err := l.ReplaceCard(ctx, org, ReplaceRequest{Old: lost.uid, New: fresh.uid, Actor: "hq", Reason: "lost"})
	require.NoError(t, err)
	require.Equal(t, int64(1200), r.Hold)
	cr, err := l.CardCredit(ctx, org, fresh.uid)
	require.NoError(t, err)
	require.Equal(t, Credit{PendingNonRefundable: 300}, cr)
	lost.bal = 1200
	requireCredit(t, l, lost, 1200, 200)
	require.NoError(t, l.LoadPending(ctx, org, fresh.uid, r.FirstLoad, &CardWrite{Seq: 1, Before: 0, After: 300}))
	fresh.seq, fresh.bal = 1, 300
	requireCredit(t, l, fresh, 300, 300)
	requireInvariants(t, l)

	// The hold follows: the other 200 of voucher credit, then money.
	rs, err := l.SettleReplacements(ctx, org, 0)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.Equal(t, int64(1200), rs[0].Rest)
	require.NoError(t, l.LoadPending(ctx, org, fresh.uid, rs[0].RestLoad, &CardWrite{Seq: 2, Before: 300, After: 1500}))
	fresh.seq, fresh.bal = 2, 1500
	requireCredit(t, l, fresh, 1500, 500)
	requireInvariants(t, l)

	_, credit, err := l.RequestRefund(ctx, org, RefundRequest{Card: fresh.uid, Holder: "Ann Example", IBAN: "DE89 3704 0044 0532 0130 00"})
	require.NoError(t, err)
	require.Equal(t, int64(1000), credit, "only the money paid in")
}
