package ledger

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
	"github.com/loopcard/loopcard/ledger/payment/stripepay/stripemock"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// topupState returns the status and amount of a provider payment's topup.
func topupState(t *testing.T, l *Ledger, ref string) (string, int64) {
	t.Helper()
	var st string
	var amount int64
	require.NoError(t, l.pool.QueryRow(context.Background(), `SELECT status, amount FROM topups WHERE org_id = $1 AND provider_ref = $2`,
		org, ref).Scan(&st, &amount))
	return st, amount
}

func balance(t *testing.T, l *Ledger, kind AccountKind, ref string) int64 {
	t.Helper()
	b, err := l.Balance(context.Background(), org, kind, ref)
	require.NoError(t, err)
	return b
}

// TestProviderStates walks a payment through each provider state, with
// deliveries repeated and out of order: only a succeeded payment credits,
// once; failed and expired close a processing one; a late success credits
// after all; a payment that never confirms is abandoned.
func TestProviderStates(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	c := newCard(1)
	fund(t, l, 100, c)
	cardHex := terminaltx.CardHex(c.uid)
	ev := func(id, typ, pay string, amount int64) payment.Event {
		return payment.Event{ID: id, Type: typ, Payment: pay, Org: org, Card: cardHex, Amount: amount, Currency: "eur"}
	}
	steps := []struct {
		name    string
		ev      payment.Event
		pay     string
		status  string
		pending int64 // the organizer's pending loads after the step
	}{
		{"succeeded", ev("e1", payment.TypePaymentSucceeded, "pi_ok", 500), "pi_ok", "pending", 500},
		{"succeeded, delivered again", ev("e1", payment.TypePaymentSucceeded, "pi_ok", 500), "pi_ok", "pending", 500},
		{"same payment, another event (double submission)", ev("e1b", payment.TypePaymentSucceeded, "pi_ok", 500), "pi_ok", "pending", 500},
		{"processing after succeeded (out of order)", ev("e1c", payment.TypePaymentProcessing, "pi_ok", 500), "pi_ok", "pending", 500},
		{"failed after succeeded (out of order)", ev("e1d", payment.TypePaymentFailed, "pi_ok", 0), "pi_ok", "pending", 500},
		{"processing", ev("e2", payment.TypePaymentProcessing, "pi_slow", 700), "pi_slow", "processing", 500},
		{"processing confirmed", ev("e3", payment.TypePaymentSucceeded, "pi_slow", 700), "pi_slow", "pending", 1200},
		{"expired after it succeeded", ev("e3b", payment.TypePaymentExpired, "pi_slow", 0), "pi_slow", "pending", 1200},
		{"processing, then failed", ev("e4", payment.TypePaymentProcessing, "pi_fail", 300), "pi_fail", "processing", 1200},
		{"failed", ev("e5", payment.TypePaymentFailed, "pi_fail", 0), "pi_fail", "failed", 1200},
		{"processing, then expired", ev("e6", payment.TypePaymentProcessing, "pi_exp", 200), "pi_exp", "processing", 1200},
		{"expired", ev("e7", payment.TypePaymentExpired, "pi_exp", 0), "pi_exp", "abandoned", 1200},
		{"succeeded after it expired: the money came", ev("e8", payment.TypePaymentSucceeded, "pi_exp", 200), "pi_exp", "pending", 1400},
		{"processing that never confirms", ev("e9", payment.TypePaymentProcessing, "pi_never", 900), "pi_never", "processing", 1400},
	}
	for _, s := range steps {
		require.NoError(t, l.RecordPayment(ctx, "stripe", s.ev), s.name)
		st, _ := topupState(t, l, s.pay)
		require.Equal(t, s.status, st, s.name)
		require.Equal(t, s.pending, balance(t, l, PendingLoads, ""), s.name)
		requireInvariants(t, l)
	}
	loads, err := l.PendingLoads(ctx, org, c.uid)
	require.NoError(t, err)
	require.Len(t, loads, 3, "pi_ok, pi_slow, pi_exp: each credited once")

	// The processing payment is abandoned once it waited long enough.
	n, err := l.ExpireProcessing(ctx, time.Hour)
	require.NoError(t, err)
	require.Zero(t, n, "not yet")
	l.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	n, err = l.ExpireProcessing(ctx, time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	st, _ := topupState(t, l, "pi_never")
	require.Equal(t, "abandoned", st)
	require.Equal(t, int64(1400), balance(t, l, PendingLoads, ""), "nothing was credited for it")

	// A state nobody documented is parked for HQ, nothing credited.
	require.NoError(t, l.RecordPayment(ctx, "stripe", payment.Event{ID: "e10", Type: payment.TypeUnknown, Payment: "pi_odd",
		Org: org, Card: cardHex, Amount: 400, Status: "requires_wizardry"}))
	parked, err := l.UnmatchedPayments(ctx, org)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	require.Equal(t, ReasonUnknownState, parked[0].Reason)
	require.Equal(t, int64(1400), balance(t, l, PendingLoads, ""))
	requireInvariants(t, l)
}

// loadAll writes the card's pending loads onto it.
func loadAll(t *testing.T, l *Ledger, c *card) {
	t.Helper()
	ctx := context.Background()
	loads, err := l.PendingLoads(ctx, org, c.uid)
	require.NoError(t, err)
	for _, p := range loads {
		c.seq++
		require.NoError(t, l.LoadPending(ctx, org, c.uid, p.ID, &CardWrite{Seq: c.seq, Before: c.bal, After: c.bal + p.Amount}))
		c.bal += p.Amount
	}
}

// TestChargebackAfterSpent: a payment charged back after most of its
// credit was spent takes back what is left on the card, books the rest to
// the organizer's chargeback losses, raises an alert that blocks the card;
// a repeated dispute changes nothing.
func TestChargebackAfterSpent(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 100, c) // 100 cash
	succ := payment.Event{ID: "e1", Type: payment.TypePaymentSucceeded, Payment: "pi_1", Org: org,
		Card: terminaltx.CardHex(c.uid), Amount: 2000, Currency: "EUR"}
	require.NoError(t, l.RecordPayment(ctx, "stripe", succ))
	loadAll(t, l, c)
	_, err := l.Upload(ctx, org, [][]byte{bar.pay(t, c, 1800)})
	require.NoError(t, err)
	require.Equal(t, int64(300), balance(t, l, Card, terminaltx.CardHex(c.uid)))

	dispute := payment.Event{ID: "e2", Type: payment.TypePaymentDisputed, Payment: "pi_1", Dispute: "dp_1", Amount: 2000}
	require.NoError(t, l.RecordPayment(ctx, "stripe", dispute))
	require.Zero(t, balance(t, l, Card, terminaltx.CardHex(c.uid)), "what was left is taken back")
	require.Equal(t, int64(1700), balance(t, l, ChargebackLosses, ""), "the spent part is the organizer's loss")
	rep, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, int64(1700), rep.ChargebackLosses, "the event report shows it")
	require.Zero(t, rep.ProviderRefundLosses)
	require.Equal(t, int64(-2000)+2000, balance(t, l, ProviderClearing, "stripe"), "the provider took the money back")
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.Equal(t, ReasonChargeback, alerts[0].Kind)
	require.True(t, alerts[0].Blocking)
	var status string
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT status FROM cards WHERE org_id = $1 AND card_id = $2`, org, c.uid).Scan(&status))
	require.Equal(t, "blocked", status)
	requireInvariants(t, l)

	// Repeated, and another event of the same dispute: nothing more.
	require.NoError(t, l.RecordPayment(ctx, "stripe", dispute))
	dispute.ID = "e3"
	require.NoError(t, l.RecordPayment(ctx, "stripe", dispute))
	require.Equal(t, int64(1700), balance(t, l, ChargebackLosses, ""))
	alerts, err = l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	requireInvariants(t, l)
}

// stripeEvent signs a Stripe event as Stripe does and reads it with
// stripepay, as the webhook endpoint does.
func stripeEvent(t *testing.T, id, typ string, object map[string]any) payment.Event {
	t.Helper()
	prov, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test_x"), WebhookSecrets: []stripepay.Key{stripepay.NewKey("whsec_x")}})
	require.NoError(t, err)
	now := time.Now()
	body := stripemock.Event(id, typ, now, object)
	e, err := prov.Parse(map[string][]string{stripepay.Header: {stripemock.Sign("whsec_x", body, now)}}, body, now)
	require.NoError(t, err)
	return e
}

// TestChargebackWon: a chargeback closed as won (charge.dispute.closed,
// status won, signed as Stripe signs it) reverses the chargeback's
// booking: the loss is gone, the card's credit and the pending load taken
// come back; repeated, nothing more; a lost one changes nothing; a won
// notice before the chargeback's own leaves nothing booked.
func TestChargebackWon(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 100, c)
	meta := map[string]any{stripepay.MetaOrg: "7", stripepay.MetaCard: terminaltx.CardHex(c.uid)}
	pi := func(id string, amount int) map[string]any {
		return map[string]any{"id": id, "object": "payment_intent", "amount": amount, "currency": "eur", "metadata": meta}
	}
	dispute := func(id, pi, status string, amount int) map[string]any {
		return map[string]any{"id": id, "object": "dispute", "payment_intent": pi, "amount": amount, "currency": "eur", "status": status}
	}
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_1", "payment_intent.succeeded", pi("pi_1", 2000))))
	loadAll(t, l, c)
	_, err := l.Upload(ctx, org, [][]byte{bar.pay(t, c, 1800)})
	require.NoError(t, err)
	// A second payment, still waiting to be loaded.
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_2", "payment_intent.succeeded", pi("pi_2", 700))))
	clearing := balance(t, l, ProviderClearing, "stripe")

	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_3", "charge.dispute.created", dispute("dp_1", "pi_1", "needs_response", 2000))))
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_4", "charge.dispute.created", dispute("dp_2", "pi_2", "needs_response", 700))))
	require.Zero(t, balance(t, l, Card, terminaltx.CardHex(c.uid)))
	require.Equal(t, int64(1700), balance(t, l, ChargebackLosses, ""))
	require.Zero(t, balance(t, l, PendingLoads, ""))
	st, _ := topupState(t, l, "pi_2")
	require.Equal(t, "refunded", st)
	requireInvariants(t, l)

	// pi_1's dispute is lost: nothing changes. pi_2's and pi_1's are won.
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_5", "charge.dispute.closed", dispute("dp_1", "pi_1", "lost", 2000))))
	require.Equal(t, int64(1700), balance(t, l, ChargebackLosses, ""))
	won := stripeEvent(t, "evt_6", "charge.dispute.closed", dispute("dp_1", "pi_1", "won", 2000))
	require.Equal(t, payment.TypeDisputeWon, won.Type)
	require.NoError(t, l.RecordPayment(ctx, "stripe", won))
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_7", "charge.dispute.closed", dispute("dp_2", "pi_2", "won", 700))))
	require.Zero(t, balance(t, l, ChargebackLosses, ""), "the loss booking is reversed")
	require.Equal(t, int64(300), balance(t, l, Card, terminaltx.CardHex(c.uid)), "the card's credit is back")
	require.Equal(t, int64(700), balance(t, l, PendingLoads, ""), "the pending load is back")
	require.Equal(t, clearing, balance(t, l, ProviderClearing, "stripe"))
	st, amount := topupState(t, l, "pi_2")
	require.Equal(t, "pending", st)
	require.Equal(t, int64(700), amount)
	requireInvariants(t, l)
	rep, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Zero(t, rep.ChargebackLosses)

	// Repeated, or another event of the same close: nothing more.
	require.NoError(t, l.RecordPayment(ctx, "stripe", won))
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_8", "charge.dispute.closed", dispute("dp_1", "pi_1", "won", 2000))))
	require.Zero(t, balance(t, l, ChargebackLosses, ""))
	require.Equal(t, int64(300), balance(t, l, Card, terminaltx.CardHex(c.uid)))
	// The card stays blocked until HQ reviews the chargeback's alert;
	// then the load given back is written onto it.
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 2)
	for _, a := range alerts {
		_, err := l.ReviewAlert(ctx, org, a.ID, "hq", "dispute won")
		require.NoError(t, err)
	}
	require.NoError(t, l.UnblockCard(ctx, org, c.uid, "hq", "dispute won"))
	loadAll(t, l, c)
	require.Equal(t, int64(1000), balance(t, l, Card, terminaltx.CardHex(c.uid)))
	requireInvariants(t, l)

	// Won before the chargeback's own notice: that one books nothing.
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_9", "payment_intent.succeeded", pi("pi_3", 500))))
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_10", "charge.dispute.closed", dispute("dp_3", "pi_3", "won", 500))))
	require.NoError(t, l.RecordPayment(ctx, "stripe", stripeEvent(t, "evt_11", "charge.dispute.created", dispute("dp_3", "pi_3", "needs_response", 500))))
	require.Equal(t, int64(500), balance(t, l, PendingLoads, ""))
	requireInvariants(t, l)
}

// TestProviderRefundOutsideRun: a refund made at the provider (its
// dashboard) takes the credit back: first the pending load, then the card,
// then a loss; cumulative sums delivered out of order change nothing.
func TestProviderRefundOutsideRun(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 100, c)
	hex := terminaltx.CardHex(c.uid)
	rec := func(e payment.Event) {
		t.Helper()
		require.NoError(t, l.RecordPayment(ctx, "stripe", e))
		requireInvariants(t, l)
	}
	rec(payment.Event{ID: "a1", Type: payment.TypePaymentSucceeded, Payment: "pi_a", Org: org, Card: hex, Amount: 1000})
	// Partly refunded while still pending: the pending load shrinks.
	rec(payment.Event{ID: "a2", Type: payment.TypePaymentRefunded, Payment: "pi_a", Refunded: 400})
	st, amount := topupState(t, l, "pi_a")
	require.Equal(t, "pending", st)
	require.Equal(t, int64(600), amount)
	require.Equal(t, int64(600), balance(t, l, PendingLoads, ""))
	loadAll(t, l, c)
	require.Equal(t, int64(700), balance(t, l, Card, hex))
	_, err := l.Upload(ctx, org, [][]byte{bar.pay(t, c, 500)})
	require.NoError(t, err)
	// The rest refunded: 200 left on the card is taken, 400 was spent.
	rec(payment.Event{ID: "a3", Type: payment.TypePaymentRefunded, Payment: "pi_a", Refunded: 1000})
	require.Zero(t, balance(t, l, Card, hex))
	require.Equal(t, int64(400), balance(t, l, RefundLosses, ""))
	rep, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, int64(400), rep.ProviderRefundLosses, "the event report shows it")
	// An older notice (smaller sum) and a repeat: nothing.
	rec(payment.Event{ID: "a4", Type: payment.TypePaymentRefunded, Payment: "pi_a", Refunded: 400})
	rec(payment.Event{ID: "a3", Type: payment.TypePaymentRefunded, Payment: "pi_a", Refunded: 1000})
	require.Equal(t, int64(400), balance(t, l, RefundLosses, ""))
	require.Zero(t, balance(t, l, ProviderClearing, "stripe"))
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.Equal(t, ReasonProviderRefund, alerts[0].Kind)
	require.False(t, alerts[0].Blocking)
}

// TestPayoutRunMixesProviderAndSEPA: a refund run pays each card's credit
// back to its Stripe payments first (newest first, partial, up to what
// each paid and was not refunded yet) and the rest by SEPA; HQ reviews a
// dry run and approves its plan; the provider refunds go to stripe-mock
// with their line ids as idempotency keys; the ledger sums to zero, and
// Stripe's notice of the run's own refunds changes nothing.
func TestPayoutRunMixesProviderAndSEPA(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b, c := newCard(1), newCard(2), newCard(3)
	fund(t, l, 1000, a, b, c)
	succ := func(id, provider, pay string, cd *card, amount int64) {
		t.Helper()
		require.NoError(t, l.RecordPayment(ctx, provider, payment.Event{ID: id, Type: payment.TypePaymentSucceeded, Payment: pay,
			Org: org, Card: terminaltx.CardHex(cd.uid), Amount: amount, Currency: "EUR"}))
	}
	succ("e1", "stripe", "pi_a1", a, 1000)
	succ("e2", "paytest", "pay_a", a, 300) // a provider without refunds: SEPA
	succ("e3", "stripe", "pi_c", c, 800)
	loadAll(t, l, a)
	loadAll(t, l, c)
	succ("e4", "stripe", "pi_a2", a, 500) // still pending
	_, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 200)})
	require.NoError(t, err)
	// 300 of pi_c refunded in Stripe's dashboard before.
	require.NoError(t, l.RecordPayment(ctx, "stripe", payment.Event{ID: "e5", Type: payment.TypePaymentRefunded, Payment: "pi_c", Refunded: 300}))
	for _, cd := range []*card{a, b, c} {
		_, _, err := l.RequestRefund(ctx, org, RefundRequest{Card: cd.uid, Holder: "Holder " + terminaltx.CardHex(cd.uid), IBAN: "DE89370400440532013000"})
		require.NoError(t, err)
	}
	opts := PayoutOptions{RefundProviders: []string{"stripe"}, DryRun: true}

	// The dry run books nothing.
	before := balance(t, l, RefundsPayable, "")
	dry, err := l.RunPayout(ctx, org, testDebtor, l.now(), opts)
	require.NoError(t, err)
	require.Equal(t, 3, dry.Count)
	require.Equal(t, before, balance(t, l, RefundsPayable, ""))
	require.Empty(t, mustPending(t, l))
	st, _ := cardRefund(t, l, a)
	require.Equal(t, RefundPending, st, "a dry run fixes nothing")
	byCard := map[string]PayoutLine{}
	for _, ln := range dry.Lines {
		byCard[ln.Card] = ln
	}
	// a: 1000 cash + 1000 + 300 + 500 pending - 200 = 2600; back to pi_a2
	// (500) and pi_a1 (1000); the rest by SEPA.
	require.Equal(t, PayoutLine{Refund: byCard[terminaltx.CardHex(a.uid)].Refund, Card: terminaltx.CardHex(a.uid), Amount: 2600, Provider: 1500, SEPA: 1100},
		byCard[terminaltx.CardHex(a.uid)])
	require.Equal(t, int64(1000), byCard[terminaltx.CardHex(b.uid)].SEPA, "cash only: all SEPA")
	require.Zero(t, byCard[terminaltx.CardHex(b.uid)].Provider)
	// c: 1000 + 800 - 300 taken back = 1500; pi_c has 500 left to refund.
	require.Equal(t, int64(500), byCard[terminaltx.CardHex(c.uid)].Provider)
	require.Equal(t, int64(1000), byCard[terminaltx.CardHex(c.uid)].SEPA)

	// Approval of another plan is refused and books nothing.
	opts.DryRun, opts.Approve = false, "0000"
	_, err = l.RunPayout(ctx, org, testDebtor, l.now(), opts)
	require.ErrorIs(t, err, ErrPlanChanged)
	require.Equal(t, before, balance(t, l, RefundsPayable, ""))

	opts.Approve = dry.Plan
	run, err := l.RunPayout(ctx, org, testDebtor, l.now(), opts)
	require.NoError(t, err)
	require.Equal(t, dry.Plan, run.Plan)
	require.Equal(t, int64(2000), run.ProviderTotal)
	require.Equal(t, int64(3100), run.SEPATotal)
	require.Equal(t, run.SEPATotal+run.ProviderTotal, run.Total)
	x := string(run.XML)
	require.Equal(t, 3, strings.Count(x, "<CdtTrfTxInf>"))
	require.Contains(t, x, ">11.00<")
	require.Zero(t, balance(t, l, ProviderClearing, "stripe"), "what Stripe holds went back to the payments")
	require.Equal(t, int64(300), balance(t, l, ProviderClearing, "paytest"))
	requireInvariants(t, l)

	// The provider refunds, sent to stripe-mock.
	mockURL, hc := stripemock.Start(t)
	prov, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test_x"), WebhookSecrets: []stripepay.Key{stripepay.NewKey("whsec_x")},
		URL: mockURL, HTTPClient: hc})
	require.NoError(t, err)
	lines := mustPending(t, l)
	require.Len(t, lines, 3)
	got := map[string]int64{}
	for _, ln := range lines {
		got[ln.Payment] += ln.Amount
		id, err := prov.Refund(ctx, ln.Payment, ln.Amount, ln.Line.String())
		require.NoError(t, err)
		require.NoError(t, l.ProviderRefundSent(ctx, org, ln.Line, id))
	}
	require.Equal(t, map[string]int64{"pi_a1": 1000, "pi_a2": 500, "pi_c": 500}, got)
	require.Empty(t, mustPending(t, l))

	// Stripe then tells of its refunds: the run's own, nothing to do.
	require.NoError(t, l.RecordPayment(ctx, "stripe", payment.Event{ID: "e6", Type: payment.TypePaymentRefunded, Payment: "pi_c", Refunded: 800}))
	require.NoError(t, l.RecordPayment(ctx, "stripe", payment.Event{ID: "e7", Type: payment.TypePaymentRefunded, Payment: "pi_a1", Refunded: 1000}))
	require.Zero(t, balance(t, l, RefundLosses, ""))
	require.Zero(t, balance(t, l, ProviderClearing, "stripe"))
	requireInvariants(t, l)

	// A second run finds nothing more to refund to the payments.
	_, err = l.RunPayout(ctx, org, testDebtor, l.now(), PayoutOptions{RefundProviders: []string{"stripe"}})
	require.ErrorIs(t, err, ErrNothingToPay)
}

func mustPending(t *testing.T, l *Ledger) []ProviderRefund {
	t.Helper()
	p, err := l.PendingProviderRefunds(context.Background(), org)
	require.NoError(t, err)
	return p
}
