package api_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/paytest"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestOnlineTopUp walks an online top-up end to end over HTTPS: the card
// page's amount button, the test provider's page on its own origin, its
// signed webhook to POST /v1/payments/webhook, the ledger's pending load,
// and the card page showing it.
func TestOnlineTopUp(t *testing.T) {
	e := newEnv(t, envOptions{cards: 1})
	card := e.cards[0]
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	holder := &http.Client{Transport: e.client.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(c *http.Client, u string) (int, string, http.Header) {
		t.Helper()
		resp, err := c.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b), resp.Header
	}
	post := func(c *http.Client, u, origin string, form url.Values) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b), resp.Header
	}

	// The card page offers amounts; one leads to the provider's page.
	page := e.url + "/c/" + card.token
	status, body, _ := get(holder, page)
	require.Equal(t, 200, status, body)
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(t, m, "a CSRF field on the card page")
	status, body, hd := post(holder, page+"/topup", e.url, url.Values{"amount": {"2000"}, "csrf": {m[1]}})
	require.Equal(t, http.StatusSeeOther, status, body)
	to := hd.Get("Location")
	require.True(t, strings.HasPrefix(to, e.provider.URL+"/checkout/"), to)

	// Paying there sends the signed webhook to the API, then the
	// cardholder back to the card page.
	pay := e.provider.Client()
	pay.CheckRedirect = holder.CheckRedirect
	status, body, _ = get(pay, to)
	require.Equal(t, 200, status, body)
	status, body, hd = post(pay, to, e.provider.URL, url.Values{"action": {"pay"}})
	require.Equal(t, http.StatusSeeOther, status, body)
	back := hd.Get("Location")
	// The provider knows the top-up by an opaque checkout id: no URL it
	// was given names the card's QR token (issue 17 L1).
	require.NotContains(t, to, card.token)
	require.NotContains(t, back, card.token)
	require.True(t, strings.HasPrefix(back, e.url+"/topup/"), back)

	// The way back leads the browser that started the top-up to its card.
	status, body, hd = get(holder, back)
	require.Equal(t, http.StatusSeeOther, status, body)
	require.Equal(t, "/c/"+card.token+"?topup=done", hd.Get("Location"))
	status, body, _ = get(holder, page+"?topup=done")
	require.Equal(t, 200, status, body)
	require.Contains(t, body, "Your payment is being processed")
	require.Contains(t, body, "Waiting to be loaded")
	require.Contains(t, body, "€20.00")
	loads, err := e.ledger.PendingLoads(context.Background(), org, card.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, int64(2000), loads[0].Amount)
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/payments/webhook' AND outcome = 'ok' AND org_id = $1`, org))

	// A delivery repeated (providers deliver at least once) is recorded
	// once.
	ev := payment.Event{ID: "evt_twice", Type: payment.TypePaymentSucceeded, Payment: "pay_twice", Org: org,
		Card: card.hex(), Amount: 500, Currency: "EUR", Created: e.clock.Now().Unix()}
	status, err = e.payer.Deliver(context.Background(), ev)
	require.NoError(t, err)
	require.Equal(t, 200, status)
	before := e.fingerprint()
	for range 3 {
		status, err = e.payer.Deliver(context.Background(), ev)
		require.NoError(t, err)
		require.Equal(t, 200, status)
	}
	require.Equal(t, before, e.fingerprint(), "a replayed webhook changes nothing")
	loads, err = e.ledger.PendingLoads(context.Background(), org, card.uid)
	require.NoError(t, err)
	require.Len(t, loads, 2)

	// Refused deliveries change nothing.
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	forger := &paytest.Provider{Secret: payment.NewSecret(raw[:]), URL: e.payer.URL, Client: e.client, Now: e.clock.Now}
	late := *e.payer
	late.Now = func() time.Time { return e.clock.Now().Add(-payment.DefaultTolerance - time.Minute) }
	fresh := ev
	fresh.ID, fresh.Payment = "evt_new", "pay_new"
	unknown := fresh
	unknown.Card = "04FFFFFFFFFFFF"
	for _, tc := range []struct {
		name   string
		p      *paytest.Provider
		ev     payment.Event
		status int
		msg    string
	}{
		{"other secret", forger, fresh, 400, "bad signature"},
		{"stale timestamp", &late, fresh, 400, "signature timestamp outside the tolerance"},
		{"malformed event", e.payer, payment.Event{ID: "evt_x", Type: payment.TypePaymentSucceeded}, 400, "malformed event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.fingerprint()
			status, err := tc.p.Deliver(context.Background(), tc.ev)
			require.NoError(t, err)
			require.Equal(t, tc.status, status)
			require.Equal(t, before, e.fingerprint())
		})
	}
	t.Run("no signature", func(t *testing.T) {
		before := e.fingerprint()
		r := e.do(request{method: "POST", path: "/v1/payments/webhook", body: fresh})
		require.Equal(t, 400, r.status)
		require.Contains(t, string(r.body), "bad signature")
		require.Equal(t, before, e.fingerprint())
	})
	require.GreaterOrEqual(t, e.auditCount(`action = 'POST /v1/payments/webhook' AND outcome = 'failed'`), 4)

	// A payment for no known card is acknowledged (the provider would
	// otherwise retry forever) and parked once for HQ, not loaded.
	t.Run("unknown card", func(t *testing.T) {
		for range 2 {
			status, err := e.payer.Deliver(context.Background(), unknown)
			require.NoError(t, err)
			require.Equal(t, 200, status)
		}
		parked, err := e.ledger.UnmatchedPayments(context.Background(), org)
		require.NoError(t, err)
		require.Len(t, parked, 1)
		require.Equal(t, unknown.Payment, parked[0].Payment)
		require.Equal(t, unknown.Amount, parked[0].Amount)
	})

	// The card page shows both pending loads.
	status, body, _ = get(holder, page)
	require.Equal(t, 200, status, body)
	require.Contains(t, body, "€25.00")
}
