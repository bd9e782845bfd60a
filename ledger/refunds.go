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
	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Refunds and payouts: refund requests with sealed payee details, SEPA
// payout files and the close of an event's refund window.

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
func payeeAAD(org int64, refund txid.ID) []byte {
	return fmt.Appendf(nil, "loopcard-refund-payee-1|%d|%s", org, refund)
}

// sealPayee seals p for refund of org (JSON of a keys.Envelope).
func (l *Ledger) sealPayee(ctx context.Context, org int64, refund txid.ID, p payeeDetails) ([]byte, error) {
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
func (l *Ledger) unsealPayee(ctx context.Context, org int64, refund txid.ID, sealed []byte) (payeeDetails, error) {
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
// ErrCardBlocked (and ErrNotReviewed) for a blocked card whose blocking
// alert HQ has not reviewed (ReviewAlert), ErrExists when already refunded,
// ErrNothingToPay for an empty card, ErrInvalid for a bad IBAN, and
// ErrNoSealer without Options.Sealer. The holder name, IBAN and BIC are
// stored sealed by the HSM (Options.Sealer), bound to the refund.
func (l *Ledger) RequestRefund(ctx context.Context, org int64, req RefundRequest) (txid.ID, int64, error) {
	iban, err := sepa.NormalizeIBAN(req.IBAN)
	if err != nil {
		return txid.ID{}, 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if req.Holder == "" || len(req.Holder) > 70 {
		return txid.ID{}, 0, fmt.Errorf("%w: account holder name must be 1..70 characters", ErrInvalid)
	}
	id := l.newID()
	payee, err := l.sealPayee(ctx, org, id, payeeDetails{Name: req.Holder, IBAN: iban, BIC: req.BIC})
	if err != nil {
		return txid.ID{}, 0, fmt.Errorf("ledger: refund: %w", err)
	}
	var amount int64
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, req.Card)
		if err != nil {
			return err
		}
		switch st.status {
		case "blocked":
			// A blocked card is refunded once HQ reviewed what blocked it.
			if err := checkReviewed(ctx, tx, org, req.Card); err != nil {
				return fmt.Errorf("%w: %w", ErrCardBlocked, err)
			}
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
		return txid.ID{}, 0, fmt.Errorf("ledger: refund: %w", err)
	}
	return id, amount, nil
}

// Payout is one exported SEPA file of refunds.
type Payout struct {
	ID    txid.ID
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
			f.Payments = append(f.Payments, sepa.Payment{EndToEndID: txid.ID(id).String()[:32], Name: name, IBAN: iban,
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
			p, err := l.unsealPayee(ctx, org, txid.ID(ids[i].Bytes), env)
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
