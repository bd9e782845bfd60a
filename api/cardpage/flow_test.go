package cardpage_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCardholderPages(t *testing.T) {
	f := newFake()
	h, logs := newPages(t, f)
	c := newClient(t, h)

	// Balance and pending load, without the PIN.
	p := c.get(base)
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, "€12.50")
	require.Contains(t, p.body, "Waiting to be loaded")
	require.Contains(t, p.body, "€5.00")
	require.Contains(t, p.body, `action="`+base+`/topup"`)

	// Top-up: one of the offered amounts goes to the provider.
	p = c.post(base+"/topup", url.Values{"amount": {"2000"}})
	require.Equal(t, http.StatusSeeOther, p.status)
	loc, err := url.Parse(p.header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "pay.example", loc.Host)
	require.Equal(t, "2000", loc.Query().Get("amount"))
	// The provider's return address names the checkout, not the card.
	require.Equal(t, "https://cards.example/topup/"+fakeCheckout+"?topup=done", loc.Query().Get("return"))
	require.NotContains(t, p.header.Get("Location"), fakeToken)
	p = c.post(base+"/topup", url.Values{"amount": {"123"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	// Back from the provider, this browser finds its card page again.
	p = c.get("/topup/" + fakeCheckout + "?topup=done")
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, base+"?topup=done", p.header.Get("Location"))
	p = c.get(base + "?topup=done")
	require.Contains(t, p.body, "Your payment is being processed")

	// Wrong PIN, malformed PIN, then the lock.
	p = c.post(base+"/history", url.Values{"pin": {"000000"}})
	require.Equal(t, http.StatusUnauthorized, p.status)
	require.Contains(t, p.body, "Wrong PIN")
	require.Contains(t, p.body, `aria-invalid="true"`)
	require.Contains(t, p.body, "€12.50", "the card page is shown again")
	p = c.post(base+"/history", url.Values{"pin": {"12"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "A PIN is 6 digits")
	for range 4 {
		c.post(base+"/history", url.Values{"pin": {"000000"}})
	}
	p = c.post(base+"/history", url.Values{"pin": {fakePIN}})
	require.Equal(t, http.StatusTooManyRequests, p.status)
	require.Contains(t, p.body, "PIN entry is locked")
	f.mu.Lock()
	f.failures = 0
	f.mu.Unlock()

	// History with the right PIN.
	p = c.post(base+"/history", url.Values{"pin": {fakePIN}})
	require.Equal(t, 200, p.status, p.body)
	require.Contains(t, p.body, "Payment · bar")
	require.Contains(t, p.body, "−€3.50")
	require.Contains(t, p.body, "Top-up (cash)")
	require.Less(t, strings.Index(p.body, "−€3.50"), strings.Index(p.body, "€16.00"), "newest first")

	// Refund: the IBAN is checked before the backend is asked.
	before := f.calls
	p = c.post(base+"/refund", url.Values{"pin": {fakePIN}, "name": {"Ada Lovelace"}, "iban": {"NL92 ABNA 0417 1643 00"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "This IBAN is not valid")
	require.Contains(t, p.body, `value="Ada Lovelace"`, "the form keeps what was typed")
	require.Equal(t, before, f.calls)
	p = c.post(base+"/refund", url.Values{"pin": {"000000"}, "name": {"Ada Lovelace"}, "iban": {"NL91 ABNA 0417 1643 00"}})
	require.Equal(t, http.StatusUnauthorized, p.status)
	p = c.post(base+"/refund", url.Values{"pin": {fakePIN}, "name": {"Ada Lovelace"}, "iban": {"nl91 abna 0417 1643 00"}})
	require.Equal(t, http.StatusCreated, p.status, p.body)
	require.Contains(t, p.body, "Your refund is requested; the card holds €12.50 now")
	require.Equal(t, "NL91ABNA0417164300", f.refunds[0].IBAN)
	p = c.post(base+"/refund", url.Values{"pin": {fakePIN}, "name": {"Ada Lovelace"}, "iban": {"NL91ABNA0417164300"}})
	require.Equal(t, http.StatusConflict, p.status)
	require.Contains(t, p.body, "already requested")

	// Claim needs consent, then logs in.
	claim := url.Values{"pin": {fakePIN}, "email": {"ada@example.org"}, "password": {fakePassword}}
	p = c.post(base+"/claim", claim)
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "needs your consent")
	require.False(t, f.claimed)
	claim.Set("consent", "yes")
	p = c.post(base+"/claim", claim)
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, "/account", p.header.Get("Location"))
	sess := c.cookies["__Host-lc_session"]
	require.NotNil(t, sess)
	require.True(t, sess.Secure && sess.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, sess.SameSite)

	// Claimed: the QR code and the PIN no longer show the history.
	p = c.get(base)
	require.Contains(t, p.body, "linked to a profile")
	require.NotContains(t, p.body, `name="pin"`)
	p = c.post(base+"/history", url.Values{"pin": {fakePIN}})
	require.Equal(t, http.StatusForbidden, p.status)

	// The profile: cards, export, erasure.
	p = c.get("/account")
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, "ada@example.org")
	require.Contains(t, p.body, "04A1B2C3D40000")
	p = c.post("/account/export", url.Values{})
	require.Equal(t, 200, p.status)
	require.Equal(t, `attachment; filename="loopcard-data.json"`, p.header.Get("Content-Disposition"))
	require.JSONEq(t, `{"email":"ada@example.org"}`, p.body)
	p = c.post("/account/erase", url.Values{})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "Tick the box")
	require.False(t, f.erased)
	p = c.post("/account/erase", url.Values{"confirm": {"yes"}})
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, "Your personal data is erased")
	require.True(t, f.erased)
	require.Nil(t, c.cookies["__Host-lc_session"], "the login cookie is cleared")
	p = c.get("/account")
	require.Equal(t, http.StatusUnauthorized, p.status)

	// Log in again: refused, the profile is gone.
	p = c.post(base+"/login", url.Values{"email": {"ada@example.org"}, "password": {fakePassword}})
	require.Equal(t, http.StatusUnauthorized, p.status)
	require.Contains(t, p.body, "Wrong email address or password")

	// Unknown and malformed tokens.
	p = c.get("/c/AAAAAAAAAAAAAAAAAAAAAA")
	require.Equal(t, http.StatusNotFound, p.status)
	require.Contains(t, p.body, "This card is not known")
	p = c.get("/c/short")
	require.Equal(t, http.StatusNotFound, p.status)

	// No secret reached the log; the access log names routes.
	out := logs.String()
	require.Contains(t, out, `"route":"POST /c/{token}/history"`)
	for _, secret := range []string{fakeToken, fakePIN, fakePassword, fakeSession, "ada@example.org", "NL91", "Lovelace"} {
		require.NotContains(t, out, secret)
	}
}

func TestLoginAndLogout(t *testing.T) {
	f := newFake()
	f.email, f.password, f.claimed = "ada@example.org", fakePassword, true
	h, _ := newPages(t, f)
	c := newClient(t, h)
	p := c.get(base + "/login")
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, `autocomplete="current-password"`)
	p = c.post(base+"/login", url.Values{"email": {"ada@example.org"}, "password": {fakePassword}})
	require.Equal(t, http.StatusSeeOther, p.status, p.body)
	require.Equal(t, 200, c.get("/account").status)
	p = c.post("/account/cards/04A1B2C3D40000/refund", url.Values{"name": {"Ada"}, "iban": {"NL91ABNA0417164300"}})
	require.Equal(t, http.StatusCreated, p.status, p.body)
	p = c.post("/account/logout", url.Values{})
	require.Equal(t, http.StatusSeeOther, p.status)
	require.Nil(t, c.cookies["__Host-lc_session"])
	require.True(t, f.loggedOut)
	require.Equal(t, http.StatusUnauthorized, c.get("/account").status)
}

func TestAssets(t *testing.T) {
	h, _ := newPages(t, newFake())
	c := newClient(t, h)
	for _, tc := range []struct{ path, ctype string }{
		{"/assets/cardpage/card.css", "text/css; charset=utf-8"},
		{"/assets/cardpage/card.js", "text/javascript; charset=utf-8"},
	} {
		p := c.get(tc.path)
		require.Equal(t, 200, p.status)
		require.Equal(t, tc.ctype, p.header.Get("Content-Type"))
		require.NotEmpty(t, p.body)
	}
	require.Equal(t, http.StatusNotFound, c.get("/assets/cardpage/secret.txt").status)
	require.Equal(t, http.StatusNotFound, c.postRaw("/privacy", url.Values{}).status)
}

// TestBlockForm: the block form needs lost or stolen and the PIN; a bad
// reason or a wrong PIN blocks nothing.
func TestBlockForm(t *testing.T) {
	f := newFake()
	h, _ := newPages(t, f)
	c := newClient(t, h)
	p := c.get(base + "/block")
	require.Equal(t, 200, p.status)
	require.Contains(t, p.body, "Block your card")
	p = c.post(base+"/block", url.Values{"pin": {fakePIN}, "reason": {"bored"}})
	require.Equal(t, http.StatusBadRequest, p.status)
	require.Contains(t, p.body, "Choose lost or stolen.")
	p = c.post(base+"/block", url.Values{"pin": {"000000"}, "reason": {"lost"}})
	require.Equal(t, http.StatusUnauthorized, p.status)
	require.Empty(t, f.blocked)
	p = c.post(base+"/block", url.Values{"pin": {fakePIN}, "reason": {"lost"}})
	require.Equal(t, http.StatusOK, p.status, p.body)
	require.Contains(t, p.body, "The card is blocked")
	require.Equal(t, []string{"lost (cardholder)"}, f.blocked)
}
