package checkout_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/cardpage/checkout"
	"github.com/loopcard/loopcard/ledger/payment"
)

type recorder struct {
	mu     sync.Mutex
	events []payment.Event
	fail   bool
}

func (r *recorder) notify(_ context.Context, e payment.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("receiver down")
	}
	r.events = append(r.events, e)
	return nil
}

func do(t *testing.T, h http.Handler, method, target string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestCheckout(t *testing.T) {
	ctx := context.Background()
	r := &recorder{}
	p := checkout.New("https://pay.example/checkout/", r.notify, nil)
	back := "https://cards.example/c/TOKEN?topup=done"

	for _, tc := range []struct {
		org    int64
		card   string
		amount int64
		ret    string
	}{
		{0, "04A1", 2000, back}, {1, "", 2000, back}, {1, "04A1", 0, back}, {1, "04A1", 2000, "/relative"},
	} {
		_, err := p.Start(ctx, tc.org, tc.card, tc.amount, tc.ret)
		require.Error(t, err, "%+v", tc)
	}

	// Pay: the event is announced once and the cardholder goes back.
	u, err := p.Start(ctx, 1, "04A1B2C3D40000", 2000, back)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(u, "https://pay.example/checkout/"))
	rec := do(t, p, "GET", u, nil)
	require.Equal(t, 200, rec.Code)
	require.Contains(t, rec.Body.String(), "Pay €20.00")
	require.Contains(t, rec.Header().Get("Content-Security-Policy"), "form-action 'self' https://cards.example;")
	rec = do(t, p, "POST", u, url.Values{"action": {"pay"}})
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, back, rec.Header().Get("Location"))
	require.Len(t, r.events, 1)
	e := r.events[0]
	require.Equal(t, payment.TypePaymentSucceeded, e.Type)
	require.Equal(t, int64(1), e.Org)
	require.Equal(t, "04A1B2C3D40000", e.Card)
	require.Equal(t, int64(2000), e.Amount)
	require.Equal(t, "EUR", e.Currency)
	// A checkout is finished once.
	require.Equal(t, http.StatusNotFound, do(t, p, "POST", u, url.Values{"action": {"pay"}}).Code)
	require.Equal(t, http.StatusNotFound, do(t, p, "GET", u, nil).Code)
	require.Len(t, r.events, 1)

	// Cancel: nothing is announced.
	u, err = p.Start(ctx, 1, "04A1B2C3D40000", 1000, back)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, do(t, p, "POST", u, url.Values{"action": {"steal"}}).Code)
	rec = do(t, p, "POST", u, url.Values{"action": {"cancel"}})
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, "https://cards.example/c/TOKEN?topup=cancelled", rec.Header().Get("Location"))
	require.Len(t, r.events, 1)

	// A receiver that fails leaves the cardholder on the provider's page.
	r.fail = true
	u, err = p.Start(ctx, 1, "04A1B2C3D40000", 1000, back)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadGateway, do(t, p, "POST", u, url.Values{"action": {"pay"}}).Code)
	r.fail = false
	require.Equal(t, http.StatusSeeOther, do(t, p, "POST", u, url.Values{"action": {"pay"}}).Code, "paid on the second try")
	require.Len(t, r.events, 2)
}

// TestSaveMethodAndCharge: the test provider's auto top-up: a setup page
// that announces the saved method (never a card number), and off-session
// charges that succeed, or are declined for a declining method, the same
// payment for the same charge id.
func TestSaveMethodAndCharge(t *testing.T) {
	ctx := context.Background()
	r := &recorder{}
	p := checkout.New("https://pay.example/checkout/", r.notify, nil)
	back := "https://cards.example/account?autotopup=saved"
	_, _, err := p.SaveMethod(ctx, 1, "04A1", "", "/relative")
	require.Error(t, err)
	u, cus, err := p.SaveMethod(ctx, 1, "04A1B2C3D40000", "", back)
	require.NoError(t, err)
	require.NotEmpty(t, cus)
	rec := do(t, p, "GET", u, nil)
	require.Contains(t, rec.Body.String(), "Save a test card")
	require.Equal(t, http.StatusBadRequest, do(t, p, "POST", u, url.Values{"action": {"pay"}}).Code, "a setup page pays nothing")
	rec = do(t, p, "POST", u, url.Values{"action": {"save"}})
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, back, rec.Header().Get("Location"))
	require.Len(t, r.events, 1)
	e := r.events[0]
	require.Equal(t, payment.TypeMethodSaved, e.Type)
	require.Equal(t, cus, e.Customer)
	require.NoError(t, e.Validate())

	c := payment.Charge{Org: 1, Card: "04A1B2C3D40000", ID: "0190f1a2-0000-7000-8000-000000000001", Amount: 2000, Customer: cus, Method: e.Method}
	res, err := p.Charge(ctx, c)
	require.NoError(t, err)
	require.Equal(t, "succeeded", res.Status)
	again, err := p.Charge(ctx, c)
	require.NoError(t, err)
	require.Equal(t, res, again, "the same charge is the same payment")

	// A declining method, saved for the same customer.
	u, cus2, err := p.SaveMethod(ctx, 1, "04A1B2C3D40000", cus, back)
	require.NoError(t, err)
	require.Equal(t, cus, cus2)
	require.Equal(t, http.StatusSeeOther, do(t, p, "POST", u, url.Values{"action": {"save-declining"}}).Code)
	c.Method = r.events[1].Method
	res, err = p.Charge(ctx, c)
	require.NoError(t, err)
	require.Equal(t, payment.ChargeResult{Status: "failed", Ref: res.Ref, Reason: "card_declined"}, res)

	// Cancelled: nothing announced.
	u, _, err = p.SaveMethod(ctx, 1, "04A1B2C3D40000", cus, back)
	require.NoError(t, err)
	rec = do(t, p, "POST", u, url.Values{"action": {"cancel"}})
	require.Equal(t, "https://cards.example/account?autotopup=cancelled", rec.Header().Get("Location"))
	require.Len(t, r.events, 2)
}
