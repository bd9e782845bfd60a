package ledger

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/txid"
)

// HeldTx is a terminal transaction the ledger holds instead of posting
// (its terminal was revoked or is another merchant's, or the card's chain
// does not add up): its terminal, card, amount and why.
type HeldTx struct {
	ID         txid.ID   `json:"id"`
	Terminal   string    `json:"terminal"`
	Merchant   string    `json:"merchant"`
	Card       []byte    `json:"card"`
	Amount     int64     `json:"amount"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`          // the terminal's time
	ReceivedAt time.Time `json:"received_at"` // the ledger's
}

// HeldTxs lists at most limit of the organizer's held terminal
// transactions, the latest received first, and says how many are held in
// all.
func (l *Ledger) HeldTxs(ctx context.Context, org int64, limit int) ([]HeldTx, int, error) {
	var out []HeldTx
	var total int
	b := &pgx.Batch{}
	b.Queue(`SELECT txn_id, terminal_id, merchant_id, card_id, amount, hold_reason, at, received_at FROM terminal_txs
		WHERE org_id = $1 AND status = 'held' ORDER BY received_at DESC, txn_id LIMIT $2`, org, limit).Query(func(rows pgx.Rows) error {
		var h HeldTx
		_, err := pgx.ForEachRow(rows, []any{&h.ID, &h.Terminal, &h.Merchant, &h.Card, &h.Amount, &h.Reason, &h.At, &h.ReceivedAt}, func() error {
			h.Card = bytes.Clone(h.Card)
			out = append(out, h)
			return nil
		})
		return err
	})
	b.Queue(`SELECT count(*) FROM terminal_txs WHERE org_id = $1 AND status = 'held'`, org).QueryRow(func(row pgx.Row) error {
		return row.Scan(&total)
	})
	if err := l.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, fmt.Errorf("ledger: held transactions: %w", err)
	}
	return out, total, nil
}
