// Package checkout is the test payment provider's hosted checkout page, for
// the demo and tests: it stands where a real provider's page would be. The
// card page sends the cardholder here with an amount; "Pay" announces the
// payment as a payment.succeeded event (package payment; deliver it as a
// signed webhook with paytest, or record it directly) and sends the
// cardholder back; "Cancel" only sends them back.
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
}

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
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
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
		_ = page.Execute(w, map[string]string{"ID": id, "Amount": euros(s.amount), "Card": s.card})
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
		action := r.PostFormValue("action")
		if action != "pay" && action != "cancel" {
			http.Error(w, "bad action", http.StatusBadRequest)
			return
		}
		s, ok := p.take(id)
		if !ok {
			http.Error(w, ErrUnknown.Error(), http.StatusNotFound)
			return
		}
		back := s.returnURL
		if action == "pay" {
			e := payment.Event{ID: "evt_" + id, Type: payment.TypePaymentSucceeded, Payment: "pay_" + id, Org: s.org,
				Card: s.card, Amount: s.amount, Currency: "EUR", Created: p.now().Unix()}
			if err := p.notify(r.Context(), e); err != nil {
				// The cardholder may try again.
				p.mu.Lock()
				p.sessions[id] = s
				p.mu.Unlock()
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
