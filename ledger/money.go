package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Errors of the money flows.
var (
	ErrRefundWindow = errors.New("ledger: refund window closed")
	ErrWindowOpen   = errors.New("ledger: refund window still open")
	ErrNothingToPay = errors.New("ledger: nothing to refund")
	ErrDayClosed    = errors.New("ledger: store day already closed")
	// ErrWriteMismatch: a load's confirmation has balances that do not
	// differ by the load's amount (it also matches ErrInvalid).
	ErrWriteMismatch = errors.New("ledger: the card write does not add the load's amount")
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
	rows, err := tx.Query(ctx, `SELECT card_seq, txn_id, balance_before, balance_after FROM card_chain
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

// CashTopUp is cash taken at a store for a card.
type CashTopUp struct {
	// ID makes the request idempotent (an API idempotency key); zero: a new id.
	// It is also the id of the load that carries the credit to the card.
	ID     terminaltx.ID
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
		return terminaltx.ID{}, fmt.Errorf("ledger: cash top-up: %w", err)
	}
	return req.ID, nil
}

// insertCashLoad adds a pending load of cash taken at store.
func insertCashLoad(ctx context.Context, tx pgx.Tx, org int64, id terminaltx.ID, card []byte, store string, amount int64, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, store_id, amount, status, created_at)
		VALUES ($1, $2, $3, 'cash', $4, $5, 'pending', $6)`, org, pgtype.UUID{Bytes: id, Valid: true}, card, store, amount, at)
	return err
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

// storeCash returns a store's cash account.
func storeCash(ctx context.Context, tx pgx.Tx, org int64, store string) (int64, error) {
	var cash int64
	err := tx.QueryRow(ctx, `SELECT cash_account_id FROM stores WHERE org_id = $1 AND store_id = $2`, org, store).Scan(&cash)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: store %q", ErrNotFound, store)
	}
	return cash, err
}

// ReceiveCards records that a store received and counted count cards.
func (l *Ledger) ReceiveCards(ctx context.Context, org int64, store string, count int) error {
	return l.ReceiveCardsOnce(ctx, org, store, count, l.newID())
}

// ReceiveCardsOnce is ReceiveCards for the receipt id: the cards of one
// receipt are counted into the store's stock once, however often it is
// recorded.
func (l *Ledger) ReceiveCardsOnce(ctx context.Context, org int64, store string, count int, receipt terminaltx.ID) error {
	return l.inTx(ctx, func(tx pgx.Tx) error { return l.ReceiveCardsTx(ctx, tx, org, store, count, receipt) })
}

// ReceiveCardsTx is ReceiveCardsOnce in the caller's transaction tx on the
// ledger's database, so that a receipt in the custody log and the store's
// stock commit together (handoverdb.Log.AppendWith).
func (l *Ledger) ReceiveCardsTx(ctx context.Context, tx pgx.Tx, org int64, store string, count int, receipt terminaltx.ID) error {
	if count <= 0 {
		return fmt.Errorf("%w: count must be positive", ErrInvalid)
	}
	if _, err := storeCash(ctx, tx, org, store); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO store_card_moves (org_id, move_id, store_id, kind, count, at)
		VALUES ($1, $2, $3, 'received', $4, $5) ON CONFLICT (org_id, move_id) DO NOTHING`,
		org, pgtype.UUID{Bytes: receipt, Valid: true}, store, count, l.now())
	return err
}

// CardSale is a card sold at a store for cash: a refundable deposit and
// optionally initial credit.
type CardSale struct {
	ID      terminaltx.ID // idempotency key; zero: a new id
	Store   string
	Card    []byte
	Deposit int64
	// Credit is initial credit: it waits as a pending load with the sale's
	// ID until the store confirms the card write (LoadPending).
	Credit int64
}

// SellCard records a card sale: store cash → card deposits (deposit) and
// → pending loads (credit, a load of the card with the sale's ID). Selling
// a card twice fails with ErrExists; repeating the same request ID does
// nothing.
func (l *Ledger) SellCard(ctx context.Context, org int64, sale CardSale) (terminaltx.ID, error) {
	if sale.Deposit < 0 || sale.Credit < 0 || sale.Deposit+sale.Credit <= 0 {
		return terminaltx.ID{}, fmt.Errorf("%w: deposit and credit must not be negative, nor both zero", ErrInvalid)
	}
	if sale.ID == (terminaltx.ID{}) {
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
		if _, err := tx.Exec(ctx, `INSERT INTO store_card_moves (org_id, move_id, store_id, kind, count, card_id, at)
			VALUES ($1, $2, $3, 'sold', 1, $4, $5)`, org, pgtype.UUID{Bytes: sale.ID, Valid: true}, sale.Store, sale.Card, l.now()); err != nil {
			return err
		}
		e := entry{id: sale.ID, kind: "card_sale", event: st.event, ref: sale.Store, at: l.now(), postings: ps}
		return writeEntries(ctx, tx, org, []entry{e}, nil)
	})
	if err != nil {
		return terminaltx.ID{}, fmt.Errorf("ledger: card sale: %w", err)
	}
	return sale.ID, nil
}

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

// PendingLoad is a credit of a card that is not on the card yet: paid
// online, or cash taken at a store, waiting for its writer to confirm the
// card write (LoadPending).
type PendingLoad struct {
	ID      terminaltx.ID
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
func (l *Ledger) LoadPending(ctx context.Context, org int64, card []byte, load terminaltx.ID, w *CardWrite) error {
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, card)
		if err != nil {
			return err
		}
		var amount int64
		var status string
		err = tx.QueryRow(ctx, `SELECT amount, status FROM topups WHERE org_id = $1 AND topup_id = $2 AND card_id = $3`,
			org, pgtype.UUID{Bytes: load, Valid: true}, card).Scan(&amount, &status)
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
		if err := writeEntries(ctx, tx, org, []entry{e}, map[int64]bool{st.account: true}); err != nil {
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

// RefundRequest asks for a card's remaining balance to be paid to a bank
// account.
type RefundRequest struct {
	Card   []byte
	Holder string
	IBAN   string
	BIC    string
}

// ErrNoSealer: the ledger was made without Options.Sealer, so it cannot
// store or read refund payout details.
var ErrNoSealer = errors.New("ledger: refund payout details need the HSM (ledger.Options.Sealer), which this ledger was not given")

// payeeDetails is what a payout needs of a refund's bank account; it is
// stored only sealed.
type payeeDetails struct {
	Name string `json:"name"`
	IBAN string `json:"iban"`
	BIC  string `json:"bic,omitempty"`
}

// payeeAAD binds a sealed payee to its organizer and refund.
func payeeAAD(org int64, refund terminaltx.ID) []byte {
	return fmt.Appendf(nil, "loopcard-refund-payee-1|%d|%s", org, refund)
}

// sealPayee seals p for refund of org (JSON of a keys.Envelope).
func (l *Ledger) sealPayee(ctx context.Context, org int64, refund terminaltx.ID, p payeeDetails) ([]byte, error) {
	if l.sealer == nil {
		return nil, ErrNoSealer
	}
	pt, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	env, err := l.sealer.Seal(ctx, pt, payeeAAD(org, refund))
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("ledger: seal payout details: %w", err)
	}
	return json.Marshal(env)
}

// unsealPayee opens a payee sealed by sealPayee.
func (l *Ledger) unsealPayee(ctx context.Context, org int64, refund terminaltx.ID, sealed []byte) (payeeDetails, error) {
	var p payeeDetails
	if l.sealer == nil {
		return p, ErrNoSealer
	}
	var env keys.Envelope
	if err := json.Unmarshal(sealed, &env); err != nil {
		return p, fmt.Errorf("ledger: sealed payout details of refund %s: %w", refund, err)
	}
	pt, err := l.sealer.Unseal(ctx, &env, payeeAAD(org, refund))
	if err != nil {
		return p, fmt.Errorf("ledger: open payout details of refund %s: %w", refund, err)
	}
	defer clear(pt)
	if err := json.Unmarshal(pt, &p); err != nil {
		return p, fmt.Errorf("ledger: payout details of refund %s: malformed", refund)
	}
	return p, nil
}

// RequestRefund moves a card's whole balance, and any online top-up not yet
// written onto it, to refunds payable (card and pending loads → refunds
// payable) and marks the card refunded; ExportPayouts later pays it.
// It fails with ErrRefundWindow after the event's refund deadline,
// ErrCardBlocked for a blocked card, ErrExists when already refunded,
// ErrNothingToPay for an empty card, ErrInvalid for a bad IBAN, and
// ErrNoSealer without Options.Sealer. The holder name, IBAN and BIC are
// stored sealed by the HSM (Options.Sealer), bound to the refund.
func (l *Ledger) RequestRefund(ctx context.Context, org int64, req RefundRequest) (terminaltx.ID, int64, error) {
	iban, err := sepa.NormalizeIBAN(req.IBAN)
	if err != nil {
		return terminaltx.ID{}, 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if req.Holder == "" || len(req.Holder) > 70 {
		return terminaltx.ID{}, 0, fmt.Errorf("%w: account holder name must be 1..70 characters", ErrInvalid)
	}
	id := l.newID()
	payee, err := l.sealPayee(ctx, org, id, payeeDetails{Name: req.Holder, IBAN: iban, BIC: req.BIC})
	if err != nil {
		return terminaltx.ID{}, 0, fmt.Errorf("ledger: refund: %w", err)
	}
	var amount int64
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, req.Card)
		if err != nil {
			return err
		}
		switch st.status {
		case "blocked":
			return fmt.Errorf("%w: %s", ErrCardBlocked, terminaltx.CardHex(req.Card))
		case "refunded":
			return fmt.Errorf("%w: card %s is already refunded", ErrExists, terminaltx.CardHex(req.Card))
		}
		var deadline, breakage *time.Time
		if err := tx.QueryRow(ctx, `SELECT refund_deadline, breakage_at FROM events WHERE org_id = $1 AND event_id = $2`,
			org, st.event).Scan(&deadline, &breakage); err != nil {
			return err
		}
		if breakage != nil || (deadline != nil && l.now().After(*deadline)) {
			return ErrRefundWindow
		}
		// Money paid online but never written onto the card is refunded too.
		var pendingSum int64
		if err := tx.QueryRow(ctx, `WITH r AS (UPDATE topups SET status = 'refunded'
				WHERE org_id = $1 AND card_id = $2 AND status = 'pending' RETURNING amount)
			SELECT coalesce(sum(amount), 0)::bigint FROM r`, org, req.Card).Scan(&pendingSum); err != nil {
			return err
		}
		if st.balance+pendingSum <= 0 {
			return ErrNothingToPay
		}
		amount = st.balance + pendingSum
		payable, err := accountID(ctx, tx, org, RefundsPayable, "")
		if err != nil {
			return err
		}
		ps := []posting{{payable, -amount}}
		if st.balance > 0 {
			ps = append(ps, posting{st.account, st.balance})
		}
		if pendingSum > 0 {
			pending, err := accountID(ctx, tx, org, PendingLoads, "")
			if err != nil {
				return err
			}
			ps = append(ps, posting{pending, pendingSum})
		}
		if _, err := tx.Exec(ctx, `INSERT INTO refunds (org_id, refund_id, card_id, amount, holder_name, iban, bic, payee, status)
			VALUES ($1, $2, $3, $4, '', '', '', $5, 'requested')`, org, pgtype.UUID{Bytes: id, Valid: true}, req.Card, amount,
			payee); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE cards SET status = 'refunded' WHERE org_id = $1 AND card_id = $2`, org, req.Card); err != nil {
			return err
		}
		e := entry{id: id, kind: "refund", event: st.event, ref: terminaltx.CardHex(req.Card), at: l.now(), postings: ps}
		return writeEntries(ctx, tx, org, []entry{e}, map[int64]bool{st.account: true})
	})
	if err != nil {
		return terminaltx.ID{}, 0, fmt.Errorf("ledger: refund: %w", err)
	}
	return id, amount, nil
}

// Payout is one exported SEPA file of refunds.
type Payout struct {
	ID    terminaltx.ID
	Count int
	Total int64
	XML   []byte // pain.001.001.09
}

// ExportPayouts puts every requested refund into one SEPA credit-transfer
// file from the organizer's account and books it (refunds payable → bank).
// With nothing to pay it returns ErrNothingToPay.
func (l *Ledger) ExportPayouts(ctx context.Context, org int64, debtor sepa.Party, execution time.Time) (Payout, error) {
	var out Payout
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		out = Payout{ID: l.newID()}
		rows, err := tx.Query(ctx, `SELECT refund_id, card_id, amount, holder_name, iban, bic, payee FROM refunds
			WHERE org_id = $1 AND status = 'requested' ORDER BY requested_at, refund_id FOR UPDATE`, org)
		if err != nil {
			return err
		}
		f := sepa.File{MessageID: "LC-" + out.ID.String()[:32], Created: l.now(), Execution: execution, Debtor: debtor}
		var ids []pgtype.UUID
		var sealed [][]byte
		var (
			id     [16]byte
			card   []byte
			amount int64
			name   string
			iban   string
			bic    string
			payee  []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &card, &amount, &name, &iban, &bic, &payee}, func() error {
			ids = append(ids, pgtype.UUID{Bytes: id, Valid: true})
			sealed = append(sealed, bytes.Clone(payee))
			f.Payments = append(f.Payments, sepa.Payment{EndToEndID: terminaltx.ID(id).String()[:32], Name: name, IBAN: iban,
				BIC: bic, Amount: amount, Remittance: "Refund of card " + terminaltx.CardHex(card)})
			out.Total += amount
			return nil
		})
		if err != nil {
			return err
		}
		for i, env := range sealed {
			if env == nil {
				continue // requested before payees were sealed
			}
			p, err := l.unsealPayee(ctx, org, terminaltx.ID(ids[i].Bytes), env)
			if err != nil {
				return err
			}
			f.Payments[i].Name, f.Payments[i].IBAN, f.Payments[i].BIC = p.Name, p.IBAN, p.BIC
		}
		if len(ids) == 0 {
			return ErrNothingToPay
		}
		out.Count = len(ids)
		if out.XML, err = f.Marshal(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payouts (org_id, payout_id, message_id, count, total) VALUES ($1, $2, $3, $4, $5)`,
			org, pgtype.UUID{Bytes: out.ID, Valid: true}, f.MessageID, out.Count, out.Total); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE refunds SET status = 'exported', payout_id = $3 WHERE org_id = $1 AND refund_id = ANY($2)`,
			org, ids, pgtype.UUID{Bytes: out.ID, Valid: true}); err != nil {
			return err
		}
		payable, err := accountID(ctx, tx, org, RefundsPayable, "")
		if err != nil {
			return err
		}
		bank, err := accountID(ctx, tx, org, Bank, "")
		if err != nil {
			return err
		}
		e := entry{id: out.ID, kind: "payout", ref: f.MessageID, at: l.now(), postings: transfer(payable, bank, out.Total)}
		return writeEntries(ctx, tx, org, []entry{e}, nil)
	})
	if err != nil {
		return Payout{}, fmt.Errorf("ledger: export payouts: %w", err)
	}
	return out, nil
}

// CloseRefundWindow books every remaining card balance of an event as
// breakage (card → breakage), and so the online top-ups never written onto
// its cards (pending loads → breakage), once its refund deadline has passed,
// and closes refunds for the event. It returns how many cards and how much
// in all; running it
// again books nothing more. It fails with ErrWindowOpen before the deadline.
func (l *Ledger) CloseRefundWindow(ctx context.Context, org int64, event string) (int, int64, error) {
	var n int
	var total int64
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		n, total = 0, 0
		var deadline, done *time.Time
		err := tx.QueryRow(ctx, `SELECT refund_deadline, breakage_at FROM events WHERE org_id = $1 AND event_id = $2 FOR UPDATE`,
			org, event).Scan(&deadline, &done)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: event %q", ErrNotFound, event)
		}
		if err != nil {
			return err
		}
		if deadline == nil || !l.now().After(*deadline) {
			return ErrWindowOpen
		}
		rows, err := tx.Query(ctx, `SELECT c.card_id FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id
			WHERE c.org_id = $1 AND c.event_id = $2 AND a.side * a.balance > 0 ORDER BY c.card_id`, org, event)
		if err != nil {
			return err
		}
		cards, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		states, err := lockCards(ctx, tx, org, cards)
		if err != nil {
			return err
		}
		breakage, err := accountID(ctx, tx, org, Breakage, "")
		if err != nil {
			return err
		}
		var entries []entry
		locked := map[int64]bool{}
		for _, c := range cards {
			st := states[string(c)]
			if st == nil || st.balance <= 0 {
				continue
			}
			locked[st.account] = true
			entries = append(entries, entry{id: l.newID(), kind: "breakage", event: event, ref: terminaltx.CardHex(c), at: l.now(),
				postings: transfer(st.account, breakage, st.balance)})
			n++
			total += st.balance
		}
		// Online top-ups never written onto a card of the event expire too.
		var expired int64
		if err := tx.QueryRow(ctx, `WITH x AS (UPDATE topups t SET status = 'expired' FROM cards c
				WHERE t.org_id = $1 AND t.status = 'pending' AND c.org_id = t.org_id AND c.card_id = t.card_id AND c.event_id = $2
				RETURNING t.amount)
			SELECT coalesce(sum(amount), 0)::bigint FROM x`, org, event).Scan(&expired); err != nil {
			return err
		}
		if expired > 0 {
			pending, err := accountID(ctx, tx, org, PendingLoads, "")
			if err != nil {
				return err
			}
			entries = append(entries, entry{id: l.newID(), kind: "breakage", event: event, ref: "pending_loads", at: l.now(),
				postings: transfer(pending, breakage, expired)})
			total += expired
		}
		if err := writeEntries(ctx, tx, org, entries, locked); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE events SET breakage_at = now() WHERE org_id = $1 AND event_id = $2`, org, event)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("ledger: close refund window: %w", err)
	}
	return n, total, nil
}

// StoreDay is a store's close of one day.
type StoreDay struct {
	Store    string
	Day      time.Time // midnight UTC
	Expected int64     // cash taken that day according to the ledger
	Counted  int64
}

// Difference is counted minus expected cash: negative when cash is missing.
func (d StoreDay) Difference() int64 { return d.Counted - d.Expected }

// CloseStoreDay records the cash a store counted at the end of a day (UTC)
// against what the ledger expects. A day closes once (ErrDayClosed).
func (l *Ledger) CloseStoreDay(ctx context.Context, org int64, store string, day time.Time, counted int64) (StoreDay, error) {
	if counted < 0 {
		return StoreDay{}, fmt.Errorf("%w: counted cash must not be negative", ErrInvalid)
	}
	d := StoreDay{Store: store, Day: time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC), Counted: counted}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		cash, err := storeCash(ctx, tx, org, store)
		if err != nil {
			return err
		}
		if d.Expected, err = expectedCash(ctx, tx, org, store, cash, d.Day); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO store_day_closes (org_id, store_id, day, expected_cash, counted_cash)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, org, store, d.Day, d.Expected, counted)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrDayClosed
		}
		return nil
	})
	if err != nil {
		return StoreDay{}, fmt.Errorf("ledger: close store day: %w", err)
	}
	return d, nil
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// expectedCash sums what a store's cash account took on one day.
func expectedCash(ctx context.Context, q queryRower, org int64, store string, cash int64, day time.Time) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `SELECT coalesce(sum(p.amount), 0)::bigint FROM journal j
		JOIN postings p ON p.org_id = j.org_id AND p.txn_id = j.txn_id AND p.account_id = $3
		WHERE j.org_id = $1 AND j.kind IN ('cash_topup', 'card_sale') AND j.ref = $2 AND j.at >= $4 AND j.at < $5`,
		org, store, cash, day, day.AddDate(0, 0, 1)).Scan(&v)
	return v, err
}
