package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Corrections: a store or HQ corrects a posted payment (a bar overcharged
// someone). The correction is charged back to the payment's merchant and
// credited to its card as a pending load (merchant → pending loads), which
// a store or station writes onto the card at its next write (LoadPending).
// Above the organizer's threshold (SetCorrectionThreshold) it waits for a
// second HQ person to approve it (ApproveCorrection). The corrections of a
// payment never add up to more than the payment.

// Errors of corrections.
var (
	// ErrExceedsPayment: the correction, with those of the payment before
	// it, would give back more than the payment.
	ErrExceedsPayment = errors.New("ledger: corrections would exceed the payment")
	// ErrSameActor: the person who asked for a correction cannot approve it.
	ErrSameActor = errors.New("ledger: a correction is approved by someone other than who asked for it")
	// ErrNotPosted: the payment is held, not posted: there is nothing to correct.
	ErrNotPosted = errors.New("ledger: the payment is not posted")
	// ErrCreditLeft: the card's credit left the ledger (its refund was
	// paid out, or it was replaced by a card whose refund was): a
	// correction could never be loaded onto it, so none is posted.
	ErrCreditLeft = errors.New("ledger: the card's refund was paid out")
)

// Correction states.
const (
	CorrectionAwaitingApproval = "awaiting_approval"
	CorrectionPosted           = "posted"
)

// DefaultCorrectionApprovalAbove is the threshold of a new organizer, in
// cents: larger corrections need a second HQ person.
const DefaultCorrectionApprovalAbove = 5000

// CorrectionRequest asks for a correction of a posted payment.
type CorrectionRequest struct {
	// ID makes the request idempotent (an API idempotency key); zero: a
	// new id. It is also the id of the load that credits the card.
	ID      txid.ID
	Payment txid.ID // the terminal transaction corrected
	Amount  int64
	Reason  string
	Actor   string // who asks: an API principal or a CLI operator
}

// Correction is a correction as the ledger records it.
type Correction struct {
	ID       txid.ID
	Payment  txid.ID
	Card     []byte
	Merchant string
	Amount   int64
	// NonRefundable is the part of Amount that gives back non-refundable
	// credit (vouchers) the payment spent: it reaches the card as such.
	NonRefundable int64
	Reason        string
	Status        string // CorrectionAwaitingApproval or CorrectionPosted
	RequestedBy   string
	RequestedAt   time.Time
	ApprovedBy    string // "" unless it needed approval
	PostedAt      *time.Time
}

// SetCorrectionThreshold sets the amount above which a correction needs a
// second HQ person's approval (0: every correction does).
func (l *Ledger) SetCorrectionThreshold(ctx context.Context, org int64, above int64) error {
	if err := input.AmountOrZero("above", above); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	tag, err := l.pool.Exec(ctx, `UPDATE organizers SET correction_approval_above = $2 WHERE org_id = $1`, org, above)
	if err != nil {
		return fmt.Errorf("ledger: correction threshold: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: organizer %d", ErrNotFound, org)
	}
	return nil
}

// CorrectionThreshold returns the amount above which a correction needs
// approval.
func (l *Ledger) CorrectionThreshold(ctx context.Context, org int64) (int64, error) {
	var above int64
	err := l.pool.QueryRow(ctx, `SELECT correction_approval_above FROM organizers WHERE org_id = $1`, org).Scan(&above)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: organizer %d", ErrNotFound, org)
	}
	return above, err
}

// RequestCorrection records a correction of a posted payment and posts it
// at once when it is within the organizer's threshold; above it, it waits
// for ApproveCorrection. Repeating a request with the same ID and content
// returns the correction as it stands. It fails with ErrInvalid for a bad
// amount, reason or actor, ErrNotFound for an unknown payment, ErrNotPosted
// for a held one, ErrExceedsPayment when the payment's corrections would
// exceed it, ErrConflict for an ID used with other content, and
// ErrInsufficientFunds when the merchant's account holds less than the
// correction.
func (l *Ledger) RequestCorrection(ctx context.Context, org int64, req CorrectionRequest) (Correction, error) {
	return l.requestCorrection(ctx, org, req, "")
}

// requestCorrection is RequestCorrection; with voidBy, a terminal's id, it
// is that terminal's void of its own payment (see VoidPayment): the
// payment must be the card's last write, within VoidWindow, and the
// correction is posted without approval.
func (l *Ledger) requestCorrection(ctx context.Context, org int64, req CorrectionRequest, voidBy string) (Correction, error) {
	if err := errors.Join(input.Amount("amount", req.Amount), input.Text("actor", req.Actor, 200)); err != nil {
		return Correction{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := checkReason(req.Reason); err != nil {
		return Correction{}, err
	}
	if req.ID == (txid.ID{}) {
		req.ID = l.newID()
	}
	var out Correction
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var card []byte
		var merchant, status, terminal string
		var paid, cardSeq, spentNR int64
		var merchantAcct *int64
		var at time.Time
		err := tx.QueryRow(ctx, `SELECT card_id, merchant_id, amount, status, merchant_account, terminal_id, card_seq, at,
				coalesce(nonrefundable_spent, 0)
			FROM terminal_txs WHERE org_id = $1 AND txn_id = $2`, org, pgtype.UUID{Bytes: req.Payment, Valid: true}).
			Scan(&card, &merchant, &paid, &status, &merchantAcct, &terminal, &cardSeq, &at, &spentNR)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && voidBy != "" && terminal != voidBy) {
			return fmt.Errorf("%w: payment %s", ErrNotFound, req.Payment)
		}
		if err != nil {
			return err
		}
		if status != "posted" || merchantAcct == nil {
			return fmt.Errorf("%w: payment %s", ErrNotPosted, req.Payment)
		}
		if voidBy != "" {
			req.Amount = paid
		}
		// The card's lock keeps the corrections of its payments in turn.
		st, err := lockCard(ctx, tx, org, card)
		if err != nil {
			return err
		}
		if c, err := correction(ctx, tx, org, req.ID); err == nil {
			if c.Payment != req.Payment || c.Amount != req.Amount || c.Reason != req.Reason {
				return fmt.Errorf("%w: correction %s", ErrConflict, req.ID)
			}
			out = c
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		var before, above int64
		if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT sum(amount) FROM corrections WHERE org_id = $1 AND payment_id = $2), 0)::bigint,
				(SELECT correction_approval_above FROM organizers WHERE org_id = $1)`,
			org, pgtype.UUID{Bytes: req.Payment, Valid: true}).Scan(&before, &above); err != nil {
			return err
		}
		if before+req.Amount > paid {
			return fmt.Errorf("%w: payment %s of %d has %d corrected, %d more asked", ErrExceedsPayment, req.Payment, paid, before, req.Amount)
		}
		if voidBy != "" {
			switch {
			case st.chainSeq != cardSeq:
				return fmt.Errorf("%w: payment %s", ErrNotLastPayment, req.Payment)
			case l.now().Sub(at) > VoidWindow:
				return fmt.Errorf("%w: payment %s was taken at %s", ErrVoidWindow, req.Payment, at.UTC().Format(time.RFC3339))
			}
			above = input.MaxAmount // a void needs no approval
		}
		out = Correction{ID: req.ID, Payment: req.Payment, Card: card, Merchant: merchant, Amount: req.Amount,
			NonRefundable: correctionNonRefundable(paid, spentNR, before, req.Amount), Reason: req.Reason,
			Status: CorrectionAwaitingApproval, RequestedBy: req.Actor, RequestedAt: l.now()}
		if _, err := tx.Exec(ctx, `INSERT INTO corrections (org_id, correction_id, payment_id, card_id, merchant_id, amount, nonrefundable,
				reason, requested_by, requested_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			org, pgtype.UUID{Bytes: req.ID, Valid: true}, pgtype.UUID{Bytes: req.Payment, Valid: true}, card, merchant,
			req.Amount, out.NonRefundable, req.Reason, req.Actor, out.RequestedAt, out.Status); err != nil {
			return err
		}
		if req.Amount > above {
			return nil
		}
		return l.postCorrection(ctx, tx, org, st, *merchantAcct, &out, "")
	})
	if err != nil {
		return Correction{}, fmt.Errorf("ledger: correction: %w", dbError(err))
	}
	return out, nil
}

// ApproveCorrection approves and posts a correction that awaits approval.
// It fails with ErrNotFound for an unknown correction, ErrExists for one
// already posted, ErrSameActor when actor asked for it, and
// ErrInsufficientFunds when the merchant's account holds less than the
// correction.
func (l *Ledger) ApproveCorrection(ctx context.Context, org int64, id txid.ID, actor string) (Correction, error) {
	if err := input.Text("actor", actor, 200); err != nil || actor == "" {
		return Correction{}, fmt.Errorf("%w: an approver is required", ErrInvalid)
	}
	var out Correction
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		c, err := correction(ctx, tx, org, id)
		if err != nil {
			return err
		}
		st, err := lockCard(ctx, tx, org, c.Card)
		if err != nil {
			return err
		}
		// Read again under the card's lock.
		if c, err = correction(ctx, tx, org, id); err != nil {
			return err
		}
		switch {
		case c.Status == CorrectionPosted:
			return fmt.Errorf("%w: correction %s is posted", ErrExists, id)
		case c.RequestedBy == actor:
			return fmt.Errorf("%w: %s asked for correction %s", ErrSameActor, actor, id)
		}
		var merchantAcct int64
		if err := tx.QueryRow(ctx, `SELECT account_id FROM merchants WHERE org_id = $1 AND merchant_id = $2`, org, c.Merchant).Scan(&merchantAcct); err != nil {
			return fmt.Errorf("ledger: merchant %s: %w", c.Merchant, err)
		}
		out = c
		return l.postCorrection(ctx, tx, org, st, merchantAcct, &out, actor)
	})
	if err != nil {
		return Correction{}, fmt.Errorf("ledger: approve correction: %w", dbError(err))
	}
	return out, nil
}

// postCorrection charges a correction back to the merchant and makes it a
// pending load of the locked card, or of the card that replaced it (whose
// pending loads a replacement moved). It fails with ErrCreditLeft, posting
// nothing, when that card's refund was paid out: its pending loads would
// never be written onto a card nor paid (RequestCorrection then records
// nothing, ApproveCorrection leaves the correction awaiting approval).
func (l *Ledger) postCorrection(ctx context.Context, tx pgx.Tx, org int64, st *cardState, merchantAcct int64, c *Correction, approver string) error {
	now := l.now()
	st, err := correctionCard(ctx, tx, org, st)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE corrections SET status = 'posted', posted_at = $3, approved_by = $4
		WHERE org_id = $1 AND correction_id = $2`, org, pgtype.UUID{Bytes: c.ID, Valid: true}, now, approver); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, amount, nonrefundable, status, created_at)
		VALUES ($1, $2, $3, 'correction', $4, $5, 'pending', $6)`, org, pgtype.UUID{Bytes: c.ID, Valid: true}, st.card, c.Amount,
		c.NonRefundable, now); err != nil {
		return err
	}
	pending, err := accountID(ctx, tx, org, PendingLoads, "")
	if err != nil {
		return err
	}
	e := entry{id: l.newID(), kind: "correction", event: st.event, ref: c.Payment.String(), at: now,
		postings: transfer(merchantAcct, pending, c.Amount)}
	if c.NonRefundable > 0 {
		// The non-refundable credit given back is no longer spent at the
		// merchant: it returns to the organizer's, from which the load
		// puts it back in the card's part (LoadPending).
		org0, err := accountID(ctx, tx, org, NonRefundableCredit, "")
		if err != nil {
			return err
		}
		spentAt, err := accountID(ctx, tx, org, NonRefundableCredit, c.Merchant)
		if errors.Is(err, ErrNotFound) {
			spentAt = org0
		} else if err != nil {
			return err
		}
		if spentAt != org0 {
			e.postings = append(e.postings, posting{spentAt, c.NonRefundable}, posting{org0, -c.NonRefundable})
		}
	}
	if err := writeEntries(ctx, tx, org, []entry{e}, nil); err != nil {
		return err
	}
	c.Status, c.ApprovedBy, c.PostedAt = CorrectionPosted, approver, &now
	l.log.Info("ledger: correction posted", "org", org, "correction", c.ID.String(), "payment", c.Payment.String(),
		"merchant", c.Merchant, "amount", c.Amount, "card", terminaltx.CardHex(st.card))
	return nil
}

// correctionNonRefundable returns the part of a correction of amount that
// gives back non-refundable credit, for a payment of paid that spent spent
// of it and has corrections of before already. A correction leaves the
// card as if the payment had been smaller: as the payment spent the
// non-refundable part first, a smaller one would have spent as much of it
// up to its own amount, so the corrections give back the refundable part
// first and the non-refundable part only beyond it.
func correctionNonRefundable(paid, spent, before, amount int64) int64 {
	refundable := paid - spent
	return max(0, before+amount-refundable) - max(0, before-refundable)
}

// maxReplacements bounds the chain of replacements a correction follows.
const maxReplacements = 16

// correctionCard returns the card a correction of the locked card's
// payment is loaded onto: the card itself, or, when it was replaced, the
// card that replaced it (locked too, in turn). It fails with
// ErrCreditLeft when that card's refund was paid out.
func correctionCard(ctx context.Context, tx pgx.Tx, org int64, st *cardState) (*cardState, error) {
	for range maxReplacements {
		var status string
		var paidOut bool
		var next []byte
		if err := tx.QueryRow(ctx, `SELECT c.status, EXISTS (SELECT 1 FROM refunds r
				WHERE r.org_id = c.org_id AND r.card_id = c.card_id AND (r.amount IS NOT NULL OR r.status <> 'requested')),
				(SELECT p.new_card FROM card_replacements p WHERE p.org_id = c.org_id AND p.old_card = c.card_id)
			FROM cards c WHERE c.org_id = $1 AND c.card_id = $2`, org, st.card).Scan(&status, &paidOut, &next); err != nil {
			return nil, err
		}
		switch {
		case status == "refunded" && paidOut:
			return nil, fmt.Errorf("%w: card %s", ErrCreditLeft, terminaltx.CardHex(st.card))
		case status != "replaced" || next == nil:
			return st, nil
		}
		var err error
		if st, err = lockCard(ctx, tx, org, next); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: card %s: more than %d replacements", ErrCreditLeft, terminaltx.CardHex(st.card), maxReplacements)
}

const correctionColumns = `correction_id, payment_id, card_id, merchant_id, amount, nonrefundable, reason, status, requested_by, requested_at, approved_by, posted_at`

func scanCorrection(row pgx.Row) (Correction, error) {
	var c Correction
	var id, pay pgtype.UUID
	err := row.Scan(&id, &pay, &c.Card, &c.Merchant, &c.Amount, &c.NonRefundable, &c.Reason, &c.Status, &c.RequestedBy, &c.RequestedAt, &c.ApprovedBy, &c.PostedAt)
	c.ID, c.Payment = txid.ID(id.Bytes), txid.ID(pay.Bytes)
	return c, err
}

func correction(ctx context.Context, tx pgx.Tx, org int64, id txid.ID) (Correction, error) {
	c, err := scanCorrection(tx.QueryRow(ctx, `SELECT `+correctionColumns+` FROM corrections WHERE org_id = $1 AND correction_id = $2`,
		org, pgtype.UUID{Bytes: id, Valid: true}))
	if errors.Is(err, pgx.ErrNoRows) {
		return Correction{}, fmt.Errorf("%w: correction %s", ErrNotFound, id)
	}
	return c, err
}

// Corrections lists the organizer's corrections, those awaiting approval
// first, then the newest.
func (l *Ledger) Corrections(ctx context.Context, org int64) ([]Correction, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+correctionColumns+` FROM corrections WHERE org_id = $1
		ORDER BY status = 'posted', requested_at DESC LIMIT 1000`, org)
	if err != nil {
		return nil, fmt.Errorf("ledger: corrections: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Correction, error) { return scanCorrection(r) })
	if err != nil {
		return nil, fmt.Errorf("ledger: corrections: %w", err)
	}
	return out, nil
}
