package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
	"github.com/loopcard/loopcard/ledger/payment/stripepay/stripemock"
)

const autoBack = "https://cards.example/account?autotopup=saved"

// saveTestMethod opens the test provider's page the API answered and
// presses action on it (save or save-declining).
func saveTestMethod(t *testing.T, e *env, page, action string) {
	t.Helper()
	pc := e.provider.Client()
	pc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := pc.PostForm(page, url.Values{"action": {action}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, autoBack, resp.Header.Get("Location"))
}

func tapLoads(t *testing.T, e *env, term *terminal, sk string, c testCard) []apitype.PendingLoad {
	t.Helper()
	r := e.do(request{method: "GET", path: "/v1/terminal/pending-loads?card=" + c.hex(), terminal: term, session: sk})
	require.Equal(t, 200, r.status, string(r.body))
	var pl struct{ Loads []apitype.PendingLoad }
	r.json(t, &pl)
	return pl.Loads
}

func exported(t *testing.T, e *env, token string) apitype.ProfileExport {
	t.Helper()
	r := e.do(request{method: "GET", path: "/v1/profile", bearer: token})
	require.Equal(t, 200, r.status, string(r.body))
	var ex apitype.ProfileExport
	r.json(t, &ex)
	return ex
}

// TestAutoTopUpAtTap: a claimed profile sets a card's auto top-up and
// saves a payment method on the (test) provider's page; an online
// terminal's tap below the threshold charges it, and the load comes with
// that very tap's pending loads; the next tap charges nothing more. A
// declining method's charge disables the rule; both show in the
// profile's view. Only the profile that claimed a card sets its rule.
func TestAutoTopUpAtTap(t *testing.T) {
	e := newEnv(t, envOptions{cards: 3})
	c, d := e.cards[0], e.cards[1]
	lr := e.claimAndLogin(c, "auto@example.org", "auto top-up password")
	r := e.do(request{method: "POST", path: "/v1/card/claim", card: d.token, pin: d.pin,
		body: claimBody{Email: "auto@example.org", Password: "auto top-up password", Consent: consent}})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	other := e.claimAndLogin(e.cards[2], "other@example.org", "another password here")
	term := e.enrolTerminal("bar-1")
	sk := e.sessionKey(term).KeyID

	set := func(token string, card testCard, req apitype.AutoTopUpRequest) (int, apitype.AutoTopUpResponse) {
		t.Helper()
		r := e.do(request{method: "POST", path: "/v1/profile/cards/" + card.hex() + "/autotopup", bearer: token, body: req})
		var out apitype.AutoTopUpResponse
		if r.status == 200 {
			r.json(t, &out)
		}
		return r.status, out
	}
	rule := apitype.AutoTopUpRequest{Amount: 2000, Threshold: 1500, DailyLimit: 4000, ReturnURL: autoBack}
	st, _ := set(other.Token, c, rule)
	require.Equal(t, http.StatusForbidden, st, "not its card")
	bad := rule
	bad.DailyLimit = 1000
	st, _ = set(lr.Token, c, bad)
	require.Equal(t, http.StatusBadRequest, st)
	bad = rule
	bad.ReturnURL = "javascript:alert(1)"
	st, _ = set(lr.Token, c, bad)
	require.Equal(t, http.StatusBadRequest, st)
	require.Empty(t, tapLoads(t, e, term, sk, c), "no rule yet")

	st, out := set(lr.Token, c, rule)
	require.Equal(t, 200, st)
	require.Equal(t, "setup", out.Status)
	require.Empty(t, tapLoads(t, e, term, sk, c), "no payment method yet")
	saveTestMethod(t, e, out.URL, "save")
	ex := exported(t, e, lr.Token)
	require.Equal(t, "active", ex.Cards[0].AutoTopUp.Status)

	// The tap below the threshold: charged, and the load is in this tap's
	// answer.
	loads := tapLoads(t, e, term, sk, c)
	require.Len(t, loads, 1)
	require.Equal(t, int64(2000), loads[0].Amount)
	require.Len(t, tapLoads(t, e, term, sk, c), 1, "the same load, no second charge")
	ex = exported(t, e, lr.Token)
	at := ex.Cards[0].AutoTopUp
	require.Len(t, at.Charges, 1)
	require.Equal(t, "succeeded", at.Charges[0].Status)
	require.Equal(t, int64(2000), at.Charges[0].Amount)

	// A declining card: the charge fails, the rule is off, with why.
	st, out = set(lr.Token, d, apitype.AutoTopUpRequest{Amount: 1000, Threshold: 1500, DailyLimit: 1000, ReturnURL: autoBack})
	require.Equal(t, 200, st)
	saveTestMethod(t, e, out.URL, "save-declining")
	require.Empty(t, tapLoads(t, e, term, sk, d))
	ex = exported(t, e, lr.Token)
	at = ex.Cards[1].AutoTopUp
	require.Equal(t, "disabled", at.Status)
	require.Contains(t, at.Reason, "card_declined")
	require.Equal(t, "failed", at.Charges[0].Status)
	require.Empty(t, tapLoads(t, e, term, sk, d), "a disabled rule charges nothing")

	// Turned off by the cardholder (audited).
	r = e.do(request{method: "DELETE", path: "/v1/profile/cards/" + c.hex() + "/autotopup", bearer: lr.Token})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, "disabled", exported(t, e, lr.Token).Cards[0].AutoTopUp.Status)
	var n int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM api_audit WHERE action LIKE '%autotopup%'`).Scan(&n))
	require.GreaterOrEqual(t, n, 3)

	// The profile erased: its cards' rules stop and forget the provider's
	// ids.
	r = e.do(request{method: "DELETE", path: "/v1/profile", bearer: lr.Token})
	require.Equal(t, 200, r.status, string(r.body))
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM autotopup_rules
		WHERE status <> 'disabled' OR customer_ref <> '' OR method_ref <> ''`).Scan(&n))
	require.Zero(t, n)
}

// gate holds stripe-mock's answers to payment intents until opened, and
// records what was sent.
type gate struct {
	next    http.RoundTripper
	mu      sync.Mutex
	forms   []url.Values
	keys    []string
	entered chan struct{}
	open    chan struct{}
	done    chan struct{}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.URL.Path, "/payment_intents") {
		return g.next.RoundTrip(r)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	f, _ := url.ParseQuery(string(b))
	g.mu.Lock()
	g.forms = append(g.forms, f)
	g.keys = append(g.keys, r.Header.Get("Idempotency-Key"))
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.open
	defer func() { g.done <- struct{}{} }()
	return g.next.RoundTrip(r)
}

// TestStripeAutoTopUp: auto top-up through Stripe on stripe-mock. The
// method is saved in a Checkout Session in setup mode and announced by a
// signed setup_intent.succeeded; a tap below the threshold sends one
// off-session PaymentIntent (confirm, off_session, the charge id as
// idempotency key). Stripe holds its answer: the tap answers within its
// bound without the load, and a second tap sends nothing. The signed
// payment_intent.succeeded makes the load, which the next tap lists;
// stripe-mock's late fixed answer changes nothing.
func TestStripeAutoTopUp(t *testing.T) {
	mockURL, hc := stripemock.Start(t)
	g := &gate{next: hc.Transport, entered: make(chan struct{}, 4), open: make(chan struct{}), done: make(chan struct{}, 4)}
	const whsec = "whsec_auto"
	prov, err := stripepay.New(stripepay.Config{Key: stripepay.NewKey("sk_test_x"), WebhookSecrets: []stripepay.Key{stripepay.NewKey(whsec)},
		URL: mockURL, HTTPClient: &http.Client{Transport: g, Timeout: 30 * time.Second}})
	require.NoError(t, err)
	e := newEnv(t, envOptions{cards: 1, payments: &api.Payments{Provider: "stripe", Webhooks: prov, TopUps: prov, AutoTopUps: prov,
		AutoTopUpWait: 200 * time.Millisecond, Origin: "https://checkout.stripe.com"}})
	c := e.cards[0]
	lr := e.claimAndLogin(c, "stripe@example.org", "stripe auto password")
	term := e.enrolTerminal("bar-1")
	sk := e.sessionKey(term).KeyID
	deliver := func(id, typ string, object map[string]any) {
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
		require.Equal(t, 200, resp.StatusCode, typ)
	}

	r := e.do(request{method: "POST", path: "/v1/profile/cards/" + c.hex() + "/autotopup", bearer: lr.Token,
		body: apitype.AutoTopUpRequest{Amount: 2000, Threshold: 1500, DailyLimit: 4000, ReturnURL: autoBack}})
	require.Equal(t, 200, r.status, string(r.body))
	var out apitype.AutoTopUpResponse
	r.json(t, &out)
	require.True(t, strings.HasPrefix(out.URL, "https://checkout.stripe.com/"), out.URL)
	rule, err := e.ledger.AutoTopUp(context.Background(), org, c.uid)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(rule.Customer, "cus_"), "the Customer made for the card")
	deliver("evt_setup", "setup_intent.succeeded", map[string]any{"id": "seti_1", "object": "setup_intent", "status": "succeeded",
		"customer": rule.Customer, "payment_method": "pm_saved", "metadata": map[string]any{stripepay.MetaOrg: "1", stripepay.MetaCard: c.hex(),
			stripepay.MetaAutoTopUp: "setup"}})
	require.Equal(t, "active", exported(t, e, lr.Token).Cards[0].AutoTopUp.Status)

	// The tap: one PaymentIntent sent; Stripe holds its answer.
	require.Empty(t, tapLoads(t, e, term, sk, c), "the tap answers without waiting for Stripe")
	<-g.entered
	require.Empty(t, tapLoads(t, e, term, sk, c))
	g.mu.Lock()
	require.Len(t, g.forms, 1, "a second tap while the charge runs sends nothing")
	f, key := g.forms[0], g.keys[0]
	g.mu.Unlock()
	charge := f.Get("metadata[loopcard_autotopup]")
	for k, v := range map[string]string{"amount": "2000", "currency": "eur", "customer": rule.Customer, "payment_method": "pm_saved",
		"confirm": "true", "off_session": "true", "metadata[loopcard_card]": c.hex()} {
		require.Equal(t, v, f.Get(k), k)
	}
	require.Equal(t, "loopcard-autotopup-"+charge, key)

	// Stripe's webhook comes first: the load.
	deliver("evt_pi", "payment_intent.succeeded", map[string]any{"id": "pi_auto", "object": "payment_intent", "amount": 2000, "currency": "eur",
		"status": "succeeded", "metadata": map[string]any{stripepay.MetaOrg: "1", stripepay.MetaCard: c.hex(), stripepay.MetaAutoTopUp: charge}})
	deliver("evt_pi", "payment_intent.succeeded", map[string]any{"id": "pi_auto", "object": "payment_intent", "amount": 2000, "currency": "eur",
		"status": "succeeded", "metadata": map[string]any{stripepay.MetaOrg: "1", stripepay.MetaCard: c.hex(), stripepay.MetaAutoTopUp: charge}})
	// Then stripe-mock's own (fixed) answer arrives: nothing changes.
	close(g.open)
	<-g.done
	require.Eventually(t, func() bool { return strings.Contains(e.logs.String(), "api: auto top-up charge\"") }, 10*time.Second, 10*time.Millisecond)
	loads := tapLoads(t, e, term, sk, c)
	require.Len(t, loads, 1)
	require.Equal(t, int64(2000), loads[0].Amount)
	at := exported(t, e, lr.Token).Cards[0].AutoTopUp
	require.Equal(t, "active", at.Status)
	require.Len(t, at.Charges, 1)
	require.Equal(t, "succeeded", at.Charges[0].Status)
	g.mu.Lock()
	require.Len(t, g.forms, 1, "one charge in all")
	g.mu.Unlock()
}
