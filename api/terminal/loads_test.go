package terminal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/payment"
)

func TestWritePendingLoads(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	term := w.terminal(t, "bar-l", t.TempDir())
	c := w.cards[0]
	pay := func(id string, amount int64) {
		require.NoError(t, w.stack.Ledger.RecordPayment(ctx, "paytest", payment.Event{ID: id, Type: payment.TypePaymentSucceeded,
			Payment: "pay-" + id, Org: org, Card: c.UIDHex(), Amount: amount, Currency: "EUR", Created: time.Now().Unix()}))
	}
	confirm := term.ConfirmLoad

	// Paid online twice (the provider delivers the first event twice).
	pay("ev1", 500)
	pay("ev1", 500)
	pay("ev2", 250)
	loads, err := term.WritePendingLoads(ctx, c.Field(), confirm)
	require.NoError(t, err)
	require.Len(t, loads, 2)
	require.Equal(t, terminal.CardWrite{Seq: 2, Before: 1000, After: 1500}, *loads[0].Write)
	require.Equal(t, terminal.CardWrite{Seq: 3, Before: 1500, After: 1750}, *loads[1].Write)
	require.Equal(t, int64(1750), w.ledgerBalance(t, c))

	// Nothing waits any more.
	loads, err = term.WritePendingLoads(ctx, c.Field(), confirm)
	require.NoError(t, err)
	require.Empty(t, loads)

	// The card commits a load but the confirmation is lost: the next time
	// the load is found on the card and confirmed, not written again.
	pay("ev3", 100)
	lost := errors.New("connection reset")
	_, err = term.WritePendingLoads(ctx, c.Field(), func(context.Context, []byte, terminal.Load) error { return lost })
	require.ErrorIs(t, err, lost)
	require.Equal(t, int64(1750), w.ledgerBalance(t, c), "not confirmed yet")
	loads, err = term.WritePendingLoads(ctx, c.Field(), confirm)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.True(t, loads[0].Again)
	require.Equal(t, terminal.CardWrite{Seq: 4, Before: 1750, After: 1850}, *loads[0].Write)
	require.Equal(t, int64(1850), w.ledgerBalance(t, c))

	// The card's balance agrees: the next payment starts from 18.50.
	s, err := term.Debit(c.Field(), 50)
	require.NoError(t, err)
	require.Equal(t, int64(1850), s.BalanceBefore)
	require.Equal(t, uint32(5), s.CardSeq)
	_, err = term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1800), w.ledgerBalance(t, c))
	alerts, err := w.stack.Ledger.Alerts(ctx, org)
	require.NoError(t, err)
	require.Empty(t, alerts)
}
