package ledger

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

func saveMethod(t *testing.T, l *Ledger, c *card, id string) {
	t.Helper()
	require.NoError(t, l.RecordPayment(context.Background(), "stripe", payment.Event{ID: "evt_saved_" + id, Type: payment.TypeMethodSaved,
		Org: org, Card: terminaltx.CardHex(c.uid), Customer: "cus_" + id, Method: "pm_" + id}))
}

// TestAutoTopUp: a rule charges once per trigger, only below its
// threshold (credit and pending loads together), never while a charge is
// open, and never over its daily limit; the charge's success is a pending
// load, once, whether the server's answer or the provider's webhook comes
// first; a failed or requires_action charge disables the rule.
func TestAutoTopUp(t *testing.T) {
	clk := time.Date(2027, 7, 1, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clk }
	advance := func(d time.Duration) { mu.Lock(); clk = clk.Add(d); mu.Unlock() }
	l := newLedger(t, Options{Now: now})
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c, d := newCard(1), newCard(2)
	fund(t, l, 100, c, d)

	trigger := func(c *card) *AutoTopUpCharge {
		t.Helper()
		ch, err := l.TriggerAutoTopUp(ctx, org, c.uid)
		require.NoError(t, err)
		return ch
	}
	require.Nil(t, trigger(c), "no rule")
	_, err := l.SetAutoTopUp(ctx, org, c.uid, "stripe", 2000, 500, 1000)
	require.ErrorIs(t, err, ErrInvalid, "a daily limit below one top-up")
	_, err = l.SetAutoTopUp(ctx, org, c.uid, "stripe", 0, 500, 1000)
	require.ErrorIs(t, err, ErrInvalid)
	_, err = l.SetAutoTopUp(ctx, org, newCard(9).uid, "stripe", 2000, 500, 4000)
	require.ErrorIs(t, err, ErrNotFound)
	cus, err := l.SetAutoTopUp(ctx, org, c.uid, "stripe", 2000, 500, 4000)
	require.NoError(t, err)
	require.Empty(t, cus)
	require.Nil(t, trigger(c), "no payment method saved yet")
	saveMethod(t, l, c, "c")
	r, err := l.AutoTopUp(ctx, org, c.uid)
	require.NoError(t, err)
	require.Equal(t, "active", r.Status)
	require.Equal(t, "cus_c", r.Customer)

	// Below the threshold: one charge, and none more while it is open.
	ch := trigger(c)
	require.NotNil(t, ch)
	require.Equal(t, int64(2000), ch.Amount)
	require.Equal(t, "pm_c", ch.Method)
	require.Nil(t, trigger(c), "a second tap while the charge runs")
	// Unanswered for a minute: sent again, with the same id (the
	// provider's idempotency key).
	advance(AutoTopUpRetry + time.Second)
	again := trigger(c)
	require.NotNil(t, again)
	require.Equal(t, ch.ID, again.ID)
	require.NoError(t, l.RecordAutoTopUp(ctx, org, ch.ID, ChargeSucceeded, "pi_c1", ""))
	require.NoError(t, l.RecordAutoTopUp(ctx, org, ch.ID, ChargeSucceeded, "pi_c1", ""))
	// Stripe's webhook of the same payment: nothing more.
	require.NoError(t, l.RecordPayment(ctx, "stripe", payment.Event{ID: "evt_c1", Type: payment.TypePaymentSucceeded, Payment: "pi_c1",
		Org: org, Card: terminaltx.CardHex(c.uid), Amount: 2000, Currency: "EUR", AutoTopUp: ch.ID.String()}))
	require.Equal(t, int64(2000), balance(t, l, PendingLoads, ""))
	require.Nil(t, trigger(c), "credit and pending loads above the threshold")
	loadAll(t, l, c)
	_, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 1900)})
	require.NoError(t, err)

	// The webhook first this time, then the server's answer.
	ch2 := trigger(c)
	require.NotNil(t, ch2)
	require.NotEqual(t, ch.ID, ch2.ID)
	require.NoError(t, l.RecordPayment(ctx, "stripe", payment.Event{ID: "evt_c2", Type: payment.TypePaymentSucceeded, Payment: "pi_c2",
		Org: org, Card: terminaltx.CardHex(c.uid), Amount: 2000, Currency: "EUR", AutoTopUp: ch2.ID.String()}))
	require.NoError(t, l.RecordAutoTopUp(ctx, org, ch2.ID, ChargeSucceeded, "pi_c2", ""))
	require.Equal(t, int64(2000), balance(t, l, PendingLoads, ""))
	loadAll(t, l, c)
	_, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 2000)})
	require.NoError(t, err)
	require.Equal(t, int64(200), c.bal)
	require.Nil(t, trigger(c), "4000 charged today: the daily limit")
	advance(24 * time.Hour)
	ch3 := trigger(c)
	require.NotNil(t, ch3, "a new day")
	charges, err := l.AutoTopUpCharges(ctx, org, c.uid)
	require.NoError(t, err)
	require.Len(t, charges, 3)
	require.Equal(t, ch3.ID, charges[0].ID)
	require.Equal(t, "succeeded", charges[1].Status)
	requireInvariants(t, l)

	// Many terminals see card d below its threshold at once: one charge.
	_, err = l.SetAutoTopUp(ctx, org, d.uid, "stripe", 1000, 500, 5000)
	require.NoError(t, err)
	saveMethod(t, l, d, "d")
	var n atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			ch, err := l.TriggerAutoTopUp(ctx, org, d.uid)
			if err == nil && ch != nil {
				n.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), n.Load())
	charges, err = l.AutoTopUpCharges(ctx, org, d.uid)
	require.NoError(t, err)
	require.Len(t, charges, 1)
	// It is declined: the rule is off, with the reason, and no load.
	require.NoError(t, l.RecordAutoTopUp(ctx, org, charges[0].ID, ChargeFailed, "", "card_declined"))
	r, err = l.AutoTopUp(ctx, org, d.uid)
	require.NoError(t, err)
	require.Equal(t, "disabled", r.Status)
	require.Contains(t, r.DisabledReason, "card_declined")
	require.Nil(t, trigger(d))
	// Set again, and the method saved again: a charge that needs the
	// cardholder (3-D Secure), told by the webhook, disables it too.
	_, err = l.SetAutoTopUp(ctx, org, d.uid, "stripe", 1000, 500, 5000)
	require.NoError(t, err)
	saveMethod(t, l, d, "d2")
	advance(time.Second)
	ch4 := trigger(d)
	require.NotNil(t, ch4)
	require.NoError(t, l.RecordPayment(ctx, "stripe", payment.Event{ID: "evt_d4", Type: payment.TypePaymentFailed, Payment: "pi_d4",
		Org: org, Card: terminaltx.CardHex(d.uid), Amount: 1000, Status: ChargeRequiresAction, AutoTopUp: ch4.ID.String()}))
	r, err = l.AutoTopUp(ctx, org, d.uid)
	require.NoError(t, err)
	require.Equal(t, "disabled", r.Status)
	charges, err = l.AutoTopUpCharges(ctx, org, d.uid)
	require.NoError(t, err)
	require.Equal(t, ChargeRequiresAction, charges[0].Status)
	require.Zero(t, balance(t, l, PendingLoads, ""), "nothing of a failed charge")
	requireInvariants(t, l)
}
