package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Card writes: what a station or store terminal read back after writing a
// card, checked against the ledger, and the pending loads (paid, not yet on
// the card) it confirms.

// CardWrite is what a station or store terminal read back after writing a
// credit onto a card: the card's new sequence number and its balance before
// and after. It joins the card's sequence and balance chain.
type CardWrite struct {
	Seq           uint32
	Before, After int64
}

// recordCardWrite adds a credit's card write to the card's chain. The
// write is what a store or station reports, a claim no terminal signed:
// when its sequence is taken or its balances do not join the chain rows
// next to it, it raises a ReasonWriteConflict alert for HQ, which blocks
// nothing, and stays out of the chain, so that it cannot make a later
// terminal-signed transaction look like a clone (issue 17, M4). The card
// must be locked.
func (l *Ledger) recordCardWrite(ctx context.Context, tx pgx.Tx, org int64, st *cardState, w *CardWrite, txn txid.ID) error {
	if w == nil {
		return nil
	}
	if w.Seq == 0 || w.Before < 0 || w.After < w.Before {
		return fmt.Errorf("%w: card write must have a positive sequence and a balance that grows", ErrInvalid)
	}
	rows, err := tx.Query(ctx, `SELECT card_seq, txn_id, balance_before, balance_after FROM card_chain
		WHERE org_id = $1 AND card_id = $2 AND card_seq BETWEEN $3 - 1 AND $3 + 1`, org, st.card, int64(w.Seq))
	if err != nil {
		return err
	}
	var alerts []alert
	note := func(kind string, other txid.ID, detail string) {
		o := other
		detail += " (a reported card write: " + kind + ")"
		alerts = append(alerts, alert{id: l.newID(), card: st.card, kind: ReasonWriteConflict, txn: txn, other: &o, detail: detail, notice: true})
		l.log.Warn("card alert", "org", org, "card", terminaltx.CardHex(st.card), "reason", ReasonWriteConflict, "txn", txn.String(), "detail", detail)
	}
	var seq int64
	var ev cardEvent
	_, err = pgx.ForEachRow(rows, []any{&seq, &ev.txn, &ev.before, &ev.after}, func() error {
		switch seq {
		case int64(w.Seq):
			note(ReasonClone, ev.txn, fmt.Sprintf("card sequence %d used by two transactions", w.Seq))
		case int64(w.Seq) - 1:
			if ev.after != w.Before {
				note(ReasonChain, ev.txn, fmt.Sprintf("balance before %d at sequence %d, but %d after sequence %d", w.Before, w.Seq, ev.after, seq))
			}
		case int64(w.Seq) + 1:
			if ev.before != w.After {
				note(ReasonChain, ev.txn, fmt.Sprintf("balance after %d at sequence %d, but %d before sequence %d", w.After, w.Seq, ev.before, seq))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(alerts) == 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO card_events (org_id, card_id, card_seq, txn_id, balance_before, balance_after)
			VALUES ($1, $2, $3, $4, $5, $6)`, org, st.card, int64(w.Seq), pgtype.UUID{Bytes: txn, Valid: true}, w.Before, w.After); err != nil {
			return fmt.Errorf("ledger: card event: %w", err)
		}
	}
	return insertAlerts(ctx, tx, org, alerts)
}

// PendingLoad is a credit of a card that is not on the card yet: paid
// online, or cash taken at a store, waiting for its writer to confirm the
// card write (LoadPending).
type PendingLoad struct {
	ID      txid.ID
	Amount  int64
	At      time.Time
	Channel string // cash or online
	Store   string // the store that took the cash ("" online)
}

// PendingLoads lists a card's pending loads, oldest first.
func (l *Ledger) PendingLoads(ctx context.Context, org int64, card []byte) ([]PendingLoad, error) {
	rows, err := l.pool.Query(ctx, `SELECT topup_id, amount, created_at, channel, store_id FROM topups
		WHERE org_id = $1 AND card_id = $2 AND status = 'pending' ORDER BY created_at, topup_id`, org, card)
	if err != nil {
		return nil, fmt.Errorf("ledger: pending loads: %w", err)
	}
	var out []PendingLoad
	var p PendingLoad
	_, err = pgx.ForEachRow(rows, []any{&p.ID, &p.Amount, &p.At, &p.Channel, &p.Store}, func() error {
		out = append(out, p)
		return nil
	})
	return out, err
}

// LoadPending records that a pending load was written onto its card:
// pending loads → card, joining the card write w to the card's sequence and
// balance chain (w is nil when the writer found the load on a card that has
// moved on since). Confirming a load already loaded does nothing. A write
// whose balances do not differ by the load's amount fails with
// ErrWriteMismatch (and ErrInvalid) and changes nothing; an unknown load fails with ErrNotFound.
func (l *Ledger) LoadPending(ctx context.Context, org int64, card []byte, load txid.ID, w *CardWrite) error {
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, card)
		if err != nil {
			return err
		}
		var amount, nrAmount int64
		var status string
		err = tx.QueryRow(ctx, `SELECT amount, status, nonrefundable FROM topups WHERE org_id = $1 AND topup_id = $2 AND card_id = $3`,
			org, pgtype.UUID{Bytes: load, Valid: true}, card).Scan(&amount, &status, &nrAmount)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: pending load %s of card %s", ErrNotFound, load, terminaltx.CardHex(card))
		}
		if err != nil || status == "loaded" {
			return err
		}
		if status != "pending" {
			return fmt.Errorf("%w: the load was %s", ErrInvalid, status)
		}
		if st.status != "active" {
			return fmt.Errorf("%w: %s", ErrCardBlocked, terminaltx.CardHex(card))
		}
		if w != nil && w.After-w.Before != amount {
			return fmt.Errorf("%w: %w: the card write adds %d, the load is %d", ErrInvalid, ErrWriteMismatch, w.After-w.Before, amount)
		}
		pending, err := accountID(ctx, tx, org, PendingLoads, "")
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE topups SET status = 'loaded', loaded_at = now() WHERE org_id = $1 AND topup_id = $2`,
			org, pgtype.UUID{Bytes: load, Valid: true}); err != nil {
			return err
		}
		id := l.newID()
		e := entry{id: id, kind: "load_pending", event: st.event, ref: load.String(), at: l.now(), postings: transfer(pending, st.account, amount)}
		locked := map[int64]bool{st.account: true}
		if nrAmount > 0 {
			// Credit that is not money (a voucher, or what a correction
			// gives back of it): its part of the card grows too.
			nr, err := ensureNonRefundable(ctx, tx, org, st)
			if err != nil {
				return err
			}
			contra, err := accountID(ctx, tx, org, NonRefundableCredit, "")
			if err != nil {
				return err
			}
			e.postings = append(e.postings, posting{contra, nrAmount}, posting{nr, -nrAmount})
			locked[nr] = true
		}
		if err := writeEntries(ctx, tx, org, []entry{e}, locked); err != nil {
			return err
		}
		// The card's record carries the load's id: so does its chain.
		return l.recordCardWrite(ctx, tx, org, st, w, load)
	})
	if err != nil {
		return fmt.Errorf("ledger: load pending: %w", err)
	}
	return nil
}
