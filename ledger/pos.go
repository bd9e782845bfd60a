package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// The point of sale's credits back to a card (issue 19): a void of the
// last payment and a deposit return (cups given back, nothing bought).
// Neither is a signed card transaction: a terminal holds the card's debit
// key only and cannot credit it (the card layout enables no
// LimitedCredit). Each is a request the terminal signs (HTTP message
// signature, session key) online; the ledger checks it against what it
// recorded and books merchant → pending loads, and the terminal writes
// the load onto the card at once (WritePendingLoads), or the card gets it
// at its next online write. See docs/design.md, "Voids and deposit returns".

// Errors of voids and deposit returns.
var (
	// ErrNotLastPayment: a void names a payment after which its card was
	// written again.
	ErrNotLastPayment = errors.New("ledger: the payment is not the card's last")
	// ErrVoidWindow: the payment is older than VoidWindow.
	ErrVoidWindow = errors.New("ledger: the payment is too old to void")
	// ErrNotDeposit: a deposit return names a product that is not a deposit
	// item of the menu, or not at its price.
	ErrNotDeposit = errors.New("ledger: not a deposit item of the menu at its price")
)

// VoidWindow is how long after a payment (its terminal time) its terminal
// may still void it: the void is for the card still on the reader.
const VoidWindow = 10 * time.Minute

// VoidPayment is terminal's void of its payment: the whole amount charged
// back to the merchant and credited to the card as a pending load, linked
// to the payment as a correction (Correction.ID = id, which is also the
// load's id) that needs no approval. Only the terminal that took the
// payment may void it, only while it is the card's last write and within
// VoidWindow, and only once: the same id again returns the void as it
// stands, another id fails with ErrExceedsPayment. Other errors:
// ErrNotFound (no such payment of this terminal), ErrNotPosted,
// ErrNotLastPayment, ErrVoidWindow, ErrInsufficientFunds.
func (l *Ledger) VoidPayment(ctx context.Context, org int64, terminal string, id, payment txid.ID) (Correction, error) {
	if !terminaltx.ValidID(terminal) || id == (txid.ID{}) {
		return Correction{}, fmt.Errorf("%w: a terminal and a void id are required", ErrInvalid)
	}
	// Amount is set to the payment's; 1 passes the check before it is read.
	return l.requestCorrection(ctx, org, CorrectionRequest{ID: id, Payment: payment, Amount: 1,
		Reason: "void at terminal " + terminal, Actor: "terminal:" + terminal}, terminal)
}

// DepositReturnRequest is a terminal's deposit return: deposit items given
// back (negative quantities) and nothing bought.
type DepositReturnRequest struct {
	ID    txid.ID // idempotency key, and the id of the load
	Card  []byte
	Items []terminaltx.Item
	Time  time.Time // the terminal's time
}

// DepositReturn is a recorded deposit return.
type DepositReturn struct {
	ID       txid.ID
	Card     []byte
	Merchant string
	Amount   int64 // credited to the card
}

// MaxDepositReturn bounds the items of one deposit return.
const MaxDepositReturn = 100

// DepositReturn records terminal's deposit return: every item must be a
// deposit item of a menu version of the terminal's merchant, at that
// version's price and VAT rate, with a negative quantity, at most
// MaxDepositReturn items in all. The sum is charged back to the merchant
// and credited to the card as a pending load (req.ID); the items are
// stored with the merchant's other items (terminal_tx_items), negative.
// The same ID again returns the return as it stands. Errors: ErrInvalid,
// ErrNotDeposit, ErrNotFound (card or terminal), ErrConflict (the ID used
// for another return), ErrInsufficientFunds (the merchant's account).
func (l *Ledger) DepositReturn(ctx context.Context, org int64, terminal string, req DepositReturnRequest) (DepositReturn, error) {
	if req.ID == (txid.ID{}) || len(req.Items) == 0 || len(req.Items) > terminaltx.MaxItems {
		return DepositReturn{}, fmt.Errorf("%w: a return id and 1 to %d items are required", ErrInvalid, terminaltx.MaxItems)
	}
	var count int64
	for _, it := range req.Items {
		if it.Quantity >= 0 || it.Quantity < -MaxDepositReturn {
			return DepositReturn{}, fmt.Errorf("%w: returned items have quantities -1 to -%d", ErrInvalid, MaxDepositReturn)
		}
		count -= int64(it.Quantity)
	}
	if count > MaxDepositReturn {
		return DepositReturn{}, fmt.Errorf("%w: at most %d items in one return", ErrInvalid, MaxDepositReturn)
	}
	rec, err := l.Terminal(ctx, org, terminal)
	if err != nil {
		return DepositReturn{}, err
	}
	menus := map[int32]menu.Menu{}
	var amount int64
	for _, it := range req.Items {
		m, ok := menus[it.MenuVersion]
		if !ok {
			if m, err = l.MenuVersion(ctx, org, rec.Merchant, it.MenuVersion); err != nil {
				if errors.Is(err, ErrNotFound) {
					return DepositReturn{}, fmt.Errorf("%w: %s is in no menu version %d of merchant %s", ErrNotDeposit, it.Product, it.MenuVersion, rec.Merchant)
				}
				return DepositReturn{}, err
			}
			menus[it.MenuVersion] = m
		}
		p, ok := m.Product(it.Product)
		if !ok || !p.Deposit || p.Price != it.UnitPrice || p.VATRateBP != it.VATRateBP {
			return DepositReturn{}, fmt.Errorf("%w: %s of menu version %d", ErrNotDeposit, it.Product, it.MenuVersion)
		}
		amount -= int64(it.Quantity) * it.UnitPrice
	}
	if req.Time.IsZero() {
		req.Time = l.now()
	}
	out := DepositReturn{ID: req.ID, Card: req.Card, Merchant: rec.Merchant, Amount: amount}
	id := pgtype.UUID{Bytes: req.ID, Valid: true}
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, req.Card)
		if err != nil {
			return err
		}
		var card []byte
		var had int64
		var channel string
		err = tx.QueryRow(ctx, `SELECT card_id, amount, channel FROM topups WHERE org_id = $1 AND topup_id = $2`, org, id).Scan(&card, &had, &channel)
		if err == nil {
			if string(card) != string(req.Card) || had != amount || channel != "deposit_return" {
				return fmt.Errorf("%w: deposit return %s", ErrConflict, req.ID)
			}
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var merchantAcct int64
		if err := tx.QueryRow(ctx, `SELECT account_id FROM merchants WHERE org_id = $1 AND merchant_id = $2`, org, rec.Merchant).Scan(&merchantAcct); err != nil {
			return fmt.Errorf("ledger: merchant %s: %w", rec.Merchant, err)
		}
		now := l.now()
		if _, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, amount, status, created_at)
			VALUES ($1, $2, $3, 'deposit_return', $4, 'pending', $5)`, org, id, req.Card, amount, now); err != nil {
			return err
		}
		pending, err := accountID(ctx, tx, org, PendingLoads, "")
		if err != nil {
			return err
		}
		e := entry{id: l.newID(), kind: "deposit_return", event: st.event, ref: rec.Merchant, at: now,
			postings: transfer(merchantAcct, pending, amount)}
		if err := writeEntries(ctx, tx, org, []entry{e}, nil); err != nil {
			return err
		}
		var items itemRows
		items.add(&terminaltx.Signed{Tx: terminaltx.Tx{ID: req.ID, Merchant: rec.Merchant, Time: req.Time, Items: req.Items}})
		b := &pgx.Batch{}
		items.queue(b, org)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return DepositReturn{}, fmt.Errorf("ledger: deposit return: %w", dbError(err))
	}
	l.log.Info("ledger: deposit return", "org", org, "terminal", terminal, "merchant", rec.Merchant, "amount", amount,
		"card", terminaltx.CardHex(req.Card), "load", req.ID.String())
	return out, nil
}
