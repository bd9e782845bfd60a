package api

import (
	"errors"
	"net/http"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
)

// paymentWebhook receives the payment provider's signed events (POST
// /v1/payments/webhook, anyone may call it: the signature is the
// credential). The signature (package payment: a timestamped HMAC-SHA256
// of the body; or the provider's own, read by Payments.Webhooks, e.g.
// Stripe's) must match one of the secrets, its timestamp be within
// the tolerance of now, and the event parse; then the ledger records
// the payment's state (ledger.RecordPayment), once per event id: a
// delivery repeated (providers deliver at least once) answers 200 and
// changes nothing. A refused delivery answers 400, which the provider
// shows as failed; a failure to record answers 5xx, which it retries.
func (s *Server) paymentWebhook(c *call) error {
	p := s.payments
	if p == nil {
		return errNotFound
	}
	if len(c.body) == 0 {
		return badRequest("a JSON body is required", nil)
	}
	var (
		ev   payment.Event
		err  error
		verr *stripepay.VersionError
	)
	if p.Webhooks != nil {
		ev, err = p.Webhooks.Parse(c.r.Header, c.body, s.now())
	} else {
		header := c.r.Header.Get(payment.Header)
		for _, sec := range p.Secrets {
			if err = payment.Verify(sec, header, c.body, s.now(), p.Tolerance); err == nil || !errors.Is(err, payment.ErrSignature) {
				break
			}
		}
		if err == nil {
			ev, err = payment.ParseEvent(c.body)
		}
	}
	switch {
	case errors.Is(err, payment.ErrTimestamp):
		s.metrics.Inc("payment_webhook_refused")
		return badRequest("signature timestamp outside the tolerance", err)
	case errors.As(err, &verr):
		// Every event of a misconfigured endpoint is refused: say so where
		// the operator looks, naming the versions, never the payload.
		s.metrics.Inc("payment_webhook_refused")
		s.log.Warn("api: payment webhook of another API version refused", "provider", p.Provider, "event_version", verr.Got,
			"expected_version", stripepay.APIVersion, "fix", "create the webhook endpoint with API version "+stripepay.APIVersion)
		return badRequest("event of API version "+verr.Got+", this endpoint reads "+stripepay.APIVersion, err)
	case errors.Is(err, payment.ErrEvent):
		return badRequest("malformed event", err)
	case err != nil:
		s.metrics.Inc("payment_webhook_refused")
		return badRequest("bad signature", err)
	}
	c.who.org = ev.Org
	c.target = "payment " + truncate(ev.Payment, 100)
	c.detail = "provider " + p.Provider + " event " + truncate(ev.ID, 100) + " " + truncate(ev.Type, 40)
	if err := s.ledger.RecordPayment(c.ctx, p.Provider, ev); err != nil {
		return err
	}
	s.metrics.Inc("payment_webhook_recorded")
	return c.reply(http.StatusOK, apitype.PaymentWebhookResponse{Received: true})
}
