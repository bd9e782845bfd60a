package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Payments from providers: verified webhook events credit a card or are
// parked as unmatched.

// RecordPayment records a payment provider's verified event (see package
// payment). A succeeded payment becomes a pending load of its card:
// provider clearing → pending loads; it waits there until a station or an
// online terminal writes it onto the card (LoadPending). Each event id of a
// provider is recorded once; other event types are only noted.
//
// A succeeded payment the ledger cannot match to a card of the organizer
// (unknown or unreadable card reference, a currency other than EUR) is
// parked: recorded in UnmatchedPayments with a warning for HQ, and
// RecordPayment returns nil so that the provider stops delivering it.
func (l *Ledger) RecordPayment(ctx context.Context, provider string, e payment.Event) error {
	org := e.Org
	if !terminaltx.ValidID(provider) {
		return fmt.Errorf("%w: provider %q", ErrInvalid, provider)
	}
	var (
		card   []byte
		reason string
	)
	if e.Type == payment.TypePaymentSucceeded {
		var err error
		switch card, err = terminaltx.ParseCardHex(e.Card); {
		case err != nil:
			reason = ReasonBadCard
		case e.Currency != "" && e.Currency != "EUR" && e.Currency != "eur":
			reason = ReasonCurrency
		}
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO provider_events (org_id, provider, event_id) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, org, provider, e.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 || e.Type != payment.TypePaymentSucceeded {
			return nil // seen before, or nothing to do
		}
		var event string
		if reason == "" {
			err := tx.QueryRow(ctx, `SELECT event_id FROM cards WHERE org_id = $1 AND card_id = $2`, org, card).Scan(&event)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				reason = ReasonUnknownCard
			case err != nil:
				return err
			}
		}
		if reason != "" {
			return l.parkPayment(ctx, tx, provider, e, reason)
		}
		id := l.newID()
		tag, err = tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, provider, provider_ref, amount, status)
			VALUES ($1, $2, $3, 'online', $4, $5, $6, 'pending') ON CONFLICT DO NOTHING`,
			org, pgtype.UUID{Bytes: id, Valid: true}, card, provider, e.Payment, e.Amount)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // the same payment in another event
		}
		clearing, err := ensureAccount(ctx, tx, org, ProviderClearing, provider)
		if err != nil {
			return err
		}
		pending, err := accountID(ctx, tx, org, PendingLoads, "")
		if err != nil {
			return err
		}
		en := entry{id: id, kind: "online_topup", event: event, ref: provider, at: l.now(), postings: transfer(clearing, pending, e.Amount)}
		return writeEntries(ctx, tx, org, []entry{en}, nil)
	})
	if err != nil {
		return fmt.Errorf("ledger: record payment: %w", err)
	}
	return nil
}

// Reasons a provider payment is parked as unmatched.
const (
	ReasonBadCard  = "bad_card" // the card reference is not a card id
	ReasonCurrency = "currency" // paid in a currency other than EUR
	// ReasonUnknownCard (above): no such card in the organizer.
)

// parkPayment records a succeeded payment that matches no card, once per
// provider payment, and warns HQ.
func (l *Ledger) parkPayment(ctx context.Context, tx pgx.Tx, provider string, e payment.Event, reason string) error {
	tag, err := tx.Exec(ctx, `INSERT INTO unmatched_payments (org_id, provider, payment_ref, event_id, card_ref, amount, currency, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		e.Org, provider, e.Payment, e.ID, truncateRunes(e.Card, 100), e.Amount, truncateRunes(e.Currency, 10), reason)
	if err != nil {
		return fmt.Errorf("ledger: park unmatched payment: %w", err)
	}
	if tag.RowsAffected() > 0 {
		l.log.Warn("ledger: payment matches no card, parked for HQ", "org", e.Org, "provider", provider,
			"payment", truncateRunes(e.Payment, 100), "amount", e.Amount, "reason", reason)
	}
	return nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

// UnmatchedPayment is a provider payment parked because it matched no card.
type UnmatchedPayment struct {
	Provider string
	Payment  string // the provider's payment reference
	Event    string // the provider's event id
	CardRef  string // the card reference as the provider sent it
	Amount   int64
	Currency string
	Reason   string // ReasonUnknownCard, ReasonBadCard or ReasonCurrency
	At       time.Time
}

// UnmatchedPayments lists an organizer's parked payments, oldest first: HQ
// pays them back or assigns them by hand.
func (l *Ledger) UnmatchedPayments(ctx context.Context, org int64) ([]UnmatchedPayment, error) {
	rows, err := l.pool.Query(ctx, `SELECT provider, payment_ref, event_id, card_ref, amount, currency, reason, received_at
		FROM unmatched_payments WHERE org_id = $1 ORDER BY received_at, provider, payment_ref`, org)
	if err != nil {
		return nil, fmt.Errorf("ledger: unmatched payments: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UnmatchedPayment, error) {
		var u UnmatchedPayment
		err := r.Scan(&u.Provider, &u.Payment, &u.Event, &u.CardRef, &u.Amount, &u.Currency, &u.Reason, &u.At)
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: unmatched payments: %w", err)
	}
	return out, nil
}
