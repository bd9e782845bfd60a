package runbook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// cardholder is a cardholder's browser: it follows the card page's forms
// and the payment provider's checkout as a person would, and calls the
// public card routes the page itself uses.
type cardholder struct {
	hc   *http.Client
	base string // the API's URL
}

func (r *runner) cardholder() (*cardholder, error) {
	pem, err := os.ReadFile(r.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", r.caFile)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	return &cardholder{base: r.apiURL, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}}, nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([A-Za-z0-9_-]+)"`)

// page fetches a page and returns its body.
func (h *cardholder) page(ctx context.Context, method, u string, form url.Values) (string, *http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return "", nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept-Language", "en")
	res, err := h.hc.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return "", nil, err
	}
	if res.StatusCode >= 400 {
		return string(b), res, fmt.Errorf("%s %s: %s", method, res.Request.URL.Path, res.Status)
	}
	return string(b), res, nil
}

// topUp opens the card page, chooses amount and pays it at the test
// provider's checkout; it returns the card page it lands on.
func (h *cardholder) topUp(ctx context.Context, token string, amount int64) (string, error) {
	cardURL := h.base + "/c/" + token
	body, _, err := h.page(ctx, "GET", cardURL, nil)
	if err != nil {
		return "", err
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		return "", errors.New("the card page has no form to top up")
	}
	checkout, res, err := h.page(ctx, "POST", cardURL+"/topup", url.Values{"csrf": {m[1]}, "amount": {fmt.Sprint(amount)}})
	if err != nil {
		return "", err
	}
	if !strings.Contains(checkout, `name="action"`) {
		return "", fmt.Errorf("the top-up did not lead to a checkout page (%s)", res.Request.URL.Path)
	}
	back, _, err := h.page(ctx, "POST", res.Request.URL.String(), url.Values{"action": {"pay"}})
	if err != nil {
		return "", err
	}
	return back, nil
}

// api calls a card route with the card's QR token (and PIN when given).
func (h *cardholder) api(ctx context.Context, method, path, token, pin string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Card "+token)
	if pin != "" {
		req.Header.Set("Loopcard-PIN", pin)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := h.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// cardStatus is GET /v1/card: the ledger's view of the card.
type cardStatus struct {
	Status  string `json:"status"`
	Balance int64  `json:"balance"`
	Pending int64  `json:"pending"`
}

// claim claims the card for a new profile on its card page (the claim
// form, with the PIN) and returns the profile's page it lands on.
func (h *cardholder) claim(ctx context.Context, c *card, email, password string) (string, error) {
	u := h.base + "/c/" + c.token + "/claim"
	body, _, err := h.page(ctx, "GET", u, nil)
	if err != nil {
		return "", err
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		return "", errors.New("the claim page has no form")
	}
	acct, _, err := h.page(ctx, "POST", u, url.Values{"csrf": {m[1]}, "pin": {c.pin}, "email": {email}, "password": {password}, "consent": {"yes"}})
	return acct, err
}

// setAutoTopUp fills the profile page's auto top-up form for the card
// and saves a payment method at the test provider's page; it returns the
// profile's page it comes back to.
func (h *cardholder) setAutoTopUp(ctx context.Context, c *card, amount, threshold, limit int64) (string, error) {
	acct, _, err := h.page(ctx, "GET", h.base+"/account", nil)
	if err != nil {
		return "", err
	}
	m := csrfField.FindStringSubmatch(acct)
	if m == nil {
		return "", errors.New("the profile's page has no form")
	}
	setup, res, err := h.page(ctx, "POST", h.base+"/account/cards/"+c.uid+"/autotopup", url.Values{"csrf": {m[1]},
		"amount": {fmt.Sprint(amount)}, "threshold": {fmt.Sprint(threshold)}, "limit": {fmt.Sprint(limit)}})
	if err != nil {
		return "", err
	}
	if !strings.Contains(setup, `value="save"`) {
		return "", fmt.Errorf("the auto top-up form did not lead to the provider's page (%s)", res.Request.URL.Path)
	}
	back, _, err := h.page(ctx, "POST", res.Request.URL.String(), url.Values{"action": {"save"}})
	return back, err
}
