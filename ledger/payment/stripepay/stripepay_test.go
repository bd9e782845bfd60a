package stripepay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
	"github.com/loopcard/loopcard/ledger/payment/stripepay/stripemock"
)

// recorder keeps the requests sent to stripe-mock.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	path   string
	header http.Header
	form   url.Values
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	form, _ := url.ParseQuery(string(body))
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{path: req.URL.Path, header: req.Header.Clone(), form: form})
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func newProvider(t *testing.T, methods ...string) (*stripepay.Provider, *recorder) {
	t.Helper()
	u, hc := stripemock.Start(t)
	rec := &recorder{next: hc.Transport}
	p, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test_123\n"), WebhookSecrets: []stripepay.Key{stripepay.NewKey("whsec_a")},
		Methods: methods, URL: u, HTTPClient: &http.Client{Transport: rec, Timeout: 30 * time.Second}})
	require.NoError(t, err)
	return p, rec
}

// TestCheckoutSession creates a Checkout Session on stripe-mock, which
// checks every parameter against Stripe's OpenAPI spec: the organizer's
// payment methods, the amount in EUR, the card in the metadata of the
// session and its payment intent, and the way back.
func TestCheckoutSession(t *testing.T) {
	p, rec := newProvider(t, "ideal", "bancontact")
	to, err := p.Start(context.Background(), 7, "04000000000001", 2500, "https://cards.example/topup/abc?topup=done")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(to, "https://"), to)
	require.Len(t, rec.reqs, 1)
	r := rec.reqs[0]
	require.Equal(t, "/v1/checkout/sessions", r.path)
	require.Equal(t, "ideal", r.form.Get("payment_method_types[0]"))
	require.Equal(t, "bancontact", r.form.Get("payment_method_types[1]"))
	require.NotContains(t, r.form, "payment_method_types[2]", "only the organizer's methods")
	require.Equal(t, "2500", r.form.Get("line_items[0][price_data][unit_amount]"))
	require.Equal(t, "eur", r.form.Get("line_items[0][price_data][currency]"))
	require.Equal(t, "04000000000001", r.form.Get("metadata[loopcard_card]"))
	require.Equal(t, "7", r.form.Get("payment_intent_data[metadata][loopcard_org]"))
	require.Equal(t, "https://cards.example/topup/abc?topup=done", r.form.Get("success_url"))
	require.Equal(t, "https://cards.example/topup/abc?topup=cancelled", r.form.Get("cancel_url"))
	require.Equal(t, "Bearer sk_test_123", r.header.Get("Authorization"), "the key from the file, trimmed")

	_, err = p.Start(context.Background(), 7, "04000000000001", 0, "https://cards.example/topup/abc?topup=done")
	require.Error(t, err)
	_, err = stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk"), WebhookSecrets: []stripepay.Key{stripepay.NewKey("w")},
		Methods: []string{"paypal"}})
	require.ErrorContains(t, err, "payment method")
}

// TestRefundIdempotent sends a partial refund to stripe-mock with the
// line's idempotency key.
func TestRefundIdempotent(t *testing.T) {
	p, rec := newProvider(t)
	id, err := p.Refund(context.Background(), "pi_123", 700, "line-1")
	require.NoError(t, err)
	require.NotEmpty(t, id)
	r := rec.reqs[0]
	require.Equal(t, "/v1/refunds", r.path)
	require.Equal(t, "pi_123", r.form.Get("payment_intent"))
	require.Equal(t, "700", r.form.Get("amount"))
	require.Equal(t, "loopcard-refund-line-1", r.header.Get("Idempotency-Key"))
}

func meta() map[string]any {
	return map[string]any{stripepay.MetaOrg: "7", stripepay.MetaCard: "04000000000001"}
}

func session(status string) map[string]any {
	return map[string]any{"id": "cs_1", "object": "checkout.session", "payment_intent": "pi_1", "payment_status": status,
		"amount_total": 2500, "currency": "eur", "metadata": meta()}
}

// TestWebhookEvents signs Stripe events exactly as Stripe does and reads
// each state of a payment from them.
func TestWebhookEvents(t *testing.T) {
	p, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test"),
		WebhookSecrets: []stripepay.Key{stripepay.NewKey("whsec_old"), stripepay.NewKey("whsec_new")}})
	require.NoError(t, err)
	now := time.Now()
	pi := func(extra map[string]any) map[string]any {
		m := map[string]any{"id": "pi_1", "object": "payment_intent", "amount": 2500, "currency": "eur", "metadata": meta()}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		typ    string
		object map[string]any
		want   payment.Event
	}{
		{"checkout.session.completed", session("paid"),
			payment.Event{Type: payment.TypePaymentSucceeded, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"checkout.session.completed", session("unpaid"),
			payment.Event{Type: payment.TypePaymentProcessing, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"checkout.session.completed", session("half_paid_on_tuesdays"),
			payment.Event{Type: payment.TypeUnknown, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR",
				Status: "checkout.session.completed/half_paid_on_tuesdays"}},
		{"checkout.session.async_payment_succeeded", session("paid"),
			payment.Event{Type: payment.TypePaymentSucceeded, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"checkout.session.async_payment_failed", session("unpaid"),
			payment.Event{Type: payment.TypePaymentFailed, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"checkout.session.expired", session("unpaid"),
			payment.Event{Type: payment.TypePaymentExpired, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"payment_intent.succeeded", pi(nil),
			payment.Event{Type: payment.TypePaymentSucceeded, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"payment_intent.processing", pi(nil),
			payment.Event{Type: payment.TypePaymentProcessing, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"payment_intent.payment_failed", pi(nil),
			payment.Event{Type: payment.TypePaymentFailed, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"payment_intent.canceled", pi(nil),
			payment.Event{Type: payment.TypePaymentExpired, Payment: "pi_1", Org: 7, Card: "04000000000001", Amount: 2500, Currency: "EUR"}},
		{"payment_intent.succeeded", pi(map[string]any{"metadata": map[string]any{}}),
			payment.Event{Type: "stripe.payment_intent.succeeded", Payment: "pi_1", Amount: 2500, Currency: "EUR"}},
		{"charge.refunded", map[string]any{"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "amount": 2500, "amount_refunded": 1000, "currency": "eur"},
			payment.Event{Type: payment.TypePaymentRefunded, Payment: "pi_1", Amount: 2500, Refunded: 1000, Currency: "EUR"}},
		{"charge.dispute.created", map[string]any{"id": "dp_1", "object": "dispute", "payment_intent": "pi_1", "amount": 2500, "currency": "eur", "status": "needs_response"},
			payment.Event{Type: payment.TypePaymentDisputed, Payment: "pi_1", Dispute: "dp_1", Amount: 2500, Currency: "EUR"}},
		{"charge.dispute.closed", map[string]any{"id": "dp_1", "object": "dispute", "payment_intent": "pi_1", "amount": 2500, "currency": "eur", "status": "won"},
			payment.Event{Type: payment.TypeDisputeWon, Payment: "pi_1", Dispute: "dp_1", Amount: 2500, Currency: "EUR"}},
		{"charge.dispute.closed", map[string]any{"id": "dp_1", "object": "dispute", "payment_intent": "pi_1", "amount": 2500, "currency": "eur", "status": "lost"},
			payment.Event{Type: "stripe.charge.dispute.closed", Payment: "pi_1", Dispute: "dp_1", Amount: 2500, Currency: "EUR", Status: "lost"}},
		{"customer.created", map[string]any{"id": "cus_1", "object": "customer"},
			payment.Event{Type: "stripe.customer.created"}},
	}
	for i, tc := range tests {
		body := stripemock.Event("evt_"+tc.typ, tc.typ, now, tc.object)
		secret := []string{"whsec_old", "whsec_new"}[i%2] // either secret, while Stripe rolls it
		h := http.Header{stripepay.Header: {stripemock.Sign(secret, body, now)}}
		got, err := p.Parse(h, body, now)
		require.NoError(t, err, tc.typ)
		tc.want.ID, tc.want.Created = "evt_"+tc.typ, now.Unix()
		require.Equal(t, tc.want, got, tc.typ)
	}

	body := stripemock.Event("evt_x", "checkout.session.completed", now, session("paid"))
	refused := []struct {
		name   string
		header string
		now    time.Time
		want   error
	}{
		{"other secret", stripemock.Sign("whsec_other", body, now), now, payment.ErrSignature},
		{"no header", "", now, payment.ErrNoSignature},
		{"replayed later", stripemock.Sign("whsec_new", body, now), now.Add(10 * time.Minute), payment.ErrTimestamp},
		{"body changed", stripemock.Sign("whsec_new", bytes.Replace(body, []byte("2500"), []byte("9500"), 1), now), now, payment.ErrSignature},
	}
	for _, tc := range refused {
		_, err := p.Parse(http.Header{stripepay.Header: {tc.header}}, body, tc.now)
		require.True(t, errors.Is(err, tc.want), "%s: %v", tc.name, err)
	}
	// An endpoint on another API version: its events are refused, not
	// misread, with an error that names both versions and not the payload.
	require.Equal(t, "2025-08-27.basil", stripepay.APIVersion, "docs/run-an-event.md names the pinned version")
	for _, v := range []string{"2020-08-27", "2025-07-30.basil", "2025-09-30.clover"} {
		old := bytes.Replace(body, []byte(stripe.APIVersion), []byte(v), 1)
		_, err = p.Parse(http.Header{stripepay.Header: {stripemock.Sign("whsec_new", old, now)}}, old, now)
		require.ErrorIs(t, err, payment.ErrEvent, v)
		var ve *stripepay.VersionError
		require.ErrorAs(t, err, &ve, v)
		require.Equal(t, v, ve.Got)
		require.Contains(t, err.Error(), "2025-08-27.basil")
		require.NotContains(t, err.Error(), "cs_1")
	}
}
