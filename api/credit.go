package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Corrections of posted payments and vouchers (issue 21).

// requestCorrection corrects a posted payment (body CorrectionRequest), for
// a store at its desk or HQ: posted at once within the organizer's
// threshold, else awaiting a second HQ person's approval.
func (s *Server) requestCorrection(c *call) error {
	var req apitype.CorrectionRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	pay, ok := parseUUID(req.Payment)
	if !ok {
		return badRequest("payment (the payment's transaction id, a UUID), a positive amount and a reason are required", nil)
	}
	if err := input.Amount("amount", req.Amount); err != nil {
		return err
	}
	c.target = "payment " + uuidText(pay)
	cr, err := s.ledger.RequestCorrection(c.ctx, c.who.org, ledger.CorrectionRequest{ID: c.idem, Payment: txid.ID(pay.Bytes),
		Amount: req.Amount, Reason: req.Reason, Actor: c.who.actor()})
	if err != nil {
		return correctionError(err)
	}
	c.detail = fmt.Sprintf("correction %s of %d (%s): %s", cr.ID, cr.Amount, cr.Status, req.Reason)
	return c.reply(http.StatusCreated, correctionRecord(cr))
}

// approveCorrection approves a correction awaiting approval: HQ, another
// person (token) than the one who asked for it.
func (s *Server) approveCorrection(c *call) error {
	id, ok := parseUUID(c.r.PathValue("correction"))
	if !ok {
		return badRequest("the correction id must be a UUID (GET /v1/hq/corrections lists them)", nil)
	}
	c.target = "correction " + uuidText(id)
	cr, err := s.ledger.ApproveCorrection(c.ctx, c.who.org, txid.ID(id.Bytes), c.who.actor())
	if err != nil {
		return correctionError(err)
	}
	c.detail = fmt.Sprintf("approved correction of %d asked by %s", cr.Amount, cr.RequestedBy)
	return c.reply(http.StatusOK, correctionRecord(cr))
}

func (s *Server) listCorrections(c *call) error {
	list, err := s.ledger.Corrections(c.ctx, c.who.org)
	if err != nil {
		return err
	}
	out := apitype.CorrectionList{Corrections: make([]apitype.Correction, 0, len(list))}
	for _, cr := range list {
		out.Corrections = append(out.Corrections, correctionRecord(cr))
	}
	return c.reply(http.StatusOK, out)
}

func correctionError(err error) error {
	switch {
	case errors.Is(err, ledger.ErrExceedsPayment):
		return apiError(http.StatusConflict, "the payment's corrections would exceed it: nothing was changed (GET /v1/hq/corrections lists them)", err)
	case errors.Is(err, ledger.ErrSameActor):
		return apiError(http.StatusForbidden, "a correction is approved by another HQ person than who asked for it: nothing was changed", err)
	case errors.Is(err, ledger.ErrNotPosted):
		return apiError(http.StatusConflict, "the payment is held, not posted: there is nothing to correct (review its alert: GET /v1/hq/alerts)", err)
	case errors.Is(err, ledger.ErrCreditLeft):
		return apiError(http.StatusConflict, "the card's refund was paid out, so no correction can reach it: nothing was changed; pay the cardholder back outside Loopcard and settle it with the merchant by hand", err)
	case errors.Is(err, ledger.ErrExists):
		return apiError(http.StatusConflict, "the correction is posted already: nothing was changed", err)
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return apiError(http.StatusConflict, "the merchant's account holds less than the correction: nothing was changed; settle it with the merchant by hand", err)
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such payment or correction of this organizer", err)
	case errors.Is(err, ledger.ErrInvalid):
		return badRequest("a positive amount and a reason (1 to 500 characters of printable text) are required", err)
	}
	return err
}

func correctionRecord(cr ledger.Correction) apitype.Correction {
	out := apitype.Correction{ID: cr.ID.String(), Payment: cr.Payment.String(), Card: terminaltx.CardHex(cr.Card), Merchant: cr.Merchant,
		Amount: cr.Amount, NonRefundable: cr.NonRefundable, Reason: cr.Reason, Status: cr.Status, RequestedBy: cr.RequestedBy, RequestedAt: cr.RequestedAt,
		ApprovedBy: cr.ApprovedBy, PostedAt: cr.PostedAt}
	if cr.Status == ledger.CorrectionPosted {
		out.Load = cr.ID.String()
	}
	return out
}

// issueVouchers issues a batch of vouchers (body VoucherBatchRequest) and
// answers their codes, this once.
func (s *Server) issueVouchers(c *call) error {
	var req apitype.VoucherBatchRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := input.Amount("amount", req.Amount); err != nil {
		return err
	}
	c.target = "event " + req.Event
	id, codes, err := s.ledger.IssueVouchers(c.ctx, c.who.org, ledger.VoucherBatch{Event: req.Event, Amount: req.Amount, Count: req.Count,
		Expires: req.Expires, Label: req.Label, Actor: c.who.actor()})
	if errors.Is(err, ledger.ErrInvalid) {
		return badRequest(fmt.Sprintf("event, a positive amount, count 1 to %d and an expiry in the future are required", ledger.MaxVoucherBatch), err)
	}
	if err != nil {
		return err
	}
	out := apitype.VoucherBatchResponse{Batch: id.String(), Amount: req.Amount, Expires: req.Expires, Codes: make([]string, len(codes))}
	for i, code := range codes {
		out.Codes[i] = code.Reveal()
	}
	c.detail = fmt.Sprintf("voucher batch %s: %d of %d, expires %s", id, req.Count, req.Amount, req.Expires.UTC().Format(time.RFC3339))
	return c.reply(http.StatusCreated, out)
}

// listVoucherBatches lists the organizer's voucher batches (never their
// codes), newest first.
func (s *Server) listVoucherBatches(c *call) error {
	list, err := s.ledger.VoucherBatches(c.ctx, c.who.org)
	if err != nil {
		return err
	}
	out := apitype.VoucherBatchList{Batches: make([]apitype.VoucherBatchInfo, 0, len(list))}
	for _, b := range list {
		out.Batches = append(out.Batches, apitype.VoucherBatchInfo{Batch: b.ID.String(), Event: b.Event, Amount: b.Amount, Count: b.Count,
			Redeemed: b.Redeemed, Expires: b.Expires, Label: b.Label, CreatedBy: b.CreatedBy, CreatedAt: b.CreatedAt})
	}
	return c.reply(http.StatusOK, out)
}

// storeRedeemVoucher redeems a voucher for a card at a store (body
// VoucherRedeemRequest): a pending load the store writes onto the card.
func (s *Server) storeRedeemVoucher(c *call) error {
	var req apitype.VoucherRedeemRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	card, ok := parseCardID(req.Card)
	if !ok {
		return badRequest("card (hex card id) and code are required", nil)
	}
	return s.redeemVoucher(c, card, c.r.PathValue("store"), req.Code)
}

// cardRedeemVoucher redeems a voucher on the card page for the caller's card.
func (s *Server) cardRedeemVoucher(c *call) error {
	var req apitype.VoucherRedeemRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	return s.redeemVoucher(c, c.who.card, "", req.Code)
}

// errVoucherPublic is the one answer to a code that is unknown, used,
// expired or of another event, so that codes cannot be probed.
const errVoucherPublic = "this voucher code is unknown, used or expired"

func (s *Server) redeemVoucher(c *call, card []byte, store string, code apitype.Secret) error {
	c.target = "card " + terminaltx.CardHex(card)
	vc, err := ledger.ParseVoucherCode(string(code.Bytes()))
	if err != nil {
		return apiError(http.StatusConflict, errVoucherPublic, err)
	}
	load, amount, err := s.ledger.RedeemVoucher(c.ctx, c.who.org, ledger.VoucherRedemption{ID: c.idem, Card: card, Code: vc, Store: store,
		Actor: c.who.actor()})
	if errors.Is(err, ledger.ErrVoucher) {
		return apiError(http.StatusConflict, errVoucherPublic, err)
	}
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("voucher redeemed: load %s of %d", load, amount)
	return c.reply(http.StatusCreated, apitype.MoneyResponse{ID: load.String(), Card: terminaltx.CardHex(card), Amount: amount,
		Load: load.String(), Status: "pending"})
}
