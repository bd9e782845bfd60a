// Package stripepay is Stripe as Loopcard's payment provider, through the
// official stripe-go: a Checkout Session for each online top-up, with the
// payment methods the organizer chose (iDEAL, Bancontact, cards); refunds
// back to a payment; and Stripe's signed webhook events (Stripe-Signature,
// checked by stripe-go's webhook package) translated into payment.Events,
// one state of the payment each.
package stripepay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/loopcard/loopcard/ledger/payment"
)

// Header is the HTTP header of Stripe's webhook signature.
const Header = "Stripe-Signature"

// Methods are the payment methods an organizer may offer.
var Methods = []string{"ideal", "bancontact", "card"}

// Key is a Stripe secret key (sk_...) or webhook signing secret (whsec_...).
// It has no String method and formats as an address.
type Key struct {
	_ [0]func()
	s *string
}

// NewKey keeps s, trimmed of surrounding white space (a key read from a
// file ends with a newline).
func NewKey(s string) Key {
	k := strings.TrimSpace(s)
	return Key{s: &k}
}

func (k Key) valid() bool { return k.s != nil && *k.s != "" }

// Config is a Stripe account's configuration.
type Config struct {
	// Key is the secret API key; the webhook secrets are WebhookSecrets
	// (more than one while Stripe rolls the secret).
	Key            Key
	WebhookSecrets []Key
	// Methods are the payment methods offered at checkout, a subset of
	// Methods; empty means all of them.
	Methods []string
	// URL is the API's address; empty means Stripe's. Tests point it at
	// stripe-mock.
	URL string
	// HTTPClient makes the API calls; nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Tolerance is how far a webhook's timestamp may be from now; 0 means
	// payment.DefaultTolerance.
	Tolerance time.Duration
	// SessionTTL is how long a checkout stays open (Stripe allows 30 min to
	// 24 h); 0 means an hour.
	SessionTTL time.Duration
}

// Provider is a Stripe account. Create it with New.
type Provider struct {
	sc        *stripe.Client
	methods   []string
	secrets   []Key
	tolerance time.Duration
	ttl       time.Duration
	now       func() time.Time
}

// New checks cfg and returns its Provider.
func New(cfg Config) (*Provider, error) {
	if !cfg.Key.valid() {
		return nil, errors.New("stripepay: an API key is required")
	}
	if len(cfg.WebhookSecrets) == 0 {
		return nil, errors.New("stripepay: a webhook signing secret is required")
	}
	for _, s := range cfg.WebhookSecrets {
		if !s.valid() {
			return nil, errors.New("stripepay: empty webhook signing secret")
		}
	}
	methods := cfg.Methods
	if len(methods) == 0 {
		methods = Methods
	}
	for _, m := range methods {
		if !slices.Contains(Methods, m) {
			return nil, fmt.Errorf("stripepay: payment method %q (one of %s)", m, strings.Join(Methods, ", "))
		}
	}
	ttl := cfg.SessionTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	if ttl < 30*time.Minute || ttl > 24*time.Hour {
		return nil, errors.New("stripepay: a checkout stays open 30 min to 24 h")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	bc := &stripe.BackendConfig{HTTPClient: hc, LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}}
	if cfg.URL != "" {
		u := strings.TrimRight(cfg.URL, "/")
		bc.URL = &u
	}
	sc := stripe.NewClient(*cfg.Key.s, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))
	return &Provider{sc: sc, methods: slices.Clone(methods), secrets: slices.Clone(cfg.WebhookSecrets),
		tolerance: cfg.Tolerance, ttl: ttl, now: time.Now}, nil
}

// Metadata keys of a checkout and its payment intent: how a payment finds
// its card.
const (
	MetaOrg  = "loopcard_org"
	MetaCard = "loopcard_card"
)

// Start opens a Checkout Session of amount cents (EUR) for the card (hex
// id) of org and returns the address of Stripe's page. The cardholder
// comes back to returnURL, or to it with "topup=done" changed to
// "topup=cancelled" when they cancel.
func (p *Provider) Start(ctx context.Context, org int64, card string, amount int64, returnURL string) (string, error) {
	if org <= 0 || card == "" || amount <= 0 || amount > 100000 {
		return "", fmt.Errorf("stripepay: invalid payment (organizer %d, amount %d)", org, amount)
	}
	if u, err := url.Parse(returnURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("stripepay: return URL must be absolute")
	}
	meta := map[string]string{MetaOrg: strconv.FormatInt(org, 10), MetaCard: card}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:               stripe.String(string(stripe.CheckoutSessionModePayment)),
		PaymentMethodTypes: stripe.StringSlice(p.methods),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripe.String("eur"),
				UnitAmount:  stripe.Int64(amount),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String("Top-up of card " + card)},
			},
		}},
		SuccessURL:        stripe.String(returnURL),
		CancelURL:         stripe.String(strings.Replace(returnURL, "topup=done", "topup=cancelled", 1)),
		Metadata:          meta,
		PaymentIntentData: &stripe.CheckoutSessionCreatePaymentIntentDataParams{Metadata: meta},
		ExpiresAt:         stripe.Int64(p.now().Add(p.ttl).Unix()),
	}
	s, err := p.sc.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return "", fmt.Errorf("stripepay: checkout session: %w", err)
	}
	if s.URL == "" {
		return "", errors.New("stripepay: checkout session without a URL")
	}
	return s.URL, nil
}

// Refund refunds amount cents of the payment (a payment intent id) back
// to where it came from. key is the idempotency key: the same key refunds
// once, however often it is sent. It returns Stripe's refund id.
func (p *Provider) Refund(ctx context.Context, paymentRef string, amount int64, key string) (string, error) {
	if paymentRef == "" || amount <= 0 || key == "" {
		return "", errors.New("stripepay: a refund needs a payment, an amount and an idempotency key")
	}
	params := &stripe.RefundCreateParams{PaymentIntent: stripe.String(paymentRef), Amount: stripe.Int64(amount),
		Metadata: map[string]string{"loopcard_refund_line": key}}
	params.SetIdempotencyKey("loopcard-refund-" + key)
	r, err := p.sc.V1Refunds.Create(ctx, params)
	if err != nil {
		return "", fmt.Errorf("stripepay: refund of %s: %w", paymentRef, err)
	}
	return r.ID, nil
}

// APIVersion is the Stripe API version of the events this package reads:
// stripe-go v82's, "2025-08-27.basil". The webhook endpoint in Stripe's
// dashboard must be created with it.
const APIVersion = stripe.APIVersion

// VersionError is an event of another API version than APIVersion: its
// objects may be shaped otherwise, so it is refused, not misread. It
// wraps payment.ErrEvent.
type VersionError struct {
	Got string // the event's api_version, at most 40 bytes
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("stripepay: event of API version %q, this endpoint reads %q: create the Stripe webhook endpoint with API version %s",
		e.Got, APIVersion, APIVersion)
}

func (e *VersionError) Unwrap() error { return payment.ErrEvent }

// Parse verifies a webhook delivery's Stripe-Signature against the
// signing secrets and translates the event (Translate). It returns
// payment.ErrNoSignature, payment.ErrTimestamp, payment.ErrSignature or
// payment.ErrEvent (a *VersionError for an event of another API version).
func (p *Provider) Parse(h http.Header, body []byte, now time.Time) (payment.Event, error) {
	header := h.Get(Header)
	tol := p.tolerance
	if tol <= 0 {
		tol = payment.DefaultTolerance
	}
	// stripe-go checks the signature against the wall clock; the
	// tolerance against now is checked here, so that tests can move it.
	if err := checkTimestamp(header, now, tol); err != nil {
		return payment.Event{}, err
	}
	var err error
	for _, s := range p.secrets {
		var ev stripe.Event
		ev, err = webhook.ConstructEventWithOptions(body, header, *s.s, webhook.ConstructEventOptions{IgnoreTolerance: true, IgnoreAPIVersionMismatch: true})
		switch {
		case err == nil && ev.APIVersion != APIVersion:
			// Signed, but of another API version: pinned exactly,
			// stricter than stripe-go's check of the release train.
			got := ev.APIVersion
			if len(got) > 40 {
				got = got[:40]
			}
			return payment.Event{}, &VersionError{Got: got}
		case err == nil:
			return Translate(ev)
		case errors.Is(err, webhook.ErrNoValidSignature):
			continue
		case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
			return payment.Event{}, fmt.Errorf("%w: %w", payment.ErrNoSignature, err)
		default:
			return payment.Event{}, fmt.Errorf("%w: %w", payment.ErrEvent, err)
		}
	}
	return payment.Event{}, fmt.Errorf("%w: %w", payment.ErrSignature, err)
}

func checkTimestamp(header string, now time.Time, tol time.Duration) error {
	for part := range strings.SplitSeq(header, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return payment.ErrNoSignature
			}
			if d := now.Sub(time.Unix(ts, 0)); d > tol || d < -tol {
				return payment.ErrTimestamp
			}
			return nil
		}
	}
	return payment.ErrNoSignature
}

// Translate turns a Stripe event into a payment.Event:
//
//   - checkout.session.completed: succeeded when paid, processing when
//     unpaid (a method that confirms later), unknown for any other
//     payment status;
//   - checkout.session.async_payment_succeeded / _failed, expired;
//   - payment_intent.succeeded, processing, payment_failed, canceled
//     (expired), of payment intents Loopcard made (with its metadata); an
//     auto top-up's carry its charge (AutoTopUp), and its
//     payment_intent.requires_action is a failure (off-session, nobody
//     can authenticate);
//   - setup_intent.succeeded of a method saved for auto top-up: method
//     saved (the customer and payment-method ids);
//   - charge.refunded: refunded, with the sum refunded so far;
//   - charge.dispute.created: disputed;
//   - charge.dispute.closed with status won: dispute won (lost changes
//     nothing: the chargeback was booked when it was created).
//
// Other events keep their Stripe type, prefixed "stripe.": noted only.
// The payment is the payment intent's id, which all of them name.
func Translate(ev stripe.Event) (payment.Event, error) {
	out := payment.Event{ID: ev.ID, Type: "stripe." + string(ev.Type), Created: ev.Created}
	if ev.Data == nil {
		return payment.Event{}, fmt.Errorf("%w: event without data", payment.ErrEvent)
	}
	unmarshal := func(v any) error {
		if err := json.Unmarshal(ev.Data.Raw, v); err != nil {
			return fmt.Errorf("%w: %s: %w", payment.ErrEvent, ev.Type, err)
		}
		return nil
	}
	switch ev.Type {
	case "checkout.session.completed", "checkout.session.async_payment_succeeded",
		"checkout.session.async_payment_failed", "checkout.session.expired":
		var s stripe.CheckoutSession
		if err := unmarshal(&s); err != nil {
			return payment.Event{}, err
		}
		out.Amount, out.Currency = s.AmountTotal, strings.ToUpper(string(s.Currency))
		out.Payment = s.ID
		if s.PaymentIntent != nil && s.PaymentIntent.ID != "" {
			out.Payment = s.PaymentIntent.ID
		}
		if !fromMeta(&out, s.Metadata) {
			return out, out.Validate() // not a Loopcard checkout: noted only
		}
		switch ev.Type {
		case "checkout.session.completed":
			switch s.PaymentStatus {
			case stripe.CheckoutSessionPaymentStatusPaid:
				out.Type = payment.TypePaymentSucceeded
			case stripe.CheckoutSessionPaymentStatusUnpaid:
				out.Type = payment.TypePaymentProcessing
			default:
				out.Type, out.Status = payment.TypeUnknown, "checkout.session.completed/"+string(s.PaymentStatus)
			}
		case "checkout.session.async_payment_succeeded":
			out.Type = payment.TypePaymentSucceeded
		case "checkout.session.async_payment_failed":
			out.Type = payment.TypePaymentFailed
		case "checkout.session.expired":
			out.Type = payment.TypePaymentExpired
		}
	case "payment_intent.succeeded", "payment_intent.processing", "payment_intent.payment_failed", "payment_intent.canceled",
		"payment_intent.requires_action":
		var pi stripe.PaymentIntent
		if err := unmarshal(&pi); err != nil {
			return payment.Event{}, err
		}
		out.Payment, out.Amount, out.Currency = pi.ID, pi.Amount, strings.ToUpper(string(pi.Currency))
		if !fromMeta(&out, pi.Metadata) {
			return out, out.Validate()
		}
		auto := pi.Metadata[MetaAutoTopUp]
		if auto != "" && auto != "setup" {
			out.AutoTopUp = auto
		}
		if ev.Type == "payment_intent.requires_action" {
			if out.AutoTopUp == "" {
				return out, out.Validate() // a checkout's 3-D Secure: the cardholder is there
			}
			// Off-session, nobody can authenticate: the charge failed.
			out.Type, out.Status = payment.TypePaymentFailed, "requires_action"
			return out, out.Validate()
		}
		out.Type = map[stripe.EventType]string{
			"payment_intent.succeeded":      payment.TypePaymentSucceeded,
			"payment_intent.processing":     payment.TypePaymentProcessing,
			"payment_intent.payment_failed": payment.TypePaymentFailed,
			"payment_intent.canceled":       payment.TypePaymentExpired,
		}[ev.Type]
		if pi.LastPaymentError != nil && out.Type == payment.TypePaymentFailed {
			out.Status = string(pi.LastPaymentError.Code)
			if pi.LastPaymentError.DeclineCode != "" {
				out.Status = string(pi.LastPaymentError.DeclineCode)
			}
			if out.Status == string(stripe.ErrorCodeAuthenticationRequired) {
				out.Status = "requires_action"
			}
		}
	case "setup_intent.succeeded":
		var si stripe.SetupIntent
		if err := unmarshal(&si); err != nil {
			return payment.Event{}, err
		}
		return setupEvent(out, &si)
	case "charge.refunded":
		var c stripe.Charge
		if err := unmarshal(&c); err != nil {
			return payment.Event{}, err
		}
		if c.PaymentIntent == nil || c.PaymentIntent.ID == "" || c.AmountRefunded <= 0 {
			return out, out.Validate()
		}
		out.Type, out.Payment, out.Refunded, out.Amount = payment.TypePaymentRefunded, c.PaymentIntent.ID, c.AmountRefunded, c.Amount
		out.Currency = strings.ToUpper(string(c.Currency))
	case "charge.dispute.created":
		var d stripe.Dispute
		if err := unmarshal(&d); err != nil {
			return payment.Event{}, err
		}
		if d.PaymentIntent == nil || d.PaymentIntent.ID == "" {
			return out, out.Validate()
		}
		out.Type, out.Payment, out.Dispute, out.Amount = payment.TypePaymentDisputed, d.PaymentIntent.ID, d.ID, d.Amount
		out.Currency = strings.ToUpper(string(d.Currency))
	case "charge.dispute.closed":
		var d stripe.Dispute
		if err := unmarshal(&d); err != nil {
			return payment.Event{}, err
		}
		if d.PaymentIntent == nil || d.PaymentIntent.ID == "" {
			return out, out.Validate()
		}
		out.Payment, out.Dispute, out.Amount = d.PaymentIntent.ID, d.ID, d.Amount
		out.Currency = strings.ToUpper(string(d.Currency))
		if d.Status == stripe.DisputeStatusWon {
			out.Type = payment.TypeDisputeWon
		} else {
			out.Status = string(d.Status)
		}
	}
	return out, out.Validate()
}

// fromMeta sets the organizer and card from Loopcard's metadata; false
// when the object has none (a payment Loopcard did not start).
func fromMeta(e *payment.Event, m map[string]string) bool {
	org, err := strconv.ParseInt(m[MetaOrg], 10, 64)
	if err != nil || org <= 0 || m[MetaCard] == "" {
		return false
	}
	e.Org, e.Card = org, m[MetaCard]
	return true
}
