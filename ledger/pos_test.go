package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// TestVoidPayment: a terminal voids its card's last payment once: the
// whole amount goes back to the card as a pending load linked to the
// payment; a second void, another terminal's void, a void of a payment
// that is not the card's last, and one past the window are refused and
// change nothing.
func TestVoidPayment(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	tm := newTerminal(t, l, "bar-1", "drinks")
	other := newTerminal(t, l, "bar-2", "food")
	c1, c2 := newCard(1), newCard(2)
	fund(t, l, 1_000, c1, c2)
	first := tm.pay(t, c1, 100)
	last := tm.pay(t, c1, 300)
	res, err := l.Upload(ctx, org, [][]byte{first, last})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	p1, _ := terminaltx.Parse(first)
	p2, _ := terminaltx.Parse(last)

	_, err = l.VoidPayment(ctx, org, "bar-2", testID(), p2.ID)
	require.ErrorIs(t, err, ErrNotFound, "another terminal's payment")
	_, err = l.VoidPayment(ctx, org, "bar-1", testID(), p1.ID)
	require.ErrorIs(t, err, ErrNotLastPayment)

	id := testID()
	v, err := l.VoidPayment(ctx, org, "bar-1", id, p2.ID)
	require.NoError(t, err)
	require.Equal(t, CorrectionPosted, v.Status)
	require.Equal(t, int64(300), v.Amount)
	require.Equal(t, p2.ID, v.Payment)
	again, err := l.VoidPayment(ctx, org, "bar-1", id, p2.ID)
	require.NoError(t, err, "the same void again")
	require.Equal(t, v.ID, again.ID)
	_, err = l.VoidPayment(ctx, org, "bar-1", testID(), p2.ID)
	require.ErrorIs(t, err, ErrExceedsPayment, "a second void")

	loads, err := l.PendingLoads(ctx, org, c1.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, id, loads[0].ID)
	require.Equal(t, int64(300), loads[0].Amount)
	m, err := l.Balance(ctx, org, Merchant, "drinks")
	require.NoError(t, err)
	require.Equal(t, int64(100), m)

	// Past the window.
	old := tm.pay(t, c2, 50)
	res, err = l.Upload(ctx, org, [][]byte{old})
	require.NoError(t, err)
	require.Equal(t, Accepted, res[0].Status)
	po, _ := terminaltx.Parse(old)
	l.now = func() time.Time { return time.Now().Add(VoidWindow + time.Minute) }
	_, err = l.VoidPayment(ctx, org, "bar-1", testID(), po.ID)
	require.ErrorIs(t, err, ErrVoidWindow)
	_ = other
	requireInvariants(t, l)
}

// TestDepositReturn: returned cups at the menu's deposit price become a
// pending load of the card paid by the merchant, once per id; anything
// that is not a deposit item at its price is refused and changes nothing.
func TestDepositReturn(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	tm := newTerminal(t, l, "bar-1", "drinks")
	c := newCard(1)
	fund(t, l, 1_000, c)
	_, err := l.SetMenu(ctx, org, "drinks", []menu.Product{{ID: "beer", Name: "Beer", Price: 350, VATRateBP: 2100},
		{ID: "cup", Name: "Cup", Price: 100, Deposit: true}}, "cli:ann")
	require.NoError(t, err)
	res, err := l.Upload(ctx, org, [][]byte{tm.pay(t, c, 700)})
	require.NoError(t, err)
	require.Equal(t, Accepted, res[0].Status)

	cup := terminaltx.Item{Product: "cup", Quantity: -3, UnitPrice: 100, MenuVersion: 1}
	refused := []terminaltx.Item{
		{Product: "beer", Quantity: -1, UnitPrice: 350, VATRateBP: 2100, MenuVersion: 1},
		{Product: "cup", Quantity: -1, UnitPrice: 200, MenuVersion: 1},
		{Product: "cup", Quantity: -1, UnitPrice: 100, MenuVersion: 2},
		{Product: "cup", Quantity: 1, UnitPrice: 100, MenuVersion: 1},
		{Product: "cup", Quantity: -101, UnitPrice: 100, MenuVersion: 1},
	}
	for _, it := range refused {
		_, err := l.DepositReturn(ctx, org, "bar-1", DepositReturnRequest{ID: testID(), Card: c.uid, Items: []terminaltx.Item{it}})
		require.Error(t, err, "%+v", it)
	}
	id := testID()
	r, err := l.DepositReturn(ctx, org, "bar-1", DepositReturnRequest{ID: id, Card: c.uid, Items: []terminaltx.Item{cup}})
	require.NoError(t, err)
	require.Equal(t, int64(300), r.Amount)
	_, err = l.DepositReturn(ctx, org, "bar-1", DepositReturnRequest{ID: id, Card: c.uid, Items: []terminaltx.Item{cup}})
	require.NoError(t, err, "the same return again")
	_, err = l.DepositReturn(ctx, org, "bar-1", DepositReturnRequest{ID: id, Card: c.uid, Items: []terminaltx.Item{{Product: "cup", Quantity: -1, UnitPrice: 100, MenuVersion: 1}}})
	require.ErrorIs(t, err, ErrConflict)

	loads, err := l.PendingLoads(ctx, org, c.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, id, loads[0].ID)
	require.Equal(t, int64(300), loads[0].Amount)
	m, err := l.Balance(ctx, org, Merchant, "drinks")
	require.NoError(t, err)
	require.Equal(t, int64(400), m)
	var q, n int
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(quantity), 0) FROM terminal_tx_items WHERE org_id = $1`, org).Scan(&n, &q))
	require.Equal(t, 1, n)
	require.Equal(t, -3, q)
	requireInvariants(t, l)
}
