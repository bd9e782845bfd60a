package api

import (
	"context"
	"net/url"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/console"
)

// The info booth's console pages (issue 21): corrections and vouchers,
// each call one request through the API as the signed-in staff member.

// consoleIdemKey holds, in an in-process request's context, the
// Idempotency-Key the request carries (consoleBackend.do).
type consoleIdemKey struct{}

func consoleCorrection(c apitype.Correction) console.Correction {
	return console.Correction{ID: c.ID, Payment: c.Payment, Card: c.Card, Merchant: c.Merchant, Amount: c.Amount,
		NonRefundable: c.NonRefundable, Reason: c.Reason, Status: c.Status, RequestedBy: c.RequestedBy, ApprovedBy: c.ApprovedBy,
		RequestedAt: c.RequestedAt}
}

func (b *consoleBackend) Corrections(ctx context.Context, from string) ([]console.Correction, error) {
	var out apitype.CorrectionList
	if err := b.do(ctx, from, "GET", "/v1/hq/corrections", nil, &out); err != nil {
		return nil, err
	}
	cs := make([]console.Correction, 0, len(out.Corrections))
	for _, c := range out.Corrections {
		cs = append(cs, consoleCorrection(c))
	}
	return cs, nil
}

func (b *consoleBackend) RequestCorrection(ctx context.Context, from, idem string, c console.NewCorrection) (console.Correction, error) {
	if _, ok := parseUUID(c.Payment); !ok {
		return console.Correction{}, console.ErrInvalid
	}
	if _, ok := parseUUID(idem); !ok {
		return console.Correction{}, console.ErrInvalid
	}
	var out apitype.Correction
	err := b.do(context.WithValue(ctx, consoleIdemKey{}, idem), from, "POST", "/v1/hq/corrections",
		apitype.CorrectionRequest{Payment: c.Payment, Amount: c.Amount, Reason: c.Reason}, &out)
	if err != nil {
		return console.Correction{}, err
	}
	return consoleCorrection(out), nil
}

// ApproveCorrection approves a correction; the API refuses the person who
// asked for it (403, as for a role that may not): the page says which it
// was from the correction's record.
func (b *consoleBackend) ApproveCorrection(ctx context.Context, from, id string) error {
	if _, ok := parseUUID(id); !ok {
		return console.ErrNotFound
	}
	err := b.do(ctx, from, "POST", "/v1/hq/corrections/"+url.PathEscape(id)+"/approve", nil, nil)
	if err != console.ErrForbidden {
		return err
	}
	p, _ := staffOf(ctx)
	if p.role != RoleHQ {
		return err
	}
	cs, lerr := b.Corrections(ctx, from)
	if lerr != nil {
		return err
	}
	for _, c := range cs {
		if c.ID == id && c.RequestedBy == p.actor() {
			return console.ErrSamePerson
		}
	}
	return err
}

func (b *consoleBackend) VoucherBatches(ctx context.Context, from string) ([]console.VoucherBatch, error) {
	var out apitype.VoucherBatchList
	if err := b.do(ctx, from, "GET", "/v1/hq/vouchers", nil, &out); err != nil {
		return nil, err
	}
	bs := make([]console.VoucherBatch, 0, len(out.Batches))
	for _, x := range out.Batches {
		bs = append(bs, console.VoucherBatch{ID: x.Batch, Event: x.Event, Label: x.Label, CreatedBy: x.CreatedBy, Amount: x.Amount,
			Count: x.Count, Redeemed: x.Redeemed, Expires: x.Expires, CreatedAt: x.CreatedAt})
	}
	return bs, nil
}

func (b *consoleBackend) IssueVouchers(ctx context.Context, from string, v console.NewVouchers) (console.IssuedVouchers, error) {
	var out apitype.VoucherBatchResponse
	err := b.do(ctx, from, "POST", "/v1/hq/vouchers", apitype.VoucherBatchRequest{Event: v.Event, Amount: v.Amount, Count: v.Count,
		Expires: v.Expires, Label: v.Label}, &out)
	if err != nil {
		return console.IssuedVouchers{}, err
	}
	iss := console.IssuedVouchers{Batch: out.Batch, Amount: out.Amount, Expires: out.Expires, Codes: make([]console.Secret, len(out.Codes))}
	for i, c := range out.Codes {
		iss.Codes[i] = console.NewSecret(c)
		out.Codes[i] = ""
	}
	return iss, nil
}

var _ console.InfoBooth = (*consoleBackend)(nil)
