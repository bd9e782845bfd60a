package cardpage_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/cardpage"
)

// TestWithAPI walks the pages through the real API: its PIN lockout,
// refund, claim, login, export and erasure, and its logs.
func TestWithAPI(t *testing.T) {
	e := newAPIEnv(t, 2, 0)
	card, other := e.cards[0], e.cards[1]
	e.pendingLoad(t, card, 500)
	c := newClient(t, e.srv)
	b := "/c/" + card.token

	p := c.get(b)
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "€10.00")
	require.Contains(t, p.body, "Waiting to be loaded")
	require.Contains(t, p.body, "€5.00")
	require.Contains(t, p.body, card.hex())
	require.Contains(t, p.header.Get("Content-Security-Policy"), "default-src 'none'")
	// The API's own routes are untouched.
	require.Equal(t, http.StatusUnauthorized, c.get("/v1/card").status)
	require.Equal(t, http.StatusNotFound, c.get("/c/AAAAAAAAAAAAAAAAAAAAAA").status)

	// Online top-up: not in the ledger yet, said so.
	p = c.post(b+"/topup", url.Values{"amount": {"2000"}})
	require.Equal(t, http.StatusServiceUnavailable, p.status)
	require.Contains(t, p.body, "Online top-up is not available")

	// A wrong PIN, then the history.
	p = c.post(b+"/history", url.Values{"pin": {card.wrongPIN()}})
	require.Equal(t, http.StatusUnauthorized, p.status, p.body)
	require.Contains(t, p.body, "Wrong PIN")
	p = c.post(b+"/history", url.Values{"pin": {card.pin}})
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "Top-up (cash)")
	require.Contains(t, p.body, "Top-up (online)")

	// Five wrong PINs lock the other card, even for the right PIN.
	ob := "/c/" + other.token
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, c.post(ob+"/history", url.Values{"pin": {other.wrongPIN()}}).status)
	}
	p = c.post(ob+"/history", url.Values{"pin": {other.pin}})
	require.Equal(t, http.StatusTooManyRequests, p.status)
	require.Contains(t, p.body, "PIN entry is locked")

	// Refund request.
	p = c.post(b+"/refund", url.Values{"pin": {card.pin}, "name": {"Ada Lovelace"}, "iban": {"NL91 ABNA 0417 1643 00"}})
	require.Equal(t, http.StatusCreated, p.status, p.body)
	require.Contains(t, p.body, "€15.00", "the balance and the pending load not yet on the card")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM api_refund_requests WHERE card_id = $1`, card.uid))

	// Claim, after which the PIN no longer shows the history.
	p = c.post(b+"/claim", url.Values{"pin": {card.pin}, "email": {"ada@example.org"}, "password": {"correct horse battery"}, "consent": {"yes"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	p = c.get("/account")
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "ada@example.org")
	require.Contains(t, p.body, card.hex())
	// The refund was asked with the PIN before the claim: it is whoever
	// held the card then's, not the profile's (issue 17 M6).
	require.NotContains(t, p.body, "Refund requests")
	p = c.post(b+"/history", url.Values{"pin": {card.pin}})
	require.Equal(t, http.StatusForbidden, p.status)
	require.Contains(t, p.body, "linked to a profile")
	require.NotContains(t, c.get(b).body, `name="pin"`)

	// Log out (the login's token is revoked), log in from the card,
	// export, erase.
	sess := c.cookies["__Host-lc_session"]
	require.NotNil(t, sess)
	require.Equal(t, http.StatusSeeOther, c.post("/account/logout", url.Values{}).status)
	stale := newClient(t, e.srv)
	stale.cookies[sess.Name] = sess
	require.Equal(t, http.StatusUnauthorized, stale.get("/account").status, "a logged-out token no longer works")
	p = c.post(b+"/login", url.Values{"email": {"ada@example.org"}, "password": {"wrong password!"}})
	require.Equal(t, http.StatusUnauthorized, p.status)
	p = c.post(b+"/login", url.Values{"email": {"ADA@example.org"}, "password": {"correct horse battery"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	p = c.post("/account/export", url.Values{})
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, `"email": "ada@example.org"`)
	require.NotContains(t, p.body, "NL91ABNA0417164300")
	// The consent given with the claim form is recorded and exported.
	require.Contains(t, p.body, `"purpose": "profile"`)
	require.Contains(t, p.body, `"notice": "`+cardpage.NoticeVersion+`"`)
	p = c.post("/account/erase", url.Values{"confirm": {"yes"}})
	require.Equal(t, 200, p.status, p.body)
	require.Zero(t, e.count(t, `SELECT (SELECT count(*) FROM api_profiles) + (SELECT count(*) FROM api_profile_cards)
		+ (SELECT count(*) FROM api_consents)`))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM api_refund_requests WHERE payout_sealed IS NOT NULL AND status = 'requested'`),
		"the refund asked before the claim stays")
	require.Equal(t, http.StatusUnauthorized, c.get("/account").status)
	// Unclaimed again: the PIN shows the history.
	require.Equal(t, 200, c.post(b+"/history", url.Values{"pin": {card.pin}}).status)

	// The API audited the cardholder's actions, from the cardholder's address.
	require.Positive(t, e.count(t, `SELECT count(*) FROM api_audit WHERE action = 'GET /v1/card/history' AND outcome = 'denied' AND remote_addr = '192.0.2.1'`))
	require.Positive(t, e.count(t, `SELECT count(*) FROM api_audit WHERE action = 'DELETE /v1/profile' AND outcome = 'ok'`))

	// No card token, PIN, password, email or bank detail in any log line.
	logs := e.logs.String()
	require.Contains(t, logs, `"route":"POST /c/{token}/history"`)
	for _, secret := range []string{card.token, other.token, card.pin, other.pin, "correct horse", "ada@example.org", "NL91", "Lovelace"} {
		require.False(t, strings.Contains(logs, secret), "a secret is in the logs")
	}
}

// TestPagesRateLimited: page requests count against the API's limit per
// address, as the API's own requests do.
func TestPagesRateLimited(t *testing.T) {
	e := newAPIEnv(t, 1, 1)
	c := newClient(t, e.srv)
	b := "/c/" + e.cards[0].token
	var limited int
	for range 10 {
		switch p := c.get(b); p.status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
			require.Equal(t, "1", p.header.Get("Retry-After"))
		default:
			t.Fatalf("status %d: %s", p.status, p.body)
		}
	}
	require.GreaterOrEqual(t, limited, 7)
}

// TestTopUp: the amount buttons lead to the test payment provider; paying
// there makes a pending load, shown on the card page.
func TestTopUp(t *testing.T) {
	e := newPayingEnv(t, 1)
	card := e.cards[0]
	c := newClient(t, e.srv)
	b := "/c/" + card.token

	p := c.post(b+"/topup", url.Values{"amount": {"2000"}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	to := p.header.Get("Location")
	require.True(t, strings.HasPrefix(to, e.provider.URL+"/checkout/"), to)
	require.Contains(t, p.header.Get("Content-Security-Policy"), "form-action 'self' "+e.provider.URL+";")

	pay := e.provider.Client()
	pay.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := pay.Get(to)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	resp, err = pay.PostForm(to, url.Values{"action": {"pay"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	back, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	// No URL the provider got names the card's token: its return address
	// names an opaque checkout (issue 17 L1).
	require.NotContains(t, to, card.token)
	require.NotContains(t, back.String(), card.token)
	require.True(t, strings.HasPrefix(back.Path, "/topup/"), back.Path)

	// Another browser coming back learns nothing of the card, in either
	// language.
	other := newClient(t, e.srv)
	p = other.get(back.RequestURI())
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "Scan the QR code on your card")
	require.NotContains(t, p.body, card.token)
	other.header.Set("Accept-Language", "nl")
	require.Contains(t, other.get(back.RequestURI()).body, "Scan de QR-code op je kaart")

	// The browser that paid goes back to its card page.
	p = c.get(back.RequestURI())
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, b+"?topup=done", p.header.Get("Location"))
	p = c.get(p.header.Get("Location"))
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "Your payment is being processed")
	require.Contains(t, p.body, "Waiting to be loaded")
	require.Contains(t, p.body, "€20.00")
	loads, err := e.ledger.PendingLoads(t.Context(), org, card.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, int64(2000), loads[0].Amount)

	// An amount that is not offered goes nowhere.
	require.Equal(t, http.StatusBadRequest, c.post(b+"/topup", url.Values{"amount": {"1999"}}).status)
}
