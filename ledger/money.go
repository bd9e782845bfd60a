package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// CardWrite is what a station or store terminal read back after writing a
// credit onto a card: the card's new sequence number and its balance before
// and after. It joins the card's sequence and balance chain.
type CardWrite struct {
	Seq           uint32
	Before, After int64
}

// recordCardWrite adds a credit's card write to the card's chain, raising
// an alert (and blocking the card) when the sequence is taken or the chain
// does not join. The card must be locked.
func (l *Ledger) recordCardWrite(ctx context.Context, tx pgx.Tx, org int64, st *cardState, w *CardWrite, txn terminaltx.ID) error {
	if w == nil {
		return nil
	}
	if w.Seq == 0 || w.Before < 0 || w.After < w.Before {
		return fmt.Errorf("%w: card write must have a positive sequence and a balance that grows", ErrInvalid)
	}
	rows, err := tx.Query(ctx, `SELECT card_seq, txn_id, balance_before, balance_after FROM card_events
		WHERE org_id = $1 AND card_id = $2 AND card_seq BETWEEN $3 - 1 AND $3 + 1`, org, st.card, int64(w.Seq))
	if err != nil {
		return err
	}
	var alerts []alert
	raise := func(kind string, other terminaltx.ID, detail string) {
		if st.status != "active" {
			return
		}
		st.status = "blocked"
		o := other
		alerts = append(alerts, alert{id: l.newID(), card: st.card, kind: kind, txn: txn, other: &o, detail: detail})
		l.log.Warn("card blocked", "org", org, "card", terminaltx.CardHex(st.card), "reason", kind, "txn", txn.String(), "detail", detail)
	}
	clone := false
	var seq int64
	var ev cardEvent
	_, err = pgx.ForEachRow(rows, []any{&seq, &ev.txn, &ev.before, &ev.after}, func() error {
		switch seq {
		case int64(w.Seq):
			clone = true
			raise(ReasonClone, ev.txn, fmt.Sprintf("card sequence %d used by two transactions", w.Seq))
		case int64(w.Seq) - 1:
			if ev.after != w.Before {
				raise(ReasonChain, ev.txn, fmt.Sprintf("balance before %d at sequence %d, but %d after sequence %d", w.Before, w.Seq, ev.after, seq))
			}
		case int64(w.Seq) + 1:
			if ev.before != w.After {
				raise(ReasonChain, ev.txn, fmt.Sprintf("balance after %d at sequence %d, but %d before sequence %d", w.After, w.Seq, ev.before, seq))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !clone {
		if _, err := tx.Exec(ctx, `INSERT INTO card_events (org_id, card_id, card_seq, txn_id, balance_before, balance_after)
			VALUES ($1, $2, $3, $4, $5, $6)`, org, st.card, int64(w.Seq), pgtype.UUID{Bytes: txn, Valid: true}, w.Before, w.After); err != nil {
			return fmt.Errorf("ledger: card event: %w", err)
		}
	}
	return insertAlerts(ctx, tx, org, alerts)
}

// CashTopUp is cash taken at a store and credited to a card.
type CashTopUp struct {
	// ID makes the request idempotent (an API idempotency key); zero: a new id.
	ID     terminaltx.ID
	Store  string
	Card   []byte
	Amount int64
	// Write is the card write, when the store wrote the credit onto the card.
	Write *CardWrite
}

// TopUpCash records a cash top-up at a store: store cash → card. Repeating
// a request with the same ID and content does nothing; with other content it
// fails with ErrConflict. It fails with ErrCardBlocked for a blocked card.
func (l *Ledger) TopUpCash(ctx context.Context, org int64, req CashTopUp) (terminaltx.ID, error) {
	if req.Amount <= 0 {
		return terminaltx.ID{}, fmt.Errorf("%w: amount must be positive", ErrInvalid)
	}
	if req.ID == (terminaltx.ID{}) {
		req.ID = l.newID()
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, req.Card)
		if err != nil {
			return err
		}
		if done, err := sameTopUp(ctx, tx, org, req.ID, req.Card, req.Amount, "cash"); done || err != nil {
			return err
		}
		if st.status != "active" {
			return fmt.Errorf("%w: %s", ErrCardBlocked, terminaltx.CardHex(req.Card))
		}
		var cash int64
		if err := tx.QueryRow(ctx, `SELECT cash_account_id FROM stores WHERE org_id = $1 AND store_id = $2`, org, req.Store).Scan(&cash); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: store %q", ErrNotFound, req.Store)
			}
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, store_id, amount, status, loaded_at)
			VALUES ($1, $2, $3, 'cash', $4, $5, 'loaded', now())`, org, pgtype.UUID{Bytes: req.ID, Valid: true}, req.Card, req.Store, req.Amount); err != nil {
			return err
		}
		e := entry{id: req.ID, kind: "cash_topup", event: st.event, ref: req.Store, at: l.now(), postings: transfer(cash, st.account, req.Amount)}
		if err := writeEntries(ctx, tx, org, []entry{e}, map[int64]bool{st.account: true}); err != nil {
			return err
		}
		return l.recordCardWrite(ctx, tx, org, st, req.Write, req.ID)
	})
	if err != nil {
		return terminaltx.ID{}, fmt.Errorf("ledger: cash top-up: %w", err)
	}
	return req.ID, nil
}

// sameTopUp reports whether top-up id exists with this content (done), or
// fails with ErrConflict when it exists with other content.
func sameTopUp(ctx context.Context, tx pgx.Tx, org int64, id terminaltx.ID, card []byte, amount int64, channel string) (bool, error) {
	var c []byte
	var a int64
	var ch string
	err := tx.QueryRow(ctx, `SELECT card_id, amount, channel FROM topups WHERE org_id = $1 AND topup_id = $2`,
		org, pgtype.UUID{Bytes: id, Valid: true}).Scan(&c, &a, &ch)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !bytes.Equal(c, card) || a != amount || ch != channel {
		return false, fmt.Errorf("%w: top-up %s", ErrConflict, id)
	}
	return true, nil
}

var _ = time.Now
