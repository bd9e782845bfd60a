package ledger

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/txid"
)

// UnknownError says an id names nothing the ledger knows. It wraps
// ErrNotFound.
type UnknownError struct {
	// Kind is "organizer", "event", "merchant" or "store".
	Kind string
	Org  int64
	// ID is the event, merchant or store id; empty for an organizer.
	ID string
}

func (e *UnknownError) Error() string {
	if e.Kind == "organizer" {
		return fmt.Sprintf("unknown organizer %d", e.Org)
	}
	return fmt.Sprintf("unknown %s %q of organizer %d", e.Kind, e.ID, e.Org)
}

// Unwrap returns ErrNotFound.
func (e *UnknownError) Unwrap() error { return ErrNotFound }

// EventInfo is an event as the ledger knows it.
type EventInfo struct {
	ID             string     `json:"event"`
	Name           string     `json:"name"`
	RefundDeadline *time.Time `json:"refund_deadline,omitempty"`
	BreakageAt     *time.Time `json:"breakage_at,omitempty"`
}

// Party is a merchant or a store: its id and name.
type Party struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Events lists the organizer's events by id.
func (l *Ledger) Events(ctx context.Context, org int64) ([]EventInfo, error) {
	rows, err := l.pool.Query(ctx, `SELECT event_id, name, refund_deadline, breakage_at FROM events WHERE org_id = $1 ORDER BY event_id`, org)
	if err != nil {
		return nil, fmt.Errorf("ledger: events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EventInfo, error) {
		var e EventInfo
		err := r.Scan(&e.ID, &e.Name, &e.RefundDeadline, &e.BreakageAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: events: %w", err)
	}
	return out, nil
}

// Merchants lists the organizer's merchants by id.
func (l *Ledger) Merchants(ctx context.Context, org int64) ([]Party, error) {
	return l.parties(ctx, `SELECT merchant_id, name FROM merchants WHERE org_id = $1 ORDER BY merchant_id`, org, "merchants")
}

// Stores lists the organizer's stores by id.
func (l *Ledger) Stores(ctx context.Context, org int64) ([]Party, error) {
	return l.parties(ctx, `SELECT store_id, name FROM stores WHERE org_id = $1 ORDER BY store_id`, org, "stores")
}

func (l *Ledger) parties(ctx context.Context, q string, org int64, what string) ([]Party, error) {
	rows, err := l.pool.Query(ctx, q, org)
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Party, error) {
		var p Party
		err := r.Scan(&p.ID, &p.Name)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: %w", what, err)
	}
	return out, nil
}

// CheckOrganizer returns nil when the organizer exists, else an
// *UnknownError.
func (l *Ledger) CheckOrganizer(ctx context.Context, org int64) error {
	return l.exists(ctx, `SELECT true FROM organizers WHERE org_id = $1`, &UnknownError{Kind: "organizer", Org: org}, org)
}

// CheckEvent returns nil when the organizer has the event, else an
// *UnknownError.
func (l *Ledger) CheckEvent(ctx context.Context, org int64, event string) error {
	return l.exists(ctx, `SELECT true FROM events WHERE org_id = $1 AND event_id = $2`, &UnknownError{Kind: "event", Org: org, ID: event}, org, event)
}

// CheckMerchant returns nil when the organizer has the merchant, else an
// *UnknownError.
func (l *Ledger) CheckMerchant(ctx context.Context, org int64, merchant string) error {
	return l.exists(ctx, `SELECT true FROM merchants WHERE org_id = $1 AND merchant_id = $2`, &UnknownError{Kind: "merchant", Org: org, ID: merchant}, org, merchant)
}

// CheckStore returns nil when the organizer has the store, else an
// *UnknownError.
func (l *Ledger) CheckStore(ctx context.Context, org int64, store string) error {
	return l.exists(ctx, `SELECT true FROM stores WHERE org_id = $1 AND store_id = $2`, &UnknownError{Kind: "store", Org: org, ID: store}, org, store)
}

func (l *Ledger) exists(ctx context.Context, q string, unknown *UnknownError, args ...any) error {
	var ok bool
	err := l.pool.QueryRow(ctx, q, args...).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return unknown
	}
	if err != nil {
		return fmt.Errorf("ledger: look up %s: %w", unknown.Kind, err)
	}
	return nil
}

// TerminalKey is what authenticating a terminal's request needs: its
// signing key, merchant and status.
type TerminalKey struct {
	// Status is TerminalCreated, TerminalEnrolled or TerminalRevoked.
	Status    string
	PublicKey ed25519.PublicKey // nil until the terminal enrols
	Merchant  string
}

// TerminalKey returns a terminal's signing key, merchant and status, or
// ErrNotFound. Unlike the upload path it reads no cache: a revocation
// shows at once.
func (l *Ledger) TerminalKey(ctx context.Context, org int64, terminal string) (TerminalKey, error) {
	var k TerminalKey
	var pub []byte
	err := l.pool.QueryRow(ctx, `SELECT
			CASE status WHEN 'pending' THEN 'created' WHEN 'active' THEN 'enrolled' ELSE status END, public_key, merchant_id
		FROM terminals WHERE org_id = $1 AND terminal_id = $2`, org, terminal).Scan(&k.Status, &pub, &k.Merchant)
	if errors.Is(err, pgx.ErrNoRows) {
		return TerminalKey{}, fmt.Errorf("%w: terminal %q", ErrNotFound, terminal)
	}
	if err != nil {
		return TerminalKey{}, fmt.Errorf("ledger: terminal key: %w", err)
	}
	k.PublicKey = pub
	return k, nil
}

// CardPayment is a terminal transaction on a card's chain.
type CardPayment struct {
	ID           txid.ID
	At           time.Time
	Merchant     string
	Amount       int64
	CardSeq      int64
	BalanceAfter int64
	Status       string // posted or held
}

// CardTopUp is a credit of a card: paid online or in cash at a store.
type CardTopUp struct {
	ID      txid.ID
	At      time.Time // when loaded onto the card, else when taken
	Channel string    // cash or online
	Store   string    // "" online
	Amount  int64
	Status  string // pending, loaded, refunded or expired
}

// CardHistory is a card's statement, newest first.
type CardHistory struct {
	Payments []CardPayment
	TopUps   []CardTopUp
}

// CardHistory returns a card's payments (by card sequence) and top-ups
// (by creation), newest first, at most limit of each.
func (l *Ledger) CardHistory(ctx context.Context, org int64, card []byte, limit int) (CardHistory, error) {
	var h CardHistory
	rows, err := l.pool.Query(ctx, `SELECT t.txn_id, t.at, t.merchant_id, t.amount, t.card_seq, t.balance_after, t.status
		FROM card_chain e JOIN terminal_txs t ON t.org_id = e.org_id AND t.txn_id = e.txn_id
		WHERE e.org_id = $1 AND e.card_id = $2 ORDER BY e.card_seq DESC LIMIT $3`, org, card, limit)
	if err != nil {
		return CardHistory{}, fmt.Errorf("ledger: card history: %w", err)
	}
	var p CardPayment
	if _, err := pgx.ForEachRow(rows, []any{&p.ID, &p.At, &p.Merchant, &p.Amount, &p.CardSeq, &p.BalanceAfter, &p.Status}, func() error {
		h.Payments = append(h.Payments, p)
		return nil
	}); err != nil {
		return CardHistory{}, fmt.Errorf("ledger: card history: %w", err)
	}
	rows, err = l.pool.Query(ctx, `SELECT topup_id, coalesce(loaded_at, created_at), channel, store_id, amount, status
		FROM topups WHERE org_id = $1 AND card_id = $2 ORDER BY created_at DESC LIMIT $3`, org, card, limit)
	if err != nil {
		return CardHistory{}, fmt.Errorf("ledger: card history: %w", err)
	}
	var t CardTopUp
	if _, err := pgx.ForEachRow(rows, []any{&t.ID, &t.At, &t.Channel, &t.Store, &t.Amount, &t.Status}, func() error {
		h.TopUps = append(h.TopUps, t)
		return nil
	}); err != nil {
		return CardHistory{}, fmt.Errorf("ledger: card history: %w", err)
	}
	return h, nil
}
