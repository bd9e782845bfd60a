// Package checkout is the test payment provider's hosted checkout page, for
// the demo and tests: it stands where a real provider's page would be. The
// card page sends the cardholder here with an amount; "Pay" announces the
// payment as a payment.succeeded event (package payment; deliver it as a
// signed webhook with paytest, or record it directly) and sends the
// cardholder back; "Cancel" only sends them back.
//
// For auto top-up it also "saves a payment method" (SaveMethod: a page
// whose "Save" announces payment.method_saved with made-up customer and
// method ids; "Save a declining card" saves one whose charges are
// declined) and charges it off-session (Charge), at once and idempotently
// by the charge's id. No money moves.
package checkout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/loopcard/loopcard/ledger/payment"
)

// Notify announces a succeeded payment to the receiver of the provider's
// webhooks; it must be idempotent by event id.
type Notify func(ctx context.Context, e payment.Event) error

// TTL is how long a checkout may wait for the cardholder.
const TTL = 15 * time.Minute

// ErrUnknown is returned for a checkout that does not exist, has expired or
// was finished.
var ErrUnknown = errors.New("checkout: unknown or finished checkout")

// Provider is the test provider. Create it with New; it is an http.Handler
// for the paths under its base URL.
type Provider struct {
	base   string
	notify Notify
	log    *slog.Logger
	now    func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	org       int64
	card      string
	amount    int64
	returnURL string
	expires   time.Time
	// customer is set for a setup session (SaveMethod).
	customer string
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SaveMethod opens a page where the cardholder saves a (made-up) payment
// method for the card's auto top-up, for customer (made when ""), and
// returns its address and the customer. The cardholder comes back to
// returnURL ("autotopup=saved" changed to "autotopup=cancelled" when they
// cancel).
func (p *Provider) SaveMethod(_ context.Context, org int64, card, customer, returnURL string) (string, string, error) {
	if org <= 0 || card == "" {
		return "", "", fmt.Errorf("checkout: invalid card (organizer %d)", org)
	}
	if u, err := url.Parse(returnURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", errors.New("checkout: return URL must be absolute")
	}
	if customer == "" {
		customer = "cus_test_" + newID()[:16]
	}
	id := newID()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions[id] = &session{org: org, card: card, returnURL: returnURL, expires: p.now().Add(TTL), customer: customer}
	return p.base + id, customer, nil
}

// Charge charges a saved method off-session: at once, succeeded (the
// payment id made from the charge's id, so that a charge sent again is
// the same payment), or declined for a method saved as declining.
func (p *Provider) Charge(_ context.Context, c payment.Charge) (payment.ChargeResult, error) {
	if c.Org <= 0 || c.Card == "" || c.ID == "" || c.Amount <= 0 || c.Customer == "" || c.Method == "" {
		return payment.ChargeResult{}, errors.New("checkout: a charge needs organizer, card, id, amount, customer and method")
	}
	if strings.HasPrefix(c.Method, declining) {
		return payment.ChargeResult{Status: "failed", Ref: "pay_auto_" + c.ID, Reason: "card_declined"}, nil
	}
	return payment.ChargeResult{Status: "succeeded", Ref: "pay_auto_" + c.ID}, nil
}

// declining begins the id of a saved method whose charges are declined.
const declining = "pm_test_declining_"

// New returns a provider whose pages are at base (an absolute URL or a
// path, ending in "/checkout/" for example), announcing payments to notify.
func New(base string, notify Notify, log *slog.Logger) *Provider {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{base: base, notify: notify, log: log, now: time.Now, sessions: map[string]*session{}}
}

// Start opens a checkout of amount cents for the card (hex id) of org and
// returns the address of its page; the cardholder comes back to returnURL.
func (p *Provider) Start(_ context.Context, org int64, card string, amount int64, returnURL string) (string, error) {
	if org <= 0 || card == "" || amount <= 0 || amount > 100000 {
		return "", fmt.Errorf("checkout: invalid payment (organizer %d, amount %d)", org, amount)
	}
	if u, err := url.Parse(returnURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("checkout: return URL must be absolute")
	}
	id := newID()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for k, s := range p.sessions {
		if now.After(s.expires) {
			delete(p.sessions, k)
		}
	}
	p.sessions[id] = &session{org: org, card: card, amount: amount, returnURL: returnURL, expires: now.Add(TTL)}
	return p.base + id, nil
}

// take removes and returns the checkout id.
func (p *Provider) take(id string) (*session, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[id]
	if !ok || p.now().After(s.expires) {
		return nil, false
	}
	delete(p.sessions, id)
	return s, true
}

func (p *Provider) put(id string, s *session) {
	p.mu.Lock()
	p.sessions[id] = s
	p.mu.Unlock()
}

// saved finishes a setup session: a saved method is announced as
// payment.method_saved.
func (p *Provider) saved(w http.ResponseWriter, r *http.Request, id string, s *session, action string) {
	back := s.returnURL
	if action == "cancel" {
		http.Redirect(w, r, strings.Replace(back, "autotopup=saved", "autotopup=cancelled", 1), http.StatusSeeOther)
		return
	}
	method := "pm_test_" + id[:16]
	if action == "save-declining" {
		method = declining + id[:16]
	}
	e := payment.Event{ID: "evt_setup_" + id, Type: payment.TypeMethodSaved, Payment: "seti_" + id, Org: s.org, Card: s.card,
		Customer: s.customer, Method: method, Created: p.now().Unix()}
	if err := p.notify(r.Context(), e); err != nil {
		p.put(id, s)
		p.log.Error("checkout: saved method not announced", "setup", e.Payment, "err", err)
		http.Error(w, "the saved method could not be announced", http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func (p *Provider) peek(id string) (*session, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.sessions[id]
	if !ok || p.now().After(s.expires) {
		return nil, false
	}
	return s, true
}

var page = template.Must(template.New("checkout").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test payment provider</title><link rel="icon" href="data:,"></head>
<body>
<main>
<h1>Test payment provider</h1>
<p>This is the demo's stand-in for a payment provider. No money moves.</p>
<p>Pay <strong>{{.Amount}}</strong> to top up card {{.Card}}?</p>
<form method="post" action="{{.ID}}">
<button type="submit" name="action" value="pay">Pay {{.Amount}}</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form>
</main>
</body>
</html>
`))

var setupPage = template.Must(template.New("setup").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test payment provider</title><link rel="icon" href="data:,"></head>
<body>
<main>
<h1>Test payment provider</h1>
<p>This is the demo's stand-in for a payment provider. No money moves and no card is asked for.</p>
<p>Save a payment method for the auto top-up of card {{.Card}}?</p>
<form method="post" action="{{.ID}}">
<button type="submit" name="action" value="save">Save a test card</button>
<button type="submit" name="action" value="save-declining">Save a declining test card</button>
<button type="submit" name="action" value="cancel">Cancel</button>
</form>
</main>
</body>
</html>
`))

func euros(c int64) string { return fmt.Sprintf("€%d.%02d", c/100, c%100) }

// ServeHTTP shows a checkout (GET) and finishes it (POST action=pay or
// cancel).
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	switch r.Method {
	case http.MethodGet:
		s, ok := p.peek(id)
		if !ok {
			http.Error(w, ErrUnknown.Error(), http.StatusNotFound)
			return
		}
		// The form's answer sends the cardholder back to the card page's
		// origin, which form-action must allow.
		if u, err := url.Parse(s.returnURL); err == nil {
			hd.Set("Content-Security-Policy", "default-src 'none'; img-src data:; form-action 'self' "+u.Scheme+"://"+u.Host+
				"; frame-ancestors 'none'; base-uri 'none'")
		}
		hd.Set("Content-Type", "text/html; charset=utf-8")
		if s.customer != "" {
			_ = setupPage.Execute(w, map[string]string{"ID": id, "Card": s.card})
			return
		}
		_ = page.Execute(w, map[string]string{"ID": id, "Amount": euros(s.amount), "Card": s.card})
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
		action := r.PostFormValue("action")
		if action != "pay" && action != "cancel" && action != "save" && action != "save-declining" {
			http.Error(w, "bad action", http.StatusBadRequest)
			return
		}
		s, ok := p.take(id)
		if !ok {
			http.Error(w, ErrUnknown.Error(), http.StatusNotFound)
			return
		}
		if setup := s.customer != ""; action != "cancel" && setup != (action != "pay") {
			p.put(id, s) // pay on a setup page, or save on a checkout
			http.Error(w, "bad action", http.StatusBadRequest)
			return
		}
		back := s.returnURL
		if s.customer != "" {
			p.saved(w, r, id, s, action)
			return
		}
		if action == "pay" {
			e := payment.Event{ID: "evt_" + id, Type: payment.TypePaymentSucceeded, Payment: "pay_" + id, Org: s.org,
				Card: s.card, Amount: s.amount, Currency: "EUR", Created: p.now().Unix()}
			if err := p.notify(r.Context(), e); err != nil {
				// The cardholder may try again.
				p.put(id, s)
				p.log.Error("checkout: payment not announced", "payment", e.Payment, "err", err)
				http.Error(w, "the payment could not be announced", http.StatusBadGateway)
				return
			}
		} else {
			back = strings.Replace(back, "topup=done", "topup=cancelled", 1)
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
