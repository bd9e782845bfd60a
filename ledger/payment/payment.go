// Package payment receives a payment provider's signed webhooks: the
// Stripe-style scheme, where the header
//
//	Loopcard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// (Stripe calls it Stripe-Signature) signs the timestamp with the body, and
// deliveries older or newer than a tolerance window are refused, so a
// captured delivery cannot be replayed later. A delivery may carry several
// v1 signatures while the provider rotates its secret.
package payment

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/loopcard/loopcard/ledger/input"
)

// Header is the HTTP header carrying the signature.
const Header = "Loopcard-Signature"

// DefaultTolerance is how far a delivery's timestamp may be from now.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrNoSignature = errors.New("payment: missing or malformed signature header")
	ErrSignature   = errors.New("payment: no signature matches")
	ErrTimestamp   = errors.New("payment: timestamp outside the tolerance window")
	ErrEvent       = errors.New("payment: malformed event")
)

// Secret is a webhook signing secret. It has no String method and formats
// as an address.
type Secret struct {
	_ [0]func()
	b *[]byte
}

// NewSecret copies b into a Secret.
func NewSecret(b []byte) Secret {
	c := append([]byte(nil), b...)
	return Secret{b: &c}
}

func (s Secret) mac(t int64, body []byte) []byte {
	m := hmac.New(sha256.New, *s.b)
	m.Write([]byte(strconv.FormatInt(t, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the header value for body sent at t: what the provider (and
// the local test provider) does.
func Sign(s Secret, t time.Time, body []byte) string {
	ts := t.Unix()
	return fmt.Sprintf("t=%d,v1=%s", ts, hex.EncodeToString(s.mac(ts, body)))
}

// Verify checks a delivery's signature header against the body. now is the
// receiver's clock; tolerance 0 means DefaultTolerance. It returns
// ErrNoSignature, ErrTimestamp or ErrSignature.
func Verify(s Secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if s.b == nil {
		return ErrSignature
	}
	var ts int64 = -1
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrNoSignature
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ts != -1 {
				return ErrNoSignature
			}
			ts = n
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrNoSignature
			}
			sigs = append(sigs, b)
		}
	}
	if ts < 0 || len(sigs) == 0 {
		return ErrNoSignature
	}
	d := now.Sub(time.Unix(ts, 0))
	if d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want := s.mac(ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrSignature
}

// Event is a provider's notice about a payment: an online top-up of a
// card, paid through the provider. Its Type is one of the Type constants;
// a provider's own events are translated into these (package stripepay
// does it for Stripe).
type Event struct {
	ID       string `json:"id"`   // provider's event id: deliveries repeat it
	Type     string `json:"type"` // one of the Type constants; other types are only noted
	Payment  string `json:"payment"`
	Org      int64  `json:"organizer"` // 0 for refunded and disputed: the payment names it
	Card     string `json:"card"`      // card id in hex
	Amount   int64  `json:"amount"`    // the payment's amount; for disputed, the amount taken back
	Currency string `json:"currency"`
	Created  int64  `json:"created"`
	// Refunded is, for TypePaymentRefunded, how much of the payment the
	// provider has refunded in all so far (deliveries out of order carry
	// smaller sums, which change nothing).
	Refunded int64 `json:"refunded,omitempty"`
	// Dispute is the provider's id of a chargeback, for TypePaymentDisputed.
	Dispute string `json:"dispute,omitempty"`
	// Status is the provider's own name of the state, for TypeUnknown
	// (and, for a failed auto top-up, "requires_action" when the charge
	// needed the cardholder).
	Status string `json:"status,omitempty"`
	// AutoTopUp is the id of the auto top-up charge this payment is (a
	// UUID the server gave it), for payments Loopcard started off-session.
	AutoTopUp string `json:"autotopup,omitempty"`
	// Customer and Method are the provider's ids of a payment method saved
	// for auto top-up (TypeMethodSaved): Loopcard keeps only these.
	Customer string `json:"customer,omitempty"`
	Method   string `json:"method,omitempty"`
}

// Event types. The ledger credits a card for a succeeded payment only; a
// processing one is recorded and waits for succeeded, failed or expired
// (or expires by itself when none comes); refunded and disputed take the
// credit back.
const (
	TypePaymentSucceeded  = "payment.succeeded"
	TypePaymentProcessing = "payment.processing"
	TypePaymentFailed     = "payment.failed"
	TypePaymentExpired    = "payment.expired"
	TypePaymentRefunded   = "payment.refunded"
	TypePaymentDisputed   = "payment.disputed"
	// TypeDisputeWon: the provider closed a chargeback in the organizer's
	// favour; what it took back is returned.
	TypeDisputeWon = "payment.dispute_won"
	// TypeMethodSaved: the cardholder saved a payment method for the
	// card's auto top-up at the provider (Customer, Method).
	TypeMethodSaved = "payment.method_saved"
	// TypeUnknown is a payment in a state the provider never documented:
	// parked for HQ, nothing credited.
	TypeUnknown = "payment.unknown"
)

// ParseEvent decodes a verified delivery's body.
func ParseEvent(body []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrEvent, err)
	}
	return e, e.Validate()
}

// Validate checks what each type of event needs.
func (e Event) Validate() error {
	if e.ID == "" || e.Type == "" || len(e.ID) > 255 || len(e.Payment) > 255 {
		return fmt.Errorf("%w: id and type are required", ErrEvent)
	}
	if err := input.Strings(&e, 255); err != nil {
		return fmt.Errorf("%w: %w", ErrEvent, err)
	}
	switch e.Type {
	case TypePaymentSucceeded, TypePaymentProcessing:
		if input.Amount("amount", e.Amount) != nil || e.Payment == "" || e.Card == "" || e.Org <= 0 {
			return fmt.Errorf("%w: a payment needs organizer, card, amount and payment id", ErrEvent)
		}
	case TypePaymentFailed, TypePaymentExpired, TypeUnknown:
		if e.Payment == "" {
			return fmt.Errorf("%w: %s needs the payment id", ErrEvent, e.Type)
		}
	case TypePaymentRefunded:
		if e.Payment == "" || input.Amount("refunded", e.Refunded) != nil {
			return fmt.Errorf("%w: a refund needs the payment id and the amount refunded", ErrEvent)
		}
	case TypePaymentDisputed:
		if e.Payment == "" || e.Dispute == "" || input.Amount("amount", e.Amount) != nil {
			return fmt.Errorf("%w: a chargeback needs the payment id, its id and its amount", ErrEvent)
		}
	case TypeMethodSaved:
		if e.Org <= 0 || e.Card == "" || e.Customer == "" || e.Method == "" {
			return fmt.Errorf("%w: a saved method needs organizer, card, customer and method", ErrEvent)
		}
	case TypeDisputeWon:
		if e.Payment == "" || e.Dispute == "" {
			return fmt.Errorf("%w: a won chargeback needs the payment id and its id", ErrEvent)
		}
	}
	return nil
}

// MaxBody bounds a delivery's body.
const MaxBody = 64 << 10

// Handler receives webhook deliveries: it verifies the signature, parses the
// event and passes it to Record. It answers 400 for a bad delivery (the
// provider then shows it as failed), 500 when Record fails (the provider
// retries), and 200 otherwise. Record must be idempotent by event id:
// providers deliver at least once.
type Handler struct {
	Secret    Secret
	Tolerance time.Duration
	Now       func() time.Time
	Record    func(*http.Request, Event) error
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	if err := Verify(h.Secret, r.Header.Get(Header), body, now(), h.Tolerance); err != nil {
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	e, err := ParseEvent(body)
	if err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if err := h.Record(r, e); err != nil {
		http.Error(w, "not recorded", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// Charge is one auto top-up charge a provider makes off-session with a
// method the cardholder saved.
type Charge struct {
	Org              int64
	Card             string // hex id
	ID               string // the charge's id: the provider's idempotency key
	Amount           int64
	Customer, Method string // the provider's ids of the saved method
}

// ChargeResult is a provider's answer to a Charge: Status is "succeeded",
// "processing", "failed" or "requires_action", Ref the provider's payment
// id, Reason the provider's code for a failure.
type ChargeResult struct {
	Status, Ref, Reason string
}
