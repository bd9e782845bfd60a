// Package paytest is a local payment provider for tests and demos: it
// signs webhook deliveries with the scheme of package payment and posts them
// to a receiver, retrying until it answers 200, as a real provider does.
package paytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/loopcard/loopcard/ledger/payment"
)

// Provider sends signed events to URL.
type Provider struct {
	Secret payment.Secret
	URL    string
	Client *http.Client
	// Now is the provider's clock (tests move it to check the tolerance window).
	Now func() time.Time
}

// Deliver posts e once and returns the HTTP status.
func (p *Provider) Deliver(ctx context.Context, e payment.Event) (int, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return 0, err
	}
	return p.DeliverRaw(ctx, body)
}

// DeliverRaw signs and posts body once and returns the HTTP status.
func (p *Provider) DeliverRaw(ctx context.Context, body []byte) (int, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(payment.Header, payment.Sign(p.Secret, now(), body))
	c := p.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("paytest: deliver: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
