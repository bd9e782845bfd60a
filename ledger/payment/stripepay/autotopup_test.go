package stripepay_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
	"github.com/loopcard/loopcard/ledger/payment/stripepay/stripemock"
)

// TestAutoTopUpOnStripeMock saves a method in a Checkout Session in setup
// mode for a new Customer, and charges it off-session, on stripe-mock,
// which checks every parameter against Stripe's spec: what is sent is
// asserted here. stripe-mock answers a fixed payment intent
// (requires_payment_method): a confirmed charge that still wants a
// method failed.
func TestAutoTopUpOnStripeMock(t *testing.T) {
	p, rec := newProvider(t)
	ctx := context.Background()
	to, cus, err := p.SaveMethod(ctx, 7, "04000000000001", "", "https://cards.example/account?autotopup=saved")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(to, "https://"), to)
	require.NotEmpty(t, cus)
	require.Len(t, rec.reqs, 2)
	require.Equal(t, "/v1/customers", rec.reqs[0].path)
	require.Equal(t, "04000000000001", rec.reqs[0].form.Get("metadata[loopcard_card]"))
	require.Equal(t, "loopcard-customer-7-04000000000001", rec.reqs[0].header.Get("Idempotency-Key"))
	s := rec.reqs[1]
	require.Equal(t, "/v1/checkout/sessions", s.path)
	require.Equal(t, "setup", s.form.Get("mode"))
	require.Equal(t, cus, s.form.Get("customer"))
	require.Equal(t, "card", s.form.Get("payment_method_types[0]"))
	require.Equal(t, "setup", s.form.Get("setup_intent_data[metadata][loopcard_autotopup]"))
	require.Equal(t, "7", s.form.Get("setup_intent_data[metadata][loopcard_org]"))
	require.Equal(t, "https://cards.example/account?autotopup=cancelled", s.form.Get("cancel_url"))
	for _, r := range rec.reqs {
		for k := range r.form {
			require.NotContains(t, k, "card[number]", "Loopcard never sends card data")
		}
	}

	// Again with the customer: none made.
	_, cus2, err := p.SaveMethod(ctx, 7, "04000000000001", cus, "https://cards.example/account?autotopup=saved")
	require.NoError(t, err)
	require.Equal(t, cus, cus2)
	require.Len(t, rec.reqs, 3)

	c := payment.Charge{Org: 7, Card: "04000000000001", ID: "0190f1a2-0000-7000-8000-000000000001", Amount: 2000, Customer: cus, Method: "pm_1"}
	res, err := p.Charge(ctx, c)
	require.NoError(t, err)
	pi := rec.reqs[3]
	require.Equal(t, "/v1/payment_intents", pi.path)
	for k, v := range map[string]string{"amount": "2000", "currency": "eur", "customer": cus, "payment_method": "pm_1", "confirm": "true",
		"off_session": "true", "metadata[loopcard_autotopup]": c.ID, "metadata[loopcard_card]": "04000000000001", "metadata[loopcard_org]": "7"} {
		require.Equal(t, v, pi.form.Get(k), k)
	}
	require.Equal(t, "loopcard-autotopup-"+c.ID, pi.header.Get("Idempotency-Key"))
	require.Equal(t, payment.ChargeResult{Status: "failed", Ref: res.Ref, Reason: "requires_payment_method"}, res)
	require.NotEmpty(t, res.Ref)
	// Sent again: the same idempotency key.
	_, err = p.Charge(ctx, c)
	require.NoError(t, err)
	require.Equal(t, pi.header.Get("Idempotency-Key"), rec.reqs[4].header.Get("Idempotency-Key"))
	_, err = p.Charge(ctx, payment.Charge{Org: 7, Card: "04000000000001", ID: c.ID, Amount: 2000})
	require.Error(t, err, "no method")
}

// cardError answers every request as Stripe answers a declined
// off-session charge (HTTP 402, a card_error with the payment intent):
// stripe-mock cannot decline.
type cardError string

func (c cardError) RoundTrip(r *http.Request) (*http.Response, error) {
	body := `{"error":{"type":"card_error","code":"` + string(c) + `","decline_code":"","message":"declined",` +
		`"payment_intent":{"id":"pi_declined","object":"payment_intent","status":"requires_payment_method"}}}`
	if c == "authentication_required" {
		body = strings.Replace(body, `"requires_payment_method"`, `"requires_action"`, 1)
	}
	return &http.Response{StatusCode: 402, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
		Request: r}, nil
}

// TestAutoTopUpDeclined: a declined charge and one that needs the
// cardholder are answers, not errors.
func TestAutoTopUpDeclined(t *testing.T) {
	for _, tc := range []struct{ code, status string }{{"card_declined", "failed"}, {"authentication_required", "requires_action"}} {
		p, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test_x"), WebhookSecrets: []stripepay.Key{stripepay.NewKey("whsec_x")},
			URL: "http://stripe.invalid", HTTPClient: &http.Client{Transport: cardError(tc.code)}})
		require.NoError(t, err)
		res, err := p.Charge(context.Background(), payment.Charge{Org: 7, Card: "04000000000001", ID: "x", Amount: 2000, Customer: "cus_1", Method: "pm_1"})
		require.NoError(t, err, tc.code)
		require.Equal(t, payment.ChargeResult{Status: tc.status, Ref: "pi_declined", Reason: tc.code}, res)
	}
}

// TestAutoTopUpEvents reads the events of auto top-up, signed as Stripe
// signs them.
func TestAutoTopUpEvents(t *testing.T) {
	p, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test"), WebhookSecrets: []stripepay.Key{stripepay.NewKey("whsec_a")}})
	require.NoError(t, err)
	now := time.Now()
	setupMeta := map[string]any{stripepay.MetaOrg: "7", stripepay.MetaCard: "04000000000001", stripepay.MetaAutoTopUp: "setup"}
	chargeMeta := map[string]any{stripepay.MetaOrg: "7", stripepay.MetaCard: "04000000000001", stripepay.MetaAutoTopUp: "0190f1a2-0000-7000-8000-000000000001"}
	pi := func(extra map[string]any) map[string]any {
		m := map[string]any{"id": "pi_a", "object": "payment_intent", "amount": 2000, "currency": "eur", "metadata": chargeMeta}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	base := payment.Event{Payment: "pi_a", Org: 7, Card: "04000000000001", Amount: 2000, Currency: "EUR", AutoTopUp: "0190f1a2-0000-7000-8000-000000000001"}
	with := func(typ, status string) payment.Event { e := base; e.Type, e.Status = typ, status; return e }
	tests := []struct {
		typ    string
		object map[string]any
		want   payment.Event
	}{
		{"setup_intent.succeeded", map[string]any{"id": "seti_1", "object": "setup_intent", "customer": "cus_1", "payment_method": "pm_1",
			"status": "succeeded", "metadata": setupMeta},
			payment.Event{Type: payment.TypeMethodSaved, Payment: "seti_1", Org: 7, Card: "04000000000001", Customer: "cus_1", Method: "pm_1"}},
		{"setup_intent.succeeded", map[string]any{"id": "seti_2", "object": "setup_intent", "customer": "cus_1", "payment_method": "pm_1",
			"status": "succeeded", "metadata": map[string]any{}},
			payment.Event{Type: "stripe.setup_intent.succeeded"}},
		{"payment_intent.succeeded", pi(nil), with(payment.TypePaymentSucceeded, "")},
		{"payment_intent.payment_failed", pi(map[string]any{"last_payment_error": map[string]any{"type": "card_error", "code": "card_declined",
			"decline_code": "insufficient_funds"}}), with(payment.TypePaymentFailed, "insufficient_funds")},
		{"payment_intent.payment_failed", pi(map[string]any{"last_payment_error": map[string]any{"type": "card_error", "code": "authentication_required"}}),
			with(payment.TypePaymentFailed, "requires_action")},
		{"payment_intent.requires_action", pi(nil), with(payment.TypePaymentFailed, "requires_action")},
		{"payment_intent.requires_action", pi(map[string]any{"metadata": map[string]any{stripepay.MetaOrg: "7", stripepay.MetaCard: "04000000000001"}}),
			payment.Event{Type: "stripe.payment_intent.requires_action", Payment: "pi_a", Org: 7, Card: "04000000000001", Amount: 2000, Currency: "EUR"}},
	}
	for _, tc := range tests {
		body := stripemock.Event("evt_"+tc.typ, tc.typ, now, tc.object)
		got, err := p.Parse(http.Header{stripepay.Header: {stripemock.Sign("whsec_a", body, now)}}, body, now)
		require.NoError(t, err, tc.typ)
		tc.want.ID, tc.want.Created = "evt_"+tc.typ, now.Unix()
		require.Equal(t, tc.want, got, tc.typ)
	}
}
