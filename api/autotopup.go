package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/loopcard/loopcard/api/apitype"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// chargeTimeout bounds one auto top-up charge at the provider, past the
// tap that triggered it.
const chargeTimeout = 30 * time.Second

// autoTopUp runs at an online tap (a terminal's or store's pending-loads
// request) before the card's loads are listed: when the ledger decides
// that the card's rule fires (ledger.TriggerAutoTopUp: below its
// threshold, no charge open, under its daily limit), the charge runs at
// the provider server-side, and the tap waits for it at most
// Payments.AutoTopUpWait: answered by then, a succeeded charge is a
// pending load this tap writes; otherwise the next online tap does. A
// failure here never fails the tap.
func (s *Server) autoTopUp(c *call, card []byte) {
	p := s.payments
	if p == nil || p.AutoTopUps == nil {
		return
	}
	ch, err := s.ledger.TriggerAutoTopUp(c.ctx, c.who.org, card)
	if err != nil {
		s.log.Error("api: auto top-up not triggered", "request_id", c.id, "card", terminaltx.CardHex(card), "err", err)
		return
	}
	if ch == nil {
		return
	}
	org := c.who.org
	done := make(chan struct{})
	s.charges.Add(1)
	go func() {
		defer s.charges.Done()
		defer close(done)
		s.runCharge(context.WithoutCancel(c.ctx), org, ch)
	}()
	wait := p.AutoTopUpWait
	if wait == 0 {
		wait = DefaultAutoTopUpWait
	}
	if wait < 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.metrics.Inc("autotopup_charge_after_tap")
	case <-c.ctx.Done():
	}
}

// runCharge sends a charge to the provider and records its answer. With
// no answer, the charge stays open and a later tap sends it again, with
// the same id (the provider's idempotency key).
func (s *Server) runCharge(ctx context.Context, org int64, ch *ledger.AutoTopUpCharge) {
	ctx, cancel := context.WithTimeout(ctx, chargeTimeout)
	defer cancel()
	card := terminaltx.CardHex(ch.Card)
	res, err := s.payments.AutoTopUps.Charge(ctx, payment.Charge{Org: org, Card: card, ID: ch.ID.String(), Amount: ch.Amount,
		Customer: ch.Customer, Method: ch.Method})
	if err != nil {
		s.metrics.Inc("autotopup_charge_unanswered")
		s.log.Warn("api: auto top-up charge unanswered, sent again at a later tap", "org", org, "card", card, "charge", ch.ID.String(), "err", err)
		return
	}
	if err := s.ledger.RecordAutoTopUp(ctx, org, ch.ID, res.Status, res.Ref, res.Reason); err != nil {
		s.log.Error("api: auto top-up charge answered, not recorded (the provider's webhook records it)", "org", org, "card", card,
			"charge", ch.ID.String(), "status", res.Status, "err", err)
		return
	}
	s.metrics.Inc("autotopup_charge_" + res.Status)
	s.log.Info("api: auto top-up charge", "org", org, "card", card, "charge", ch.ID.String(), "amount", ch.Amount, "status", res.Status)
}

// setAutoTopUp sets a claimed card's auto top-up rule (body
// AutoTopUpRequest) and opens the provider's page where the cardholder
// saves a payment method: the rule is active once the provider says the
// method is saved (its webhook). Loopcard keeps the provider's customer
// and method ids only.
func (s *Server) setAutoTopUp(c *call) error {
	var req apitype.AutoTopUpRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	card, _ := parseCardID(c.r.PathValue("card"))
	c.target = "card " + terminaltx.CardHex(card)
	p := s.payments
	if p == nil || p.AutoTopUps == nil {
		return apiError(http.StatusConflict, "auto top-up is not available here", nil)
	}
	if u, err := url.Parse(req.ReturnURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(req.ReturnURL) > 500 {
		return badRequest("return_url must be an absolute http(s) URL", nil)
	}
	customer, err := s.ledger.SetAutoTopUp(c.ctx, c.who.org, card, p.Provider, req.Amount, req.Threshold, req.DailyLimit)
	switch {
	case errors.Is(err, ledger.ErrInvalid):
		return badRequest("amount 1.00 to 1000.00, threshold 0.00 to 1000.00, daily limit at least the amount and at most 5000.00 (cents)", err)
	case errors.Is(err, ledger.ErrNotFound):
		return errNotFound
	case err != nil:
		return err
	}
	page, cus, err := p.AutoTopUps.SaveMethod(c.ctx, c.who.org, terminaltx.CardHex(card), customer, req.ReturnURL)
	if err != nil {
		return apiError(http.StatusBadGateway, "the payment provider did not answer: try again", err)
	}
	if cus != customer {
		if err := s.ledger.AutoTopUpCustomer(c.ctx, c.who.org, card, cus); err != nil {
			return err
		}
	}
	c.detail = fmt.Sprintf("auto top-up set: %d cents below %d, at most %d a day", req.Amount, req.Threshold, req.DailyLimit)
	return c.reply(http.StatusOK, apitype.AutoTopUpResponse{URL: page, Status: "setup"})
}

// stopAutoTopUp turns a claimed card's auto top-up off.
func (s *Server) stopAutoTopUp(c *call) error {
	card, _ := parseCardID(c.r.PathValue("card"))
	c.target = "card " + terminaltx.CardHex(card)
	err := s.ledger.DisableAutoTopUp(c.ctx, c.who.org, card, "turned off by the cardholder")
	if errors.Is(err, ledger.ErrNoRule) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	c.detail = "auto top-up turned off"
	return c.reply(http.StatusOK, apitype.AutoTopUpResponse{Status: "disabled"})
}

// autoTopUpOf is a card's rule and charges for its profile; nil without a
// rule.
func (s *Server) autoTopUpOf(c *call, org int64, card []byte) (*apitype.AutoTopUp, error) {
	r, err := s.ledger.AutoTopUp(c.ctx, org, card)
	if errors.Is(err, ledger.ErrNoRule) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	charges, err := s.ledger.AutoTopUpCharges(c.ctx, org, card)
	if err != nil {
		return nil, err
	}
	out := &apitype.AutoTopUp{Amount: r.Amount, Threshold: r.Threshold, DailyLimit: r.DailyLimit, Status: r.Status, Reason: r.DisabledReason,
		Charges: make([]apitype.AutoTopUpCharge, len(charges))}
	for i, ch := range charges {
		out.Charges[i] = apitype.AutoTopUpCharge{ID: ch.ID.String(), At: ch.At, Amount: ch.Amount, Status: ch.Status, Reason: ch.Reason}
	}
	return out, nil
}
