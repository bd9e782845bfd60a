package ledger

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestReviewUnblockRefund: a card blocked by terminal-signed clone
// evidence stays blocked, cannot be unblocked or refunded until HQ reviews
// its alert; each review and unblocking is recorded with who and why, and
// another organizer's alert is not found.
func TestReviewUnblockRefund(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	t1 := newTerminal(t, l, "bar-1", "bar")
	t2 := newTerminal(t, l, "bar-2", "bar")
	orig, other := newCard(1), newCard(2)
	fund(t, l, 2000, orig, other)
	clone := *orig
	_, err := l.Upload(ctx, org, [][]byte{t1.pay(t, orig, 100)})
	require.NoError(t, err)
	res, err := l.Upload(ctx, org, [][]byte{t2.pay(t, &clone, 70)})
	require.NoError(t, err)
	require.Equal(t, []string{"held/clone"}, statuses(res))
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	al := alerts[0]
	require.True(t, al.Blocking)
	require.Equal(t, "open", al.State())

	refund := RefundRequest{Card: orig.uid, Holder: "Ann Example", IBAN: "DE89 3704 0044 0532 0130 00"}
	_, _, err = l.RequestRefund(ctx, org, refund)
	require.ErrorIs(t, err, ErrCardBlocked)
	require.ErrorIs(t, err, ErrNotReviewed)
	err = l.UnblockCard(ctx, org, orig.uid, "hq", "checked")
	require.ErrorIs(t, err, ErrNotReviewed)
	require.ErrorIs(t, l.UnblockCard(ctx, org, other.uid, "hq", "checked"), ErrConflict, "not blocked")

	// Bad reviews change nothing.
	_, err = l.ReviewAlert(ctx, org, al.ID, "hq", "")
	require.ErrorIs(t, err, ErrInvalid)
	_, err = l.ReviewAlert(ctx, org, al.ID, "hq", "bad\x00reason")
	require.ErrorIs(t, err, ErrInvalid)
	_, err = l.ReviewAlert(ctx, org+1, al.ID, "hq", "not mine")
	require.ErrorIs(t, err, ErrNotFound)

	rv, err := l.ReviewAlert(ctx, org, al.ID, "hq:alice", "clone confirmed at the bar; card taken")
	require.NoError(t, err)
	require.Equal(t, "reviewed", rv.State())
	require.Equal(t, "hq:alice", rv.Review.By)
	_, err = l.ReviewAlert(ctx, org, al.ID, "hq:alice", "again")
	require.ErrorIs(t, err, ErrExists)
	alerts, err = l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Equal(t, "reviewed", alerts[0].State(), "a reviewed alert stays listed")
	info, err := l.Card(ctx, org, orig.uid)
	require.NoError(t, err)
	require.Equal(t, "blocked", info.Status, "a review alone does not unblock")
	rep, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Zero(t, rep.Alerts, "the event report counts open alerts only")

	// After the review, the blocked card may be refunded.
	_, amount, err := l.RequestRefund(ctx, org, refund)
	require.NoError(t, err)
	require.Equal(t, int64(2000-100), amount)

	// Unblocking another reviewed card: clone evidence on it, reviewed,
	// then unblocked.
	clone2 := *other
	_, err = l.Upload(ctx, org, [][]byte{t1.pay(t, other, 10)})
	require.NoError(t, err)
	_, err = l.Upload(ctx, org, [][]byte{t2.pay(t, &clone2, 10)})
	require.NoError(t, err)
	alerts, err = l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 2)
	_, err = l.ReviewAlert(ctx, org, alerts[1].ID, "hq:bob", "a terminal replayed its own debit")
	require.NoError(t, err)
	require.NoError(t, l.UnblockCard(ctx, org, other.uid, "hq:bob", "no clone: terminal fault"))
	info, err = l.Card(ctx, org, other.uid)
	require.NoError(t, err)
	require.Equal(t, "active", info.Status)

	var actions []string
	rows, err := l.pool.Query(ctx, `SELECT action || ' ' || actor || ': ' || reason FROM card_alert_actions WHERE org_id = $1 ORDER BY at, action`, org)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		actions = append(actions, s)
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []string{"review hq:alice: clone confirmed at the bar; card taken",
		"review hq:bob: a terminal replayed its own debit", "unblock hq:bob: no clone: terminal fault"}, actions)
	requireInvariants(t, l)
}

// TestSaleNeedsStock: a store sells only a card of a batch it received by
// the custody log and has not sold out (issue 17, M3).
func TestSaleNeedsStock(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	require.NoError(t, l.AddStore(ctx, org, "north", "North"))
	require.NoError(t, l.AddStore(ctx, org, "south", "South"))
	a, b := newCard(1), newCard(2)
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{a.uid, b.uid}))
	require.NoError(t, l.ReceiveCards(ctx, org, "north", 7, 1))

	_, err := l.SellCard(ctx, org, CardSale{Store: "south", Batch: 7, Slot: 1, Card: a.uid, Deposit: 500})
	require.ErrorIs(t, err, ErrNotInStock, "south holds nothing of batch 7")
	_, err = l.SellCard(ctx, org, CardSale{Store: "north", Batch: 8, Slot: 1, Card: a.uid, Deposit: 500})
	require.ErrorIs(t, err, ErrNotInStock, "north holds nothing of batch 8")
	_, err = l.SellCard(ctx, org, CardSale{Store: "north", Slot: 1, Card: a.uid, Deposit: 500})
	require.ErrorIs(t, err, ErrInvalid, "no batch")
	cash, err := l.Balance(ctx, org, StoreCash, "south")
	require.NoError(t, err)
	require.Zero(t, cash)

	_, err = l.SellCard(ctx, org, CardSale{Store: "north", Batch: 7, Slot: 1, Card: a.uid, Deposit: 500})
	require.NoError(t, err)
	_, err = l.SellCard(ctx, org, CardSale{Store: "north", Batch: 7, Slot: 2, Card: b.uid, Deposit: 500})
	require.ErrorIs(t, err, ErrNotInStock, "north's one card of batch 7 is sold")

	// South receives one card of batch 9; eight sales of different cards
	// at once: exactly one goes through.
	require.NoError(t, l.ReceiveCards(ctx, org, "south", 9, 1))
	var cards [][]byte
	for i := range 8 {
		cards = append(cards, newCard(100+i).uid)
	}
	require.NoError(t, l.RegisterCards(ctx, org, "fest", cards))
	errs := make(chan error, len(cards))
	for i, c := range cards {
		go func() {
			_, err := l.SellCard(ctx, org, CardSale{Store: "south", Batch: 9, Slot: 1 + i, Card: c, Deposit: 100})
			errs <- err
		}()
	}
	sold := 0
	for range cards {
		if err := <-errs; err == nil {
			sold++
		} else {
			require.ErrorIs(t, err, ErrNotInStock)
		}
	}
	require.Equal(t, 1, sold)

	// Runs of cards: north received slots 1 to 5 of batch 20, south slots
	// 6 to 10; each sells only its own, though both hold cards of the batch.
	require.NoError(t, l.inTx(ctx, func(tx pgx.Tx) error {
		if err := l.ReceiveCardsTx(ctx, tx, org, Receipt{ID: l.newID(), Store: "north", Batch: 20, Count: 5, FirstSlot: 1, Run: 5}); err != nil {
			return err
		}
		return l.ReceiveCardsTx(ctx, tx, org, Receipt{ID: l.newID(), Store: "south", Batch: 20, Count: 5, FirstSlot: 6, Run: 5})
	}))
	c3, c7 := newCard(203), newCard(207)
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{c3.uid, c7.uid}))
	_, err = l.SellCard(ctx, org, CardSale{Store: "south", Batch: 20, Slot: 3, Card: c3.uid, Deposit: 100})
	require.ErrorIs(t, err, ErrNotInStock, "slot 3 is in north's run")
	require.ErrorContains(t, err, "at store north")
	_, err = l.SellCard(ctx, org, CardSale{Store: "north", Batch: 20, Slot: 7, Card: c7.uid, Deposit: 100})
	require.ErrorIs(t, err, ErrNotInStock, "slot 7 is in south's run")
	_, err = l.SellCard(ctx, org, CardSale{Store: "north", Batch: 20, Slot: 3, Card: c3.uid, Deposit: 100})
	require.NoError(t, err)
	_, err = l.SellCard(ctx, org, CardSale{Store: "south", Batch: 20, Slot: 7, Card: c7.uid, Deposit: 100})
	require.NoError(t, err)
	requireInvariants(t, l)
}
