package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/ledger/txid"
)

// planPattern is a payout plan as a dry run answers it.
var planPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// bicPattern is a BIC (ISO 9362): 8 or 11 characters.
var bicPattern = regexp.MustCompile(`^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$`)

// runPayout runs the payout of the refunds that are due, by SEPA, as
// `loopcard ledger payout` does: a dry run first, then the approval of its
// plan, which books the run and keeps its pain.001 file sealed.
func (s *Server) runPayout(c *call) error {
	var req apitype.PayoutRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	name := strings.TrimSpace(req.DebtorName)
	if err := input.Name("debtor_name", name); err != nil {
		return err
	}
	iban, err := sepa.NormalizeIBAN(req.DebtorIBAN)
	if err != nil {
		return badRequest("debtor_iban is not a valid IBAN", nil)
	}
	bic := strings.ToUpper(strings.TrimSpace(req.DebtorBIC))
	if bic != "" && !bicPattern.MatchString(bic) {
		return badRequest("debtor_bic is not a BIC (8 or 11 letters and digits)", nil)
	}
	if req.DryRun == (req.Approve != "") {
		return badRequest("either dry_run, or approve with the plan a dry run answered", nil)
	}
	if req.Approve != "" && !planPattern.MatchString(req.Approve) {
		return badRequest("approve is a plan a dry run answered (24 hex digits)", nil)
	}
	p, err := s.ledger.RunPayout(c.ctx, c.who.org, sepa.Party{Name: name, IBAN: iban, BIC: bic}, s.now().AddDate(0, 0, 1),
		ledger.PayoutOptions{DryRun: req.DryRun, Approve: req.Approve})
	switch {
	case errors.Is(err, ledger.ErrNothingToPay) && req.DryRun:
		// Nothing to review: the answer says how many wait.
		c.detail = fmt.Sprintf("dry run: nothing due, %d waiting", p.Waiting)
		return c.reply(http.StatusOK, apitype.PayoutRun{Waiting: p.Waiting, NothingDue: p.NothingDue, Lines: []apitype.PayoutLine{}})
	case errors.Is(err, ledger.ErrNothingToPay):
		return apiError(http.StatusConflict, fmt.Sprintf("no refund is due: %d wait for their event's terminals to upload", p.Waiting), err)
	case errors.Is(err, ledger.ErrPlanChanged):
		return apiError(http.StatusConflict, "the payout run changed since it was reviewed: review it again (dry_run)", err)
	case err != nil:
		return err
	}
	out := apitype.PayoutRun{Booked: !req.DryRun, Plan: p.Plan, Count: p.Count, Total: p.Total, SEPATotal: p.SEPATotal,
		Waiting: p.Waiting, NothingDue: p.NothingDue, Lines: make([]apitype.PayoutLine, 0, len(p.Lines))}
	for _, ln := range p.Lines {
		out.Lines = append(out.Lines, apitype.PayoutLine{Refund: ln.Refund.String(), Card: ln.Card, Amount: ln.Amount, SEPA: ln.SEPA})
	}
	if req.DryRun {
		c.detail = fmt.Sprintf("dry run: %d refunds, %d cents, plan %s", p.Count, p.Total, p.Plan)
		return c.reply(http.StatusOK, out)
	}
	out.ID = p.ID.String()
	c.target = "payout " + out.ID
	c.detail = fmt.Sprintf("booked: %d refunds, %d cents, plan %s", p.Count, p.Total, p.Plan)
	return c.reply(http.StatusCreated, out)
}

// listPayouts lists the booked payout runs.
func (s *Server) listPayouts(c *call) error {
	ps, err := s.ledger.Payouts(c.ctx, c.who.org, 1000)
	if err != nil {
		return err
	}
	out := apitype.PayoutList{Payouts: make([]apitype.PayoutRecord, 0, len(ps))}
	for _, p := range ps {
		out.Payouts = append(out.Payouts, apitype.PayoutRecord{ID: p.ID.String(), At: p.At, Count: p.Count, Total: p.Total,
			ProviderTotal: p.ProviderTotal, File: p.File})
	}
	return c.reply(http.StatusOK, out)
}

// payoutFile downloads a booked run's pain.001 file again.
func (s *Server) payoutFile(c *call) error {
	id, ok := parseUUID(c.r.PathValue("payout"))
	if !ok {
		return badRequest("the payout id must be a UUID (GET /v1/hq/payouts lists them)", nil)
	}
	c.target = "payout " + uuidText(id)
	xml, err := s.ledger.PayoutFile(c.ctx, c.who.org, txid.ID(id.Bytes))
	if errors.Is(err, ledger.ErrNotFound) {
		return apiError(http.StatusNotFound, "no payout file: GET /v1/hq/payouts lists the runs that kept one", err)
	}
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("pain.001 file of %d bytes", len(xml))
	c.w.Header().Set("Content-Type", "application/xml")
	c.w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="payout-%s.xml"`, uuidText(id)))
	c.status = http.StatusOK
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(xml)
	return nil
}
