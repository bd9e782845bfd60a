package stripepay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/stripe/stripe-go/v82"

	"github.com/loopcard/loopcard/ledger/payment"
)

// Auto top-up through Stripe: the cardholder saves a card in a Checkout
// Session in setup mode, for a Customer made for the card (Stripe keeps
// the card; Loopcard the customer and payment-method ids, from the
// setup_intent.succeeded event); each charge is a PaymentIntent confirmed
// off-session with that method, its charge id as idempotency key.

// MetaAutoTopUp names, in a setup or payment intent's metadata, the auto
// top-up it belongs to: "setup" for saving the method, else the charge's
// id.
const MetaAutoTopUp = "loopcard_autotopup"

// SaveMethod opens a Checkout Session in setup mode for the card (hex id)
// of org, for customer (one is made when it is "") and returns the
// address of Stripe's page and the customer. The cardholder comes back to
// returnURL, or to it with "autotopup=saved" changed to
// "autotopup=cancelled".
func (p *Provider) SaveMethod(ctx context.Context, org int64, card, customer, returnURL string) (string, string, error) {
	if org <= 0 || card == "" {
		return "", "", fmt.Errorf("stripepay: invalid card (organizer %d)", org)
	}
	if u, err := url.Parse(returnURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", errors.New("stripepay: return URL must be absolute")
	}
	meta := map[string]string{MetaOrg: strconv.FormatInt(org, 10), MetaCard: card}
	if customer == "" {
		cp := &stripe.CustomerCreateParams{Description: stripe.String("Loopcard card " + card), Metadata: meta}
		cp.SetIdempotencyKey("loopcard-customer-" + strconv.FormatInt(org, 10) + "-" + card)
		c, err := p.sc.V1Customers.Create(ctx, cp)
		if err != nil {
			return "", "", fmt.Errorf("stripepay: customer: %w", err)
		}
		customer = c.ID
	}
	setup := map[string]string{MetaOrg: meta[MetaOrg], MetaCard: card, MetaAutoTopUp: "setup"}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:               stripe.String(string(stripe.CheckoutSessionModeSetup)),
		Customer:           stripe.String(customer),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
		SuccessURL:         stripe.String(returnURL),
		CancelURL:          stripe.String(strings.Replace(returnURL, "autotopup=saved", "autotopup=cancelled", 1)),
		Metadata:           setup,
		SetupIntentData:    &stripe.CheckoutSessionCreateSetupIntentDataParams{Metadata: setup},
		ExpiresAt:          stripe.Int64(p.now().Add(p.ttl).Unix()),
	}
	s, err := p.sc.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return "", "", fmt.Errorf("stripepay: checkout session (setup): %w", err)
	}
	if s.URL == "" {
		return "", "", errors.New("stripepay: checkout session without a URL")
	}
	return s.URL, customer, nil
}

// Charge confirms an off-session PaymentIntent of c.Amount with the saved
// method, with c.ID as idempotency key: sent again (after a timeout, by
// another server), Stripe answers the same payment and charges once. A
// declined card or one that needs the cardholder (3-D Secure) is a
// result, not an error; an error means no answer (send it again later).
func (p *Provider) Charge(ctx context.Context, c payment.Charge) (payment.ChargeResult, error) {
	if c.Org <= 0 || c.Card == "" || c.ID == "" || c.Amount <= 0 || c.Customer == "" || c.Method == "" {
		return payment.ChargeResult{}, errors.New("stripepay: a charge needs organizer, card, id, amount, customer and method")
	}
	params := &stripe.PaymentIntentCreateParams{
		Amount:        stripe.Int64(c.Amount),
		Currency:      stripe.String("eur"),
		Customer:      stripe.String(c.Customer),
		PaymentMethod: stripe.String(c.Method),
		Confirm:       stripe.Bool(true),
		OffSession:    stripe.Bool(true),
		Description:   stripe.String("Auto top-up of card " + c.Card),
		Metadata:      map[string]string{MetaOrg: strconv.FormatInt(c.Org, 10), MetaCard: c.Card, MetaAutoTopUp: c.ID},
	}
	params.SetIdempotencyKey("loopcard-autotopup-" + c.ID)
	pi, err := p.sc.V1PaymentIntents.Create(ctx, params)
	var se *stripe.Error
	if errors.As(err, &se) && se.Type == stripe.ErrorTypeCard {
		// Declined, or the bank wants the cardholder: an answer.
		r := payment.ChargeResult{Status: "failed", Reason: string(se.Code)}
		if se.DeclineCode != "" {
			r.Reason = string(se.DeclineCode)
		}
		if se.PaymentIntent != nil {
			r.Ref = se.PaymentIntent.ID
			if se.PaymentIntent.Status == stripe.PaymentIntentStatusRequiresAction {
				r.Status = "requires_action"
			}
		}
		if se.Code == stripe.ErrorCodeAuthenticationRequired || se.DeclineCode == stripe.DeclineCodeAuthenticationRequired {
			r.Status = "requires_action"
		}
		return r, nil
	}
	if err != nil {
		return payment.ChargeResult{}, fmt.Errorf("stripepay: auto top-up charge: %w", err)
	}
	r := payment.ChargeResult{Ref: pi.ID}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		r.Status = "succeeded"
	case stripe.PaymentIntentStatusProcessing:
		r.Status = "processing"
	case stripe.PaymentIntentStatusRequiresAction:
		r.Status = "requires_action"
	default:
		// Confirmed, yet waiting for a method (or canceled): the
		// attempt failed.
		r.Status, r.Reason = "failed", string(pi.Status)
	}
	return r, nil
}

// setupEvent translates setup_intent.succeeded of a method saved for
// auto top-up.
func setupEvent(out payment.Event, si *stripe.SetupIntent) (payment.Event, error) {
	if si.Metadata[MetaAutoTopUp] != "setup" || !fromMeta(&out, si.Metadata) || si.Customer == nil || si.PaymentMethod == nil {
		return out, out.Validate()
	}
	out.Type, out.Payment, out.Customer, out.Method = payment.TypeMethodSaved, si.ID, si.Customer.ID, si.PaymentMethod.ID
	return out, out.Validate()
}
