package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Credit kinds: a card's credit (its card account) has a refundable part,
// money paid in, and a non-refundable part (vouchers, comps, welcome
// credit), kept in the card's CardNonRefundable account against the
// organizer's NonRefundableCredit. Payments spend the non-refundable part
// first (uploads, migration 029), refunds pay only the
// refundable part, and breakage takes the rest.

// Credit is a card's credit by kind.
type Credit struct {
	Total         int64 // the card account: all the credit on the card
	NonRefundable int64 // vouchers, comps, welcome credit: spent first, never refunded
	// PendingRefundable and PendingNonRefundable are loads paid or granted
	// but not yet written onto the card.
	PendingRefundable, PendingNonRefundable int64
}

// Refundable is the part of the credit on the card that a refund pays.
func (c Credit) Refundable() int64 { return c.Total - c.NonRefundable }

// nonRefundable is a card's non-refundable account and its balance.
type nonRefundable struct {
	account int64
	balance int64
}

// CardCredit returns a card's credit by kind. It fails with ErrNotFound
// for an unknown card.
func (l *Ledger) CardCredit(ctx context.Context, org int64, card []byte) (Credit, error) {
	var c Credit
	err := l.pool.QueryRow(ctx, `SELECT a.side * a.balance, coalesce(n.side * n.balance, 0),
			coalesce((SELECT sum(amount - nonrefundable) FROM topups t
				WHERE t.org_id = c.org_id AND t.card_id = c.card_id AND t.status = 'pending'), 0)::bigint,
			coalesce((SELECT sum(nonrefundable) FROM topups t
				WHERE t.org_id = c.org_id AND t.card_id = c.card_id AND t.status = 'pending'), 0)::bigint
		FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id
		LEFT JOIN accounts n ON n.org_id = a.org_id AND n.account_id = a.nonrefundable_account
		WHERE c.org_id = $1 AND c.card_id = $2`, org, card).Scan(&c.Total, &c.NonRefundable, &c.PendingRefundable, &c.PendingNonRefundable)
	if errors.Is(err, pgx.ErrNoRows) {
		return Credit{}, fmt.Errorf("%w: card %s", ErrNotFound, terminaltx.CardHex(card))
	}
	if err != nil {
		return Credit{}, fmt.Errorf("ledger: card credit: %w", err)
	}
	return c, nil
}

// readNonRefundable returns the non-refundable accounts of those of the
// given cards that have one, keyed by string(card id). The cards must be
// locked: their locks guard these accounts too.
func readNonRefundable(ctx context.Context, tx pgx.Tx, org int64, cards [][]byte) (map[string]nonRefundable, error) {
	out := map[string]nonRefundable{}
	if len(cards) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT c.card_id, n.account_id, n.side * n.balance
		FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id
		JOIN accounts n ON n.org_id = a.org_id AND n.account_id = a.nonrefundable_account
		WHERE c.org_id = $1 AND c.card_id = ANY($2)`, org, cards)
	if err != nil {
		return nil, fmt.Errorf("ledger: non-refundable credit: %w", err)
	}
	var card []byte
	var n nonRefundable
	_, err = pgx.ForEachRow(rows, []any{&card, &n.account, &n.balance}, func() error {
		out[string(card)] = n
		return nil
	})
	return out, err
}

// ensureNonRefundable returns the locked card's non-refundable account,
// creating it and naming it on the card account.
func ensureNonRefundable(ctx context.Context, tx pgx.Tx, org int64, st *cardState) (int64, error) {
	id, err := ensureAccount(ctx, tx, org, CardNonRefundable, terminaltx.CardHex(st.card))
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts SET nonrefundable_account = $3
		WHERE org_id = $1 AND account_id = $2 AND nonrefundable_account IS NULL`, org, st.account, id); err != nil {
		return 0, fmt.Errorf("ledger: link non-refundable account: %w", err)
	}
	return id, nil
}

// releaseNonRefundable returns the postings that empty a card's
// non-refundable part (its card account is emptied by the caller's entry).
func releaseNonRefundable(ctx context.Context, tx pgx.Tx, org int64, n nonRefundable) ([]posting, error) {
	if n.balance <= 0 {
		return nil, nil
	}
	contra, err := accountID(ctx, tx, org, NonRefundableCredit, "")
	if err != nil {
		return nil, err
	}
	return []posting{{n.account, n.balance}, {contra, -n.balance}}, nil
}
