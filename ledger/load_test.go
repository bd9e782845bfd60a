package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/txid"
)

// cashLoad tops a card up with cash at store and confirms the card write
// w (nil: not known), as a store client does.
func cashLoad(t testing.TB, l *Ledger, org int64, store string, card []byte, amount int64, w *CardWrite) txid.ID {
	t.Helper()
	ctx := context.Background()
	id, err := l.TopUpCash(ctx, org, CashTopUp{Store: store, Card: card, Amount: amount})
	require.NoError(t, err)
	require.NoError(t, l.LoadPending(ctx, org, card, id, w))
	return id
}

// A store's cash credit (sale or top-up) is a pending load until its card
// write is confirmed: the store's cash is taken at once, the card's balance
// moves only with the confirmation, a confirmation twice is a no-op and
// one that does not match the load is refused and changes nothing.
func TestCashCreditIsPendingUntilConfirmed(t *testing.T) {
	const org = 1
	l := newLedger(t)
	ctx := context.Background()
	now := time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	require.NoError(t, l.CreateOrganizer(ctx, org, "Org"))
	require.NoError(t, l.AddEvent(ctx, org, "fest", "Festival", now.Add(30*24*time.Hour)))
	require.NoError(t, l.AddStore(ctx, org, "gate", "Gate"))
	a, b := newCard(1), newCard(2)
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{a.uid, b.uid}))
	require.NoError(t, l.ReceiveCards(ctx, org, "gate", 1, 2))

	sale, err := l.SellCard(ctx, org, CardSale{Store: "gate", Batch: 1, Slot: 1, Card: a.uid, Deposit: 500, Credit: 2000})
	require.NoError(t, err)
	topup, err := l.TopUpCash(ctx, org, CashTopUp{Store: "gate", Card: b.uid, Amount: 1650})
	require.NoError(t, err)

	cash, err := l.Balance(ctx, org, StoreCash, "gate")
	require.NoError(t, err)
	require.Equal(t, int64(2500+1650), cash, "the store's cash is taken at once")
	pend, err := l.Balance(ctx, org, PendingLoads, "")
	require.NoError(t, err)
	require.Equal(t, int64(2000+1650), pend)
	for c, want := range map[*card]struct {
		load   txid.ID
		amount int64
	}{a: {sale, 2000}, b: {topup, 1650}} {
		info, err := l.Card(ctx, org, c.uid)
		require.NoError(t, err)
		require.Zero(t, info.Balance, "not on the card before its write is confirmed")
		require.Equal(t, want.amount, info.Pending)
		loads, err := l.PendingLoads(ctx, org, c.uid)
		require.NoError(t, err)
		require.Len(t, loads, 1)
		require.Equal(t, PendingLoad{ID: want.load, Amount: want.amount, At: loads[0].At, Channel: "cash", Store: "gate"}, loads[0])
	}
	rep, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, []ChannelTopUps{{Channel: "cash", Status: "pending", Count: 2, Amount: 3650}}, rep.TopUps,
		"unconfirmed cash is not called loaded")
	require.Equal(t, int64(3650), rep.PendingLoads)
	require.Zero(t, rep.Outstanding)
	days, err := l.StoreDays(ctx, org, now, now)
	require.NoError(t, err)
	require.Equal(t, int64(3650), days[0].PendingLoads)
	requireInvariants(t, l)

	// A confirmation whose balances do not add the load's amount: refused,
	// nothing changes.
	err = l.LoadPending(ctx, org, a.uid, sale, &CardWrite{Seq: 1, Before: 0, After: 1999})
	require.ErrorIs(t, err, ErrInvalid)
	info, err := l.Card(ctx, org, a.uid)
	require.NoError(t, err)
	require.Equal(t, [3]int64{0, 2000, 0}, [3]int64{info.Balance, info.Pending, info.LastSeq})
	// A load of another card: not found.
	require.ErrorIs(t, l.LoadPending(ctx, org, b.uid, sale, &CardWrite{Seq: 1, Before: 0, After: 2000}), ErrNotFound)

	// The right confirmation, twice: loaded once.
	for range 2 {
		require.NoError(t, l.LoadPending(ctx, org, a.uid, sale, &CardWrite{Seq: 1, Before: 0, After: 2000}))
	}
	info, err = l.Card(ctx, org, a.uid)
	require.NoError(t, err)
	require.Equal(t, [3]int64{2000, 0, 1}, [3]int64{info.Balance, info.Pending, info.LastSeq})
	pend, err = l.Balance(ctx, org, PendingLoads, "")
	require.NoError(t, err)
	require.Equal(t, int64(1650), pend)
	rep, err = l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, []ChannelTopUps{{Channel: "cash", Status: "loaded", Count: 1, Amount: 2000},
		{Channel: "cash", Status: "pending", Count: 1, Amount: 1650}}, rep.TopUps)
	require.Equal(t, int64(2000), rep.Outstanding)
	require.Empty(t, alertKinds(t, l))
	requireInvariants(t, l)
}
