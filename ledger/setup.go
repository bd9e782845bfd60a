package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// CreateOrganizer registers an organizer and its own accounts. It is
// idempotent.
func (l *Ledger) CreateOrganizer(ctx context.Context, org int64, name string) error {
	if org <= 0 {
		return fmt.Errorf("%w: organizer id must be positive", ErrInvalid)
	}
	if err := input.Name("name", name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return l.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO organizers (org_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, org, name); err != nil {
			return fmt.Errorf("ledger: create organizer: %w", err)
		}
		for _, k := range organizerAccounts {
			if _, err := ensureAccount(ctx, tx, org, k, ""); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddEvent registers an event; refunds may be requested until refundDeadline
// (zero: no deadline yet). Adding it again updates name and deadline.
func (l *Ledger) AddEvent(ctx context.Context, org int64, event, name string, refundDeadline time.Time) error {
	if !terminaltx.ValidID(event) {
		return fmt.Errorf("%w: event id %q", ErrInvalid, event)
	}
	if err := input.Name("name", name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var dl *time.Time
	if !refundDeadline.IsZero() {
		dl = &refundDeadline
	}
	_, err := l.pool.Exec(ctx, `INSERT INTO events (org_id, event_id, name, refund_deadline) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, event_id) DO UPDATE SET name = EXCLUDED.name, refund_deadline = EXCLUDED.refund_deadline`,
		org, event, name, dl)
	if err != nil {
		return fmt.Errorf("ledger: add event: %w", err)
	}
	return nil
}

// AddMerchant registers a merchant and its payable account. It is idempotent.
func (l *Ledger) AddMerchant(ctx context.Context, org int64, merchant, name string) error {
	if !terminaltx.ValidID(merchant) {
		return fmt.Errorf("%w: merchant id %q", ErrInvalid, merchant)
	}
	if err := input.Name("name", name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return l.inTx(ctx, func(tx pgx.Tx) error {
		id, err := ensureAccount(ctx, tx, org, Merchant, merchant)
		if err != nil {
			return err
		}
		// The voucher credit spent at the merchant (migration 025).
		if _, err := ensureAccount(ctx, tx, org, NonRefundableCredit, merchant); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO merchants (org_id, merchant_id, name, account_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org_id, merchant_id) DO UPDATE SET name = EXCLUDED.name`, org, merchant, name, id)
		return err
	})
}

// AddStore registers a store and its cash account. It is idempotent.
func (l *Ledger) AddStore(ctx context.Context, org int64, store, name string) error {
	if !terminaltx.ValidID(store) {
		return fmt.Errorf("%w: store id %q", ErrInvalid, store)
	}
	if err := input.Name("name", name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return l.inTx(ctx, func(tx pgx.Tx) error {
		id, err := ensureAccount(ctx, tx, org, StoreCash, store)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO stores (org_id, store_id, name, cash_account_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org_id, store_id) DO UPDATE SET name = EXCLUDED.name`, org, store, name, id)
		return err
	})
}

// RegisterCards records issued cards of an event, each with its account.
// Cards already registered are left as they are. Errors wrap ErrNotFound
// when the event is unknown, also when cards is empty (the personalization
// station checks its batch's event that way before it writes a card).
func (l *Ledger) RegisterCards(ctx context.Context, org int64, event string, cards [][]byte) error {
	return l.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		l.QueueRegisterCards(b, org, event, cards)
		return tx.SendBatch(ctx, b).Close()
	})
}

// QueueRegisterCards queues RegisterCards's statements on b, to run in the
// caller's transaction on the ledger's database, so that a card recorded
// by the station and its card account commit together
// (batch.Finished.Also). An unknown event fails the batch with
// *UnknownError.
func (l *Ledger) QueueRegisterCards(b *pgx.Batch, org int64, event string, cards [][]byte) {
	refs := make([]string, len(cards))
	var bad error
	for i, c := range cards {
		if len(c) < terminaltx.MinCardIDLen || len(c) > terminaltx.MaxCardIDLen {
			bad = fmt.Errorf("%w: card id of %d bytes", ErrInvalid, len(c))
		}
		refs[i] = terminaltx.CardHex(c)
	}
	b.Queue(`SELECT count(*) FROM events WHERE org_id = $1 AND event_id = $2`, org, event).QueryRow(func(row pgx.Row) error {
		var n int
		if err := row.Scan(&n); err != nil {
			return err
		}
		if bad != nil {
			return bad
		}
		if n == 0 {
			return &UnknownError{Kind: "event", Org: org, ID: event}
		}
		return nil
	})
	spec := accountSpecs[Card]
	b.Queue(`INSERT INTO accounts (org_id, kind, ref, side, floor)
		SELECT $1, 'card', r, $3, $4 FROM unnest($2::text[]) r ON CONFLICT (org_id, kind, ref) DO NOTHING`,
		org, refs, spec.side, spec.floor)
	b.Queue(`INSERT INTO cards (org_id, card_id, event_id, account_id)
		SELECT $1, c.id, $2, a.account_id FROM unnest($3::bytea[], $4::text[]) c(id, ref)
		JOIN accounts a ON a.org_id = $1 AND a.kind = 'card' AND a.ref = c.ref
		ON CONFLICT (org_id, card_id) DO NOTHING`, org, event, cards, refs)
}

// CardInfo is what the ledger knows of a card.
type CardInfo struct {
	Card    []byte
	Event   string
	Status  string // active, blocked, refunded or replaced
	Balance int64  // credit in minor units, on the card
	Pending int64  // credit paid but not yet written onto the card (pending loads)
	LastSeq int64  // highest card sequence seen
	// NonRefundable is the part of Balance that is not refundable
	// (vouchers, comps; CardCredit has the whole split).
	NonRefundable int64
}

// Card returns what the ledger knows of a card, or ErrNotFound.
func (l *Ledger) Card(ctx context.Context, org int64, card []byte) (CardInfo, error) {
	ci := CardInfo{Card: card}
	err := l.pool.QueryRow(ctx, `SELECT c.event_id, c.status, a.side * a.balance,
			coalesce((SELECT max(card_seq) FROM card_chain e WHERE e.org_id = c.org_id AND e.card_id = c.card_id), 0),
			coalesce((SELECT sum(amount) FROM topups t WHERE t.org_id = c.org_id AND t.card_id = c.card_id AND t.status = 'pending'), 0)::bigint,
			coalesce(n.side * n.balance, 0)
		FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id
		LEFT JOIN accounts n ON n.org_id = a.org_id AND n.account_id = a.nonrefundable_account
		WHERE c.org_id = $1 AND c.card_id = $2`, org, card).Scan(&ci.Event, &ci.Status, &ci.Balance, &ci.LastSeq, &ci.Pending, &ci.NonRefundable)
	if errors.Is(err, pgx.ErrNoRows) {
		return ci, fmt.Errorf("%w: card %s", ErrNotFound, terminaltx.CardHex(card))
	}
	return ci, err
}
