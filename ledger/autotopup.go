package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Auto top-up: a card's rule ("reload Amount when the balance is below
// Threshold, at most DailyLimit a day") and its charges. The payment
// method is the provider's (Loopcard keeps its customer and method ids);
// a charge is recorded here first (TriggerAutoTopUp), runs at the provider
// off-session with the charge's id as idempotency key, and its result
// (RecordAutoTopUp, or the provider's webhook) credits the card as a
// pending load, written at that tap or the next.

// Bounds of a rule, in cents.
const (
	MaxAutoTopUp      = 100000 // one charge, as a checkout's top-up
	MaxAutoTopUpDaily = 500000
)

// AutoTopUpRetry is how long a charge recorded but not answered waits
// before a tap sends it again (with the same idempotency key).
const AutoTopUpRetry = time.Minute

// AutoTopUpRule is a card's auto top-up rule.
type AutoTopUpRule struct {
	Card                          []byte
	Provider                      string
	Amount, Threshold, DailyLimit int64
	// Status: setup (waiting for the provider to save the method), active
	// or disabled (DisabledReason: a charge failed or needed the
	// cardholder, or they turned it off).
	Status         string
	DisabledReason string
	// Customer is the provider's customer id ("" until one is made).
	Customer  string
	HasMethod bool
	UpdatedAt time.Time
}

// AutoTopUpCharge is one charge of a rule.
type AutoTopUpCharge struct {
	ID       txid.ID
	Card     []byte
	Provider string
	Amount   int64
	// Status: triggered (sent or about to be), processing, succeeded,
	// failed or requires_action.
	Status string
	Ref    string // the provider's payment id, once known
	Reason string // why it failed, as the provider said
	At     time.Time
	// Customer and Method are the provider's ids to charge (set by
	// TriggerAutoTopUp only).
	Customer, Method string
}

// Charge statuses a provider answers (RecordAutoTopUp).
const (
	ChargeSucceeded      = "succeeded"
	ChargeProcessing     = "processing"
	ChargeFailed         = "failed"
	ChargeRequiresAction = "requires_action"
)

// ErrNoRule: the card has no auto top-up rule.
var ErrNoRule = errors.New("ledger: no auto top-up rule for this card")

// SetAutoTopUp sets the card's rule, waiting ('setup') for the provider to
// save a payment method (AutoTopUpMethod or a TypeMethodSaved event); a
// customer made before is kept. It returns that customer ("" if none). It
// fails with ErrInvalid for amounts out of bounds, ErrNotFound for a card
// the organizer does not have.
func (l *Ledger) SetAutoTopUp(ctx context.Context, org int64, card []byte, provider string, amount, threshold, dailyLimit int64) (string, error) {
	switch {
	case !terminaltx.ValidID(provider):
		return "", fmt.Errorf("%w: provider %q", ErrInvalid, provider)
	case amount < 100 || amount > MaxAutoTopUp:
		return "", fmt.Errorf("%w: an auto top-up is 1.00 to %d.00", ErrInvalid, MaxAutoTopUp/100)
	case threshold < 0 || threshold > MaxAutoTopUp:
		return "", fmt.Errorf("%w: the threshold is 0.00 to %d.00", ErrInvalid, MaxAutoTopUp/100)
	case dailyLimit < amount || dailyLimit > MaxAutoTopUpDaily:
		return "", fmt.Errorf("%w: the daily limit is at least one top-up and at most %d.00", ErrInvalid, MaxAutoTopUpDaily/100)
	}
	var customer string
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM cards WHERE org_id = $1 AND card_id = $2`, org, card).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: card %s", ErrNotFound, terminaltx.CardHex(card))
		}
		return tx.QueryRow(ctx, `INSERT INTO autotopup_rules (org_id, card_id, provider, amount, threshold, daily_limit, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'setup', $7, $7)
			ON CONFLICT (org_id, card_id) DO UPDATE SET amount = EXCLUDED.amount, threshold = EXCLUDED.threshold,
				daily_limit = EXCLUDED.daily_limit, status = 'setup', disabled_reason = '', method_ref = '', updated_at = EXCLUDED.updated_at,
				customer_ref = CASE WHEN autotopup_rules.provider = EXCLUDED.provider THEN autotopup_rules.customer_ref ELSE '' END,
				provider = EXCLUDED.provider
			RETURNING customer_ref`, org, card, provider, amount, threshold, dailyLimit, l.now()).Scan(&customer)
	})
	if err != nil {
		return "", fmt.Errorf("ledger: set auto top-up: %w", err)
	}
	return customer, nil
}

// AutoTopUpCustomer records the provider's customer made for the card's
// rule.
func (l *Ledger) AutoTopUpCustomer(ctx context.Context, org int64, card []byte, customer string) error {
	if err := input.Text("customer", customer, 255); err != nil || customer == "" {
		return fmt.Errorf("%w: customer id", ErrInvalid)
	}
	tag, err := l.pool.Exec(ctx, `UPDATE autotopup_rules SET customer_ref = $3 WHERE org_id = $1 AND card_id = $2`, org, card, customer)
	if err != nil {
		return fmt.Errorf("ledger: auto top-up customer: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoRule
	}
	return nil
}

// DisableAutoTopUp turns the card's rule off, for reason.
func (l *Ledger) DisableAutoTopUp(ctx context.Context, org int64, card []byte, reason string) error {
	tag, err := l.pool.Exec(ctx, `UPDATE autotopup_rules SET status = 'disabled', disabled_reason = $3, updated_at = $4
		WHERE org_id = $1 AND card_id = $2`, org, card, truncateRunes(reason, 200), l.now())
	if err != nil {
		return fmt.Errorf("ledger: disable auto top-up: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoRule
	}
	return nil
}

// ForgetAutoTopUp turns the card's rule off and forgets the provider's
// customer and method ids (the profile that set it was erased). A card
// without a rule is no error.
func (l *Ledger) ForgetAutoTopUp(ctx context.Context, org int64, card []byte) error {
	if _, err := l.pool.Exec(ctx, `UPDATE autotopup_rules SET status = 'disabled', disabled_reason = 'profile erased',
			customer_ref = '', method_ref = '', updated_at = $3
		WHERE org_id = $1 AND card_id = $2`, org, card, l.now()); err != nil {
		return fmt.Errorf("ledger: forget auto top-up: %w", err)
	}
	return nil
}

// AutoTopUp returns the card's rule, or ErrNoRule.
func (l *Ledger) AutoTopUp(ctx context.Context, org int64, card []byte) (AutoTopUpRule, error) {
	r := AutoTopUpRule{Card: card}
	err := l.pool.QueryRow(ctx, `SELECT provider, amount, threshold, daily_limit, status, disabled_reason, customer_ref, method_ref <> '', updated_at
		FROM autotopup_rules WHERE org_id = $1 AND card_id = $2`, org, card).
		Scan(&r.Provider, &r.Amount, &r.Threshold, &r.DailyLimit, &r.Status, &r.DisabledReason, &r.Customer, &r.HasMethod, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return AutoTopUpRule{}, ErrNoRule
	}
	if err != nil {
		return AutoTopUpRule{}, fmt.Errorf("ledger: auto top-up: %w", err)
	}
	return r, nil
}

// AutoTopUpCharges lists the card's charges, newest first (at most 50).
func (l *Ledger) AutoTopUpCharges(ctx context.Context, org int64, card []byte) ([]AutoTopUpCharge, error) {
	rows, err := l.pool.Query(ctx, `SELECT charge_id, provider, amount, status, provider_ref, reason, triggered_at
		FROM autotopup_charges WHERE org_id = $1 AND card_id = $2 ORDER BY triggered_at DESC, charge_id DESC LIMIT 50`, org, card)
	if err != nil {
		return nil, fmt.Errorf("ledger: auto top-up charges: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AutoTopUpCharge, error) {
		c := AutoTopUpCharge{Card: card}
		err := r.Scan(&c.ID, &c.Provider, &c.Amount, &c.Status, &c.Ref, &c.Reason, &c.At)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: auto top-up charges: %w", err)
	}
	return out, nil
}

// TriggerAutoTopUp decides, in one transaction under the rule's lock,
// whether a tap of the card starts a charge, and records it: the rule is
// active, the card is active, its credit with its pending loads is below
// the threshold, no charge of it is open, and today's charges (UTC, not
// failed) leave room under the daily limit for one more. It returns the
// charge to send to the provider, or nil. A charge recorded but not
// answered for AutoTopUpRetry is returned again, to be sent again with
// the same idempotency key (the provider charges once).
func (l *Ledger) TriggerAutoTopUp(ctx context.Context, org int64, card []byte) (*AutoTopUpCharge, error) {
	var out *AutoTopUpCharge
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		out = nil
		var r AutoTopUpRule
		var method string
		err := tx.QueryRow(ctx, `SELECT provider, amount, threshold, daily_limit, status, customer_ref, method_ref
			FROM autotopup_rules WHERE org_id = $1 AND card_id = $2 FOR UPDATE`, org, card).
			Scan(&r.Provider, &r.Amount, &r.Threshold, &r.DailyLimit, &r.Status, &r.Customer, &method)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if r.Status != "active" || method == "" {
			return nil
		}
		now := l.now()
		var (
			open     pgtype.UUID
			openSt   string
			openAt   time.Time
			openAmt  int64
			openTrig time.Time
		)
		err = tx.QueryRow(ctx, `SELECT charge_id, status, attempted_at, amount, triggered_at FROM autotopup_charges
			WHERE org_id = $1 AND card_id = $2 AND status IN ('triggered', 'processing')`, org, card).Scan(&open, &openSt, &openAt, &openAmt, &openTrig)
		switch {
		case err == nil:
			if openSt != "triggered" || now.Sub(openAt) < AutoTopUpRetry {
				return nil // running, or waiting for the provider
			}
			if _, err := tx.Exec(ctx, `UPDATE autotopup_charges SET attempted_at = $3 WHERE org_id = $1 AND charge_id = $2`, org, open, now); err != nil {
				return err
			}
			out = &AutoTopUpCharge{ID: txid.ID(open.Bytes), Card: card, Provider: r.Provider, Amount: openAmt, Status: "triggered",
				At: openTrig, Customer: r.Customer, Method: method}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var (
			status string
			credit int64
		)
		err = tx.QueryRow(ctx, `SELECT c.status,
				coalesce((SELECT side * balance FROM accounts WHERE org_id = $1 AND kind = 'card' AND ref = $3), 0)
				+ coalesce((SELECT sum(amount) FROM topups WHERE org_id = $1 AND card_id = $2 AND status = 'pending'), 0)
			FROM cards c WHERE c.org_id = $1 AND c.card_id = $2`, org, card, terminaltx.CardHex(card)).Scan(&status, &credit)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if status != "active" || credit >= r.Threshold {
			return nil
		}
		day := now.UTC().Truncate(24 * time.Hour)
		var today int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0)::bigint FROM autotopup_charges
			WHERE org_id = $1 AND card_id = $2 AND day = $3 AND status IN ('triggered', 'processing', 'succeeded')`,
			org, card, pgtype.Date{Time: day, Valid: true}).Scan(&today); err != nil {
			return err
		}
		if today+r.Amount > r.DailyLimit {
			l.log.Info("ledger: auto top-up over the daily limit", "org", org, "card", terminaltx.CardHex(card), "today", today, "limit", r.DailyLimit)
			return nil
		}
		id := l.newID()
		if _, err := tx.Exec(ctx, `INSERT INTO autotopup_charges (org_id, charge_id, card_id, provider, amount, day, status, triggered_at, attempted_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'triggered', $7, $7)`, org, pgtype.UUID{Bytes: id, Valid: true}, card, r.Provider, r.Amount,
			pgtype.Date{Time: day, Valid: true}, now); err != nil {
			return err
		}
		out = &AutoTopUpCharge{ID: id, Card: card, Provider: r.Provider, Amount: r.Amount, Status: "triggered", At: now,
			Customer: r.Customer, Method: method}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: trigger auto top-up: %w", err)
	}
	return out, nil
}

// RecordAutoTopUp records the provider's answer to a charge: status is
// one of the Charge constants, ref the provider's payment id, reason what
// it said of a failure. A succeeded charge becomes a pending load of the
// card (as a succeeded payment does, once whichever of this and the
// provider's webhook comes first); failed and requires_action disable the
// rule. A charge that succeeded stays so.
func (l *Ledger) RecordAutoTopUp(ctx context.Context, org int64, id txid.ID, status, ref, reason string) error {
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		c, err := l.autoTopUpState(ctx, tx, org, id, status, ref, reason)
		if err != nil || c == nil || status != ChargeSucceeded {
			return err
		}
		found, err := lockProviderPayment(ctx, tx, org, c.Provider, ref)
		if err != nil {
			return err
		}
		e := payment.Event{ID: "autotopup-" + id.String(), Type: payment.TypePaymentSucceeded, Payment: ref, Org: org,
			Card: terminaltx.CardHex(c.Card), Amount: c.Amount, Currency: "EUR"}
		return l.paymentArrived(ctx, tx, c.Provider, e, c.Card, "", found)
	})
	if err != nil {
		return fmt.Errorf("ledger: record auto top-up: %w", err)
	}
	return nil
}

// autoTopUpState moves a charge to status (and its rule to disabled for a
// failure); nil when there is no such charge.
func (l *Ledger) autoTopUpState(ctx context.Context, tx pgx.Tx, org int64, id txid.ID, status, ref, reason string) (*AutoTopUpCharge, error) {
	switch status {
	case ChargeSucceeded, ChargeProcessing, ChargeFailed, ChargeRequiresAction:
	default:
		return nil, fmt.Errorf("%w: charge status %q", ErrInvalid, status)
	}
	if (status == ChargeSucceeded || status == ChargeProcessing) && ref == "" {
		return nil, fmt.Errorf("%w: a charge that went through needs the provider's payment id", ErrInvalid)
	}
	c := AutoTopUpCharge{ID: id}
	err := tx.QueryRow(ctx, `SELECT card_id, provider, amount, status, provider_ref FROM autotopup_charges
		WHERE org_id = $1 AND charge_id = $2 FOR UPDATE`, org, pgtype.UUID{Bytes: id, Valid: true}).
		Scan(&c.Card, &c.Provider, &c.Amount, &c.Status, &c.Ref)
	if errors.Is(err, pgx.ErrNoRows) {
		l.log.Warn("ledger: answer to an unknown auto top-up charge", "org", org, "charge", id.String())
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.Status == ChargeSucceeded || c.Status == status || (c.Status != "triggered" && status == ChargeProcessing) {
		return &c, nil // known already, or an older notice
	}
	if ref == "" {
		ref = c.Ref
	}
	if _, err := tx.Exec(ctx, `UPDATE autotopup_charges SET status = $3, provider_ref = $4, reason = $5,
			finished_at = CASE WHEN $3 = 'processing' THEN NULL ELSE $6::timestamptz END
		WHERE org_id = $1 AND charge_id = $2`, org, pgtype.UUID{Bytes: id, Valid: true}, status, truncateRunes(ref, 255),
		truncateRunes(reason, 200), l.now()); err != nil {
		return nil, err
	}
	if status == ChargeFailed || status == ChargeRequiresAction {
		why := "charge failed"
		if status == ChargeRequiresAction {
			why = "charge needed the cardholder (authentication)"
		}
		if reason != "" {
			why += ": " + truncateRunes(reason, 100)
		}
		if _, err := tx.Exec(ctx, `UPDATE autotopup_rules SET status = 'disabled', disabled_reason = $3, updated_at = $4
			WHERE org_id = $1 AND card_id = $2`, org, c.Card, why, l.now()); err != nil {
			return nil, err
		}
		l.log.Warn("ledger: auto top-up charge failed, rule disabled", "org", org, "card", terminaltx.CardHex(c.Card),
			"charge", id.String(), "status", status)
	}
	c.Status = status
	return &c, nil
}

// autoTopUpEvent applies a provider's webhook about an auto top-up charge
// to the charge (RecordPayment credits the payment itself).
func (l *Ledger) autoTopUpEvent(ctx context.Context, tx pgx.Tx, org int64, e payment.Event) error {
	id, err := txid.Parse(e.AutoTopUp)
	if err != nil || org <= 0 {
		l.log.Warn("ledger: auto top-up event names no charge", "payment", truncateRunes(e.Payment, 100))
		return nil
	}
	var status string
	switch e.Type {
	case payment.TypePaymentSucceeded:
		status = ChargeSucceeded
	case payment.TypePaymentProcessing:
		status = ChargeProcessing
	case payment.TypePaymentFailed, payment.TypePaymentExpired:
		status = ChargeFailed
		if e.Status == ChargeRequiresAction {
			status = ChargeRequiresAction
		}
	default:
		return nil
	}
	_, err = l.autoTopUpState(ctx, tx, org, id, status, e.Payment, e.Status)
	return err
}

// autoTopUpMethodSaved activates the card's rule waiting for its method.
func (l *Ledger) autoTopUpMethodSaved(ctx context.Context, tx pgx.Tx, provider string, e payment.Event) error {
	card, err := terminaltx.ParseCardHex(e.Card)
	if err != nil {
		return nil
	}
	tag, err := tx.Exec(ctx, `UPDATE autotopup_rules SET customer_ref = $4, method_ref = $5, status = 'active', disabled_reason = '', updated_at = $6
		WHERE org_id = $1 AND card_id = $2 AND provider = $3 AND status <> 'disabled'`, e.Org, card, provider, e.Customer, e.Method, l.now())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		l.log.Warn("ledger: payment method saved for a card without an auto top-up rule waiting", "org", e.Org, "card", e.Card)
	}
	return nil
}
