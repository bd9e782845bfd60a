package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Cash at stores: cash top-ups, cards received and cards sold.

// CashTopUp is cash taken at a store for a card.
type CashTopUp struct {
	// ID makes the request idempotent (an API idempotency key); zero: a new id.
	// It is also the id of the load that carries the credit to the card.
	ID     txid.ID
	Store  string
	Card   []byte
	Amount int64
}

// TopUpCash records a cash top-up at a store: the store's cash is taken at
// once (store cash → pending loads) and the credit waits as a pending load
// of the card, with the top-up's ID, until the store confirms the card write
// (LoadPending). Repeating a request with the same ID and content does
// nothing; with other content it fails with ErrConflict. It fails with
// ErrCardBlocked for a blocked card and ErrNotFound for an unknown store.
func (l *Ledger) TopUpCash(ctx context.Context, org int64, req CashTopUp) (txid.ID, error) {
	if err := input.Amount("amount", req.Amount); err != nil {
		return txid.ID{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if req.ID == (txid.ID{}) {
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
		cash, err := storeCash(ctx, tx, org, req.Store)
		if err != nil {
			return err
		}
		pending, err := accountID(ctx, tx, org, PendingLoads, "")
		if err != nil {
			return err
		}
		if err := insertCashLoad(ctx, tx, org, req.ID, req.Card, req.Store, req.Amount, l.now()); err != nil {
			return err
		}
		e := entry{id: req.ID, kind: "cash_topup", event: st.event, ref: req.Store, at: l.now(), postings: transfer(cash, pending, req.Amount)}
		return writeEntries(ctx, tx, org, []entry{e}, nil)
	})
	if err != nil {
		return txid.ID{}, fmt.Errorf("ledger: cash top-up: %w", err)
	}
	return req.ID, nil
}

// insertCashLoad adds a pending load of cash taken at store.
func insertCashLoad(ctx context.Context, tx pgx.Tx, org int64, id txid.ID, card []byte, store string, amount int64, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, store_id, amount, status, created_at)
		VALUES ($1, $2, $3, 'cash', $4, $5, 'pending', $6)`, org, pgtype.UUID{Bytes: id, Valid: true}, card, store, amount, at)
	return err
}

// sameTopUp reports whether top-up id exists with this content (done), or
// fails with ErrConflict when it exists with other content.
func sameTopUp(ctx context.Context, tx pgx.Tx, org int64, id txid.ID, card []byte, amount int64, channel string) (bool, error) {
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

// storeCash returns a store's cash account.
func storeCash(ctx context.Context, tx pgx.Tx, org int64, store string) (int64, error) {
	var cash int64
	err := tx.QueryRow(ctx, `SELECT cash_account_id FROM stores WHERE org_id = $1 AND store_id = $2`, org, store).Scan(&cash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: store %q", ErrNotFound, store)
	}
	return cash, err
}

// Receipt is a store's receipt of cards, as the custody log records it.
type Receipt struct {
	// ID is the receipt's id: the cards of one receipt are counted into
	// the store's stock once, however often it is recorded.
	ID    txid.ID
	Store string
	Batch int64
	Count int // the cards the store counted
	// FirstSlot and Run, for the receipt of a run of cards handed over,
	// are the run's first slot and its length (the cards handed over).
	FirstSlot, Run int
}

// ReceiveCards records that a store received and counted count cards of
// batch no.
func (l *Ledger) ReceiveCards(ctx context.Context, org int64, store string, no int64, count int) error {
	return l.inTx(ctx, func(tx pgx.Tx) error {
		return l.ReceiveCardsTx(ctx, tx, org, Receipt{ID: l.newID(), Store: store, Batch: no, Count: count})
	})
}

// ReceiveCardsTx counts the cards of receipt r into the store's stock, in
// the caller's transaction tx on the ledger's database, so that a receipt
// in the custody log and the store's stock commit together
// (handoverdb.Log.AppendReceiving).
func (l *Ledger) ReceiveCardsTx(ctx context.Context, tx pgx.Tx, org int64, r Receipt) error {
	if r.Count <= 0 || r.Batch <= 0 || r.FirstSlot < 0 || r.Run < 0 || (r.FirstSlot == 0) != (r.Run == 0) {
		return fmt.Errorf("%w: a batch, a positive count and a run of cards or none are required", ErrInvalid)
	}
	if _, err := storeCash(ctx, tx, org, r.Store); err != nil {
		return err
	}
	var first, run *int
	if r.Run > 0 {
		first, run = &r.FirstSlot, &r.Run
	}
	_, err := tx.Exec(ctx, `INSERT INTO store_card_moves (org_id, move_id, store_id, kind, count, batch_no, first_slot, run_count, at)
		VALUES ($1, $2, $3, 'received', $4, $5, $6, $7, $8) ON CONFLICT (org_id, move_id) DO NOTHING`,
		org, pgtype.UUID{Bytes: r.ID, Valid: true}, r.Store, r.Count, r.Batch, first, run, l.now())
	return err
}

// ErrNotInStock: the store does not hold the card by the custody log: no
// card of its batch was received by the store, or all of them are sold.
var ErrNotInStock = errors.New("ledger: the store does not hold the card")

// checkStock fails with ErrNotInStock unless store holds the card in slot
// of batch no: the card is in no other store's run of cards, and the store
// holds a card of the batch, received (the custody log's receipts, see
// ReceiveCardsTx) and not sold. The store's row is locked, so that two
// sales of the store's last card of a batch do not both pass.
func checkStock(ctx context.Context, tx pgx.Tx, org int64, store string, no int64, slot int) error {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM stores WHERE org_id = $1 AND store_id = $2 FOR NO KEY UPDATE`, org, store).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: store %q", ErrNotFound, store)
	}
	if err != nil {
		return err
	}
	var runs []string
	rows, err := tx.Query(ctx, `SELECT store_id FROM store_card_moves WHERE org_id = $1 AND batch_no = $2
		AND first_slot IS NOT NULL AND first_slot <= $3 AND $3 < first_slot + run_count`, org, no, slot)
	if err != nil {
		return err
	}
	if runs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return err
	}
	if len(runs) > 0 && !slices.Contains(runs, store) {
		return fmt.Errorf("%w: the custody log has card %d-%05d at store %s", ErrNotInStock, no, slot, runs[0])
	}
	var held int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(CASE kind WHEN 'received' THEN count ELSE -count END), 0)::bigint
		FROM store_card_moves WHERE org_id = $1 AND store_id = $2 AND batch_no = $3`, org, store, no).Scan(&held); err != nil {
		return err
	}
	if held <= 0 {
		return fmt.Errorf("%w: store %s holds no card of batch %d by the custody log", ErrNotInStock, store, no)
	}
	return nil
}

// takeFromStock checks that store holds card (of batch no, in slot) by the
// custody log, as a sale does (checkStock), and records it leaving the
// store's stock as sold (move id), unless the card was sold before: it
// left a store's stock then.
func takeFromStock(ctx context.Context, tx pgx.Tx, org int64, store string, card []byte, no int64, slot int, id txid.ID, at time.Time) error {
	var sold bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM store_card_moves WHERE org_id = $1 AND card_id = $2 AND kind = 'sold')`,
		org, card).Scan(&sold); err != nil || sold {
		return err
	}
	if err := checkStock(ctx, tx, org, store, no, slot); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO store_card_moves (org_id, move_id, store_id, kind, count, card_id, batch_no, at)
		VALUES ($1, $2, $3, 'sold', 1, $4, $5, $6)`, org, pgtype.UUID{Bytes: id, Valid: true}, store, card, no, at)
	return err
}

// CardSale is a card sold at a store for cash: a refundable deposit and
// optionally initial credit.
type CardSale struct {
	ID      txid.ID // idempotency key; zero: a new id
	Store   string
	Card    []byte
	Deposit int64
	// Batch and Slot are where the card was personalized: the store must
	// hold it by the custody log (ErrNotInStock).
	Batch int64
	Slot  int
	// Credit is initial credit: it waits as a pending load with the sale's
	// ID until the store confirms the card write (LoadPending).
	Credit int64
}

// SellCard records a card sale: store cash → card deposits (deposit) and
// → pending loads (credit, a load of the card with the sale's ID). Selling
// a card twice fails with ErrExists; repeating the same request ID does
// nothing. A store sells only a card of a batch it holds by the custody
// log (sale.Batch): else the sale fails with ErrNotInStock and changes
// nothing.
func (l *Ledger) SellCard(ctx context.Context, org int64, sale CardSale) (txid.ID, error) {
	if err := errors.Join(input.AmountOrZero("deposit", sale.Deposit), input.AmountOrZero("credit", sale.Credit)); err != nil {
		return txid.ID{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if sale.Deposit+sale.Credit <= 0 {
		return txid.ID{}, fmt.Errorf("%w: deposit and credit must not be negative, nor both zero", ErrInvalid)
	}
	if sale.Batch <= 0 || sale.Slot <= 0 {
		return txid.ID{}, fmt.Errorf("%w: the card's batch and slot are required", ErrInvalid)
	}
	if sale.ID == (txid.ID{}) {
		sale.ID = l.newID()
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, sale.Card)
		if err != nil {
			return err
		}
		var prev pgtype.UUID
		err = tx.QueryRow(ctx, `SELECT move_id FROM store_card_moves WHERE org_id = $1 AND card_id = $2 AND kind = 'sold'`,
			org, sale.Card).Scan(&prev)
		if err == nil {
			if prev.Bytes == sale.ID {
				return nil
			}
			return fmt.Errorf("%w: card %s was sold before", ErrExists, terminaltx.CardHex(sale.Card))
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if st.status != "active" {
			return fmt.Errorf("%w: %s", ErrCardBlocked, terminaltx.CardHex(sale.Card))
		}
		if err := checkStock(ctx, tx, org, sale.Store, sale.Batch, sale.Slot); err != nil {
			return err
		}
		cash, err := storeCash(ctx, tx, org, sale.Store)
		if err != nil {
			return err
		}
		deposits, err := accountID(ctx, tx, org, CardDeposits, "")
		if err != nil {
			return err
		}
		ps := []posting{{cash, sale.Deposit + sale.Credit}}
		if sale.Deposit > 0 {
			ps = append(ps, posting{deposits, -sale.Deposit})
		}
		if sale.Credit > 0 {
			pending, err := accountID(ctx, tx, org, PendingLoads, "")
			if err != nil {
				return err
			}
			ps = append(ps, posting{pending, -sale.Credit})
			if err := insertCashLoad(ctx, tx, org, sale.ID, sale.Card, sale.Store, sale.Credit, l.now()); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO store_card_moves (org_id, move_id, store_id, kind, count, card_id, batch_no, at)
			VALUES ($1, $2, $3, 'sold', 1, $4, $5, $6)`, org, pgtype.UUID{Bytes: sale.ID, Valid: true}, sale.Store, sale.Card, sale.Batch, l.now()); err != nil {
			return err
		}
		e := entry{id: sale.ID, kind: "card_sale", event: st.event, ref: sale.Store, at: l.now(), postings: ps}
		return writeEntries(ctx, tx, org, []entry{e}, nil)
	})
	if err != nil {
		return txid.ID{}, fmt.Errorf("ledger: card sale: %w", err)
	}
	return sale.ID, nil
}
