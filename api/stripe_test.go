package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
	"github.com/loopcard/loopcard/ledger/payment/stripepay/stripemock"
)

// sessionLog keeps the success URLs of the Checkout Sessions created.
type sessionLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	back []string
}

func (s *sessionLog) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && strings.HasSuffix(r.URL.Path, "/checkout/sessions") {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f, _ := url.ParseQuery(string(b))
		s.mu.Lock()
		s.back = append(s.back, f.Get("success_url"))
		s.mu.Unlock()
	}
	return s.next.RoundTrip(r)
}

// TestStripeTopUp runs online top-ups through Stripe: Checkout Sessions
// created on stripe-mock, and the payment's every state delivered as
// Stripe-signed webhooks to POST /v1/payments/webhook. The webhook arrives
// before the cardholder is back; a double-clicked top-up makes two
// checkouts of which only the paid one credits; repeated and
// out-of-order deliveries change nothing.
func TestStripeTopUp(t *testing.T) {
	mockURL, hc := stripemock.Start(t)
	log := &sessionLog{next: hc.Transport}
	const whsec = "whsec_test_secret"
	prov, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test_x"), WebhookSecrets: []stripepay.Key{stripepay.NewKey(whsec)},
		Methods: []string{"ideal", "bancontact", "card"}, URL: mockURL, HTTPClient: &http.Client{Transport: log, Timeout: 30 * time.Second}})
	require.NoError(t, err)
	e := newEnv(t, envOptions{cards: 1, payments: &api.Payments{Provider: "stripe", Webhooks: prov, TopUps: prov,
		Origin: "https://checkout.stripe.com"}})
	card := e.cards[0]
	ctx := context.Background()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	holder := &http.Client{Transport: e.client.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := e.url + "/c/" + card.token
	resp, err := holder.Get(page)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := csrfField.FindStringSubmatch(string(b))
	require.NotNil(t, csrf)
	// A double click: two top-ups started.
	for range 2 {
		req, err := http.NewRequest("POST", page+"/topup", strings.NewReader(url.Values{"amount": {"2000"}, "csrf": {csrf[1]}}.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", e.url)
		resp, err := holder.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "https://"), resp.Header.Get("Location"))
	}
	require.Len(t, log.back, 2)
	for _, u := range log.back {
		require.NotContains(t, u, card.token, "Stripe sees an opaque checkout id, never the card's token")
	}

	deliver := func(id, typ string, object map[string]any) int {
		t.Helper()
		now := e.clock.Now()
		body := stripemock.Event(id, typ, now, object)
		req, err := http.NewRequest("POST", e.url+"/v1/payments/webhook", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(stripepay.Header, stripemock.Sign(whsec, body, now))
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	meta := map[string]any{stripepay.MetaOrg: "1", stripepay.MetaCard: card.hex()}
	session := func(pi, status string, amount int) map[string]any {
		return map[string]any{"id": "cs_" + pi, "object": "checkout.session", "payment_intent": pi, "payment_status": status,
			"amount_total": amount, "currency": "eur", "metadata": meta}
	}
	pending := func() int64 {
		t.Helper()
		loads, err := e.ledger.PendingLoads(ctx, org, card.uid)
		require.NoError(t, err)
		var sum int64
		for _, l := range loads {
			sum += l.Amount
		}
		return sum
	}

	// The webhook of the first checkout comes before the cardholder does,
	// twice, and as payment_intent.succeeded too: one pending load.
	require.Equal(t, 200, deliver("evt_1", "checkout.session.completed", session("pi_1", "paid", 2000)))
	require.Equal(t, 200, deliver("evt_1", "checkout.session.completed", session("pi_1", "paid", 2000)))
	require.Equal(t, 200, deliver("evt_1b", "payment_intent.succeeded", map[string]any{"id": "pi_1", "object": "payment_intent",
		"amount": 2000, "currency": "eur", "metadata": meta}))
	require.Equal(t, int64(2000), pending())
	// Then the cardholder comes back: the card page shows the top-up.
	resp, err = holder.Get(log.back[0])
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/c/"+card.token+"?topup=done", resp.Header.Get("Location"))
	resp, err = holder.Get(page + "?topup=done")
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(b), "Waiting to be loaded")
	require.Contains(t, string(b), "€20.00")
	// The second checkout of the double click is never paid: it expires.
	require.Equal(t, 200, deliver("evt_2", "checkout.session.expired", session("pi_2", "unpaid", 2000)))
	require.Equal(t, int64(2000), pending())

	// A method that confirms later: processing, then succeeded; another
	// that fails; one in a state nobody documented.
	require.Equal(t, 200, deliver("evt_3", "checkout.session.completed", session("pi_3", "unpaid", 1500)))
	require.Equal(t, int64(2000), pending(), "processing credits nothing")
	require.Equal(t, 200, deliver("evt_4", "checkout.session.async_payment_succeeded", session("pi_3", "paid", 1500)))
	require.Equal(t, int64(3500), pending())
	require.Equal(t, 200, deliver("evt_5", "checkout.session.completed", session("pi_5", "unpaid", 900)))
	require.Equal(t, 200, deliver("evt_6", "checkout.session.async_payment_failed", session("pi_5", "unpaid", 900)))
	require.Equal(t, 200, deliver("evt_7", "checkout.session.completed", session("pi_7", "mostly_paid", 800)))
	require.Equal(t, int64(3500), pending())
	parked, err := e.ledger.UnmatchedPayments(ctx, org)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	require.Equal(t, ledger.ReasonUnknownState, parked[0].Reason)

	// Refunded at Stripe's dashboard: 500 of pi_3, still pending.
	require.Equal(t, 200, deliver("evt_8", "charge.refunded", map[string]any{"id": "ch_3", "object": "charge", "payment_intent": "pi_3",
		"amount": 1500, "amount_refunded": 500, "currency": "eur"}))
	require.Equal(t, int64(3000), pending())
	// A chargeback of pi_1: taken back from the pending load, alert.
	require.Equal(t, 200, deliver("evt_9", "charge.dispute.created", map[string]any{"id": "dp_1", "object": "dispute", "payment_intent": "pi_1",
		"amount": 2000, "currency": "eur", "status": "needs_response"}))
	require.Equal(t, int64(1000), pending())
	alerts, err := e.ledger.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.Equal(t, ledger.ReasonChargeback, alerts[0].Kind)
	require.NoError(t, e.ledger.Verify(ctx))

	// A delivery signed with another secret, or replayed late: refused,
	// nothing changes.
	before := e.fingerprint()
	body := stripemock.Event("evt_f", "checkout.session.completed", e.clock.Now(), session("pi_f", "paid", 5000))
	for _, h := range []string{stripemock.Sign("whsec_forged", body, e.clock.Now()), stripemock.Sign(whsec, body, e.clock.Now().Add(-time.Hour)), ""} {
		req, err := http.NewRequest("POST", e.url+"/v1/payments/webhook", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(stripepay.Header, h)
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 400, resp.StatusCode)
	}
	require.Equal(t, before, e.fingerprint())

	// An endpoint created on another API version: its events, signed
	// well, are refused with a log line naming both versions and not the
	// payload.
	other := bytes.Replace(body, []byte(stripepay.APIVersion), []byte("2024-06-20"), 1)
	req, err := http.NewRequest("POST", e.url+"/v1/payments/webhook", bytes.NewReader(other))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(stripepay.Header, stripemock.Sign(whsec, other, e.clock.Now()))
	resp, err = e.client.Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 400, resp.StatusCode)
	require.Contains(t, string(b), "this endpoint reads 2025-08-27.basil")
	require.Equal(t, before, e.fingerprint())
	var line string
	for l := range strings.SplitSeq(e.logs.String(), "\n") {
		if strings.Contains(l, "another API version") {
			line = l
		}
	}
	require.Contains(t, line, `"event_version":"2024-06-20"`)
	require.Contains(t, line, `"expected_version":"2025-08-27.basil"`)
	require.Contains(t, line, `"level":"WARN"`)
	require.NotContains(t, e.logs.String(), "pi_f", "no payload in the logs")
}
