package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Payments from providers: verified webhook events credit a card or are
// parked as unmatched.

// RecordPayment records a payment provider's verified event (see package
// payment), once per event id of a provider, whatever order deliveries
// come in:
//
//   - succeeded: the payment becomes a pending load of its card (provider
//     clearing → pending loads); it waits there until a station or an
//     online terminal writes it onto the card (LoadPending). A payment is
//     credited once, whichever of its events says so first; one recorded
//     as processing, failed or abandoned is credited when it succeeds
//     after all (the money arrived).
//   - processing: recorded, nothing credited; it waits for succeeded,
//     failed or expired, or ExpireProcessing abandons it.
//   - failed, expired: a processing payment is closed (failed,
//     abandoned); a credited one is left as it is (a late, out-of-order
//     notice).
//   - refunded: what the provider refunded outside a payout run (its sum
//     so far, minus what payout runs refunded and what was taken back
//     before) is taken back: from the pending load first, then the card's
//     credit, and what was already spent is booked to RefundLosses with a
//     ReasonProviderRefund notice.
//   - disputed: a chargeback takes its amount back the same way, what was
//     spent is booked to ChargebackLosses, and a ReasonChargeback alert is
//     raised, which blocks an active card until HQ reviews it. Once per
//     payment.
//   - dispute won: the chargeback's entry is reversed, once: the loss
//     booked, the card's credit and the pending load taken come back. A
//     won notice before the chargeback's own makes that one change
//     nothing. The chargeback's alert stays for HQ to review.
//   - unknown: parked in UnmatchedPayments (ReasonUnknownState) for HQ.
//   - method saved: the card's auto top-up rule waiting for it is active.
//
// An event of an auto top-up charge (AutoTopUp) also moves the charge:
// see RecordAutoTopUp.
//
// Refunded and disputed events need not name the organizer: the payment
// does. Other event types are only noted.
//
// A succeeded payment the ledger cannot match to a card of the organizer
// (unknown or unreadable card reference, a currency other than EUR) is
// parked: recorded in UnmatchedPayments with a warning for HQ, and
// RecordPayment returns nil so that the provider stops delivering it.
func (l *Ledger) RecordPayment(ctx context.Context, provider string, e payment.Event) error {
	if !terminaltx.ValidID(provider) {
		return fmt.Errorf("%w: provider %q", ErrInvalid, provider)
	}
	var (
		card   []byte
		reason string
	)
	switch e.Type {
	case payment.TypePaymentSucceeded, payment.TypePaymentProcessing:
		var err error
		switch card, err = terminaltx.ParseCardHex(e.Card); {
		case err != nil:
			reason = ReasonBadCard
		case e.Currency != "" && e.Currency != "EUR" && e.Currency != "eur":
			reason = ReasonCurrency
		}
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		org := e.Org
		var found *providerPayment
		if e.Payment != "" {
			p, err := lockProviderPayment(ctx, tx, org, provider, e.Payment)
			if err != nil {
				return err
			}
			found = p
			if org == 0 && p != nil {
				org = p.org
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO provider_events (org_id, provider, event_id) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, org, provider, e.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // seen before
		}
		if e.AutoTopUp != "" {
			if err := l.autoTopUpEvent(ctx, tx, org, e); err != nil {
				return err
			}
		}
		switch e.Type {
		case payment.TypeMethodSaved:
			return l.autoTopUpMethodSaved(ctx, tx, provider, e)
		case payment.TypePaymentSucceeded, payment.TypePaymentProcessing:
			return l.paymentArrived(ctx, tx, provider, e, card, reason, found)
		case payment.TypePaymentFailed, payment.TypePaymentExpired:
			if found == nil || found.status != "processing" {
				return nil // never processing here, or credited already: nothing to undo
			}
			status := "failed"
			if e.Type == payment.TypePaymentExpired {
				status = "abandoned"
			}
			_, err := tx.Exec(ctx, `UPDATE topups SET status = $3 WHERE org_id = $1 AND topup_id = $2`, found.org, found.id, status)
			return err
		case payment.TypePaymentRefunded:
			if found == nil {
				l.log.Warn("ledger: provider refund of an unknown payment", "provider", provider, "payment", truncateRunes(e.Payment, 100))
				return nil
			}
			return l.paymentRefunded(ctx, tx, provider, found, e.Refunded)
		case payment.TypePaymentDisputed:
			if found == nil {
				l.log.Warn("ledger: chargeback of an unknown payment", "provider", provider, "payment", truncateRunes(e.Payment, 100))
				return nil
			}
			return l.paymentDisputed(ctx, tx, provider, found, e)
		case payment.TypeDisputeWon:
			if found == nil {
				l.log.Warn("ledger: won chargeback of an unknown payment", "provider", provider, "payment", truncateRunes(e.Payment, 100))
				return nil
			}
			return l.disputeWon(ctx, tx, provider, found)
		case payment.TypeUnknown:
			if org <= 0 {
				l.log.Warn("ledger: payment in an unknown state, organizer unknown", "provider", provider,
					"payment", truncateRunes(e.Payment, 100), "status", truncateRunes(e.Status, 40))
				return nil
			}
			e.Org = org
			return l.parkPayment(ctx, tx, provider, e, ReasonUnknownState)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: record payment: %w", err)
	}
	return nil
}

// providerPayment is a provider's payment as topups holds it.
type providerPayment struct {
	org       int64
	id        pgtype.UUID
	ref       string // the provider's payment id
	card      []byte
	event     string
	status    string
	amount    int64
	refunded  int64 // taken back for refunds outside payout runs
	disputed  bool
	createdAt time.Time
	// disputeTxn is the chargeback's entry (invalid when none was
	// booked); won, whether the provider closed it as won.
	disputeTxn pgtype.UUID
	won        bool
}

// lockProviderPayment locks and returns the topup of a provider's payment,
// or nil. org 0 looks in every organizer (provider payment ids are
// unique).
func lockProviderPayment(ctx context.Context, tx pgx.Tx, org int64, provider, ref string) (*providerPayment, error) {
	var p providerPayment
	err := tx.QueryRow(ctx, `SELECT t.org_id, t.topup_id, t.provider_ref, t.card_id, c.event_id, t.status, t.amount, t.provider_refunded,
			t.disputed_at IS NOT NULL, t.created_at, t.dispute_txn, t.dispute_won_at IS NOT NULL
		FROM topups t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
		WHERE ($1 = 0 OR t.org_id = $1) AND t.provider = $2 AND t.provider_ref = $3 AND t.provider <> ''
		ORDER BY t.org_id LIMIT 1 FOR UPDATE OF t`, org, provider, ref).
		Scan(&p.org, &p.id, &p.ref, &p.card, &p.event, &p.status, &p.amount, &p.refunded, &p.disputed, &p.createdAt, &p.disputeTxn, &p.won)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// paymentArrived records a succeeded or processing payment.
func (l *Ledger) paymentArrived(ctx context.Context, tx pgx.Tx, provider string, e payment.Event, card []byte, reason string, found *providerPayment) error {
	succeeded := e.Type == payment.TypePaymentSucceeded
	if found != nil {
		switch found.status {
		case "processing", "failed", "abandoned":
			if !succeeded {
				return nil
			}
			// Confirmed after all: credit it now.
			if _, err := tx.Exec(ctx, `UPDATE topups SET status = 'pending', amount = $3, paid = $3 WHERE org_id = $1 AND topup_id = $2`,
				found.org, found.id, e.Amount); err != nil {
				return err
			}
			return l.creditPayment(ctx, tx, found.org, provider, found.event, txid.ID(found.id.Bytes), e.Amount)
		}
		return nil // credited already (by another event of the same payment)
	}
	org := e.Org
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
		if !succeeded {
			return nil // parked when (if) it succeeds
		}
		return l.parkPayment(ctx, tx, provider, e, reason)
	}
	id := l.newID()
	status := "pending"
	if !succeeded {
		status = "processing"
	}
	tag, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, provider, provider_ref, amount, paid, status)
		VALUES ($1, $2, $3, 'online', $4, $5, $6, $6, $7) ON CONFLICT DO NOTHING`,
		org, pgtype.UUID{Bytes: id, Valid: true}, card, provider, e.Payment, e.Amount, status)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 || !succeeded {
		return nil
	}
	return l.creditPayment(ctx, tx, org, provider, event, id, e.Amount)
}

// creditPayment books a succeeded payment: provider clearing → pending
// loads.
func (l *Ledger) creditPayment(ctx context.Context, tx pgx.Tx, org int64, provider, event string, id txid.ID, amount int64) error {
	clearing, err := ensureAccount(ctx, tx, org, ProviderClearing, provider)
	if err != nil {
		return err
	}
	pending, err := accountID(ctx, tx, org, PendingLoads, "")
	if err != nil {
		return err
	}
	en := entry{id: id, kind: "online_topup", event: event, ref: provider, at: l.now(), postings: transfer(clearing, pending, amount)}
	return writeEntries(ctx, tx, org, []entry{en}, nil)
}

// Reasons for the alerts a provider raises.
const (
	// ReasonChargeback: the provider took a payment back (a dispute);
	// blocks an active card until HQ reviews it.
	ReasonChargeback = "chargeback"
	// ReasonProviderRefund: the provider refunded a payment outside a
	// payout run after its credit reached the card; a notice.
	ReasonProviderRefund = "provider_refund"
	// ReasonUnknownState parks a payment in a state nobody documented.
	ReasonUnknownState = "unknown_state"
)

// paymentRefunded takes back what the provider refunded of a payment
// outside payout runs: total is the provider's sum refunded so far.
func (l *Ledger) paymentRefunded(ctx context.Context, tx pgx.Tx, provider string, p *providerPayment, total int64) error {
	var ours int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0)::bigint FROM provider_refunds
		WHERE org_id = $1 AND provider = $2 AND payment_ref = $3`, p.org, provider, p.ref).Scan(&ours); err != nil {
		return err
	}
	delta := total - ours - p.refunded
	if delta <= 0 {
		return nil // a payout run's own refund, or an older notice
	}
	if _, err := tx.Exec(ctx, `UPDATE topups SET provider_refunded = provider_refunded + $3 WHERE org_id = $1 AND topup_id = $2`,
		p.org, p.id, delta); err != nil {
		return err
	}
	if p.status == "processing" || p.status == "failed" || p.status == "abandoned" {
		return nil // never credited
	}
	_, err := l.takeBack(ctx, tx, provider, p, delta, "provider_refund", RefundLosses, ReasonProviderRefund)
	return err
}

// paymentDisputed takes a chargeback's amount back, once per payment.
func (l *Ledger) paymentDisputed(ctx context.Context, tx pgx.Tx, provider string, p *providerPayment, e payment.Event) error {
	if p.disputed {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE topups SET disputed_at = $3 WHERE org_id = $1 AND topup_id = $2`, p.org, p.id, l.now()); err != nil {
		return err
	}
	if p.status == "processing" || p.status == "failed" || p.status == "abandoned" {
		return nil
	}
	amount := min(e.Amount, p.amount+p.refunded)
	id, err := l.takeBack(ctx, tx, provider, p, amount, "chargeback", ChargebackLosses, ReasonChargeback)
	if err != nil || id == (txid.ID{}) {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE topups SET dispute_txn = $3 WHERE org_id = $1 AND topup_id = $2`, p.org, p.id, pgtype.UUID{Bytes: id, Valid: true})
	return err
}

// disputeWon reverses a chargeback's entry once the provider closed the
// dispute as won: every posting of it negated (the provider's clearing
// account has the money again; the loss, the card's credit and the
// pending load come back), and the pending load's topup restored.
func (l *Ledger) disputeWon(ctx context.Context, tx pgx.Tx, provider string, p *providerPayment) error {
	if p.won {
		return nil
	}
	now := l.now()
	if _, err := tx.Exec(ctx, `UPDATE topups SET dispute_won_at = $3, disputed_at = coalesce(disputed_at, $3) WHERE org_id = $1 AND topup_id = $2`,
		p.org, p.id, now); err != nil {
		return err
	}
	if !p.disputeTxn.Valid {
		return nil // nothing was booked (or the won notice came first)
	}
	st, err := lockCard(ctx, tx, p.org, p.card)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT ps.account_id, ps.amount, a.kind FROM postings ps
		JOIN accounts a ON a.org_id = ps.org_id AND a.account_id = ps.account_id
		WHERE ps.org_id = $1 AND ps.txn_id = $2 ORDER BY ps.line`, p.org, p.disputeTxn)
	if err != nil {
		return err
	}
	var (
		ps          []posting
		fromPending int64
	)
	for rows.Next() {
		var (
			acct, amount int64
			kind         string
		)
		if err := rows.Scan(&acct, &amount, &kind); err != nil {
			rows.Close()
			return err
		}
		ps = append(ps, posting{acct, -amount})
		if kind == string(PendingLoads) {
			fromPending += amount
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if fromPending > 0 {
		// The load taken back waits to be written again: its topup if it
		// is still waiting (or was wholly taken), else a new one.
		tag, err := tx.Exec(ctx, `UPDATE topups SET status = 'pending',
				amount = CASE WHEN status = 'refunded' THEN amount ELSE amount + $3 END
			WHERE org_id = $1 AND topup_id = $2 AND status IN ('pending', 'refunded')`, p.org, p.id, fromPending)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, amount, status)
				VALUES ($1, $2, $3, 'online', $4, 'pending')`, p.org, pgtype.UUID{Bytes: l.newID(), Valid: true}, p.card, fromPending); err != nil {
				return err
			}
		}
	}
	en := entry{id: l.newID(), kind: "chargeback_reversal", event: p.event, ref: provider, at: now, postings: ps}
	if err := writeEntries(ctx, tx, p.org, []entry{en}, map[int64]bool{st.account: true}); err != nil {
		return err
	}
	l.log.Info("ledger: chargeback won, reversed", "org", p.org, "card", terminaltx.CardHex(p.card), "provider", provider,
		"payment", truncateRunes(p.ref, 100))
	return nil
}

// takeBack books amount of payment p leaving the provider's clearing
// account: from its pending load while it is not on the card, then from
// the card's credit, and the rest, already spent, from the loss account.
// A loss or credit taken from the card raises an alert of kind reason
// (a chargeback's always), which blocks an active card for a chargeback.
// It returns the entry's id (zero when it booked nothing).
func (l *Ledger) takeBack(ctx context.Context, tx pgx.Tx, provider string, p *providerPayment, amount int64, kind string, loss AccountKind, reason string) (txid.ID, error) {
	if amount <= 0 {
		return txid.ID{}, nil
	}
	st, err := lockCard(ctx, tx, p.org, p.card)
	if err != nil {
		return txid.ID{}, err
	}
	clearing, err := ensureAccount(ctx, tx, p.org, ProviderClearing, provider)
	if err != nil {
		return txid.ID{}, err
	}
	ps := []posting{{clearing, -amount}}
	rest := amount
	if p.status == "pending" {
		fromPending := min(rest, p.amount)
		pending, err := accountID(ctx, tx, p.org, PendingLoads, "")
		if err != nil {
			return txid.ID{}, err
		}
		ps = append(ps, posting{pending, fromPending})
		rest -= fromPending
		if fromPending == p.amount {
			_, err = tx.Exec(ctx, `UPDATE topups SET status = 'refunded' WHERE org_id = $1 AND topup_id = $2`, p.org, p.id)
		} else {
			_, err = tx.Exec(ctx, `UPDATE topups SET amount = amount - $3 WHERE org_id = $1 AND topup_id = $2`, p.org, p.id, fromPending)
		}
		if err != nil {
			return txid.ID{}, err
		}
	}
	fromCard := min(rest, max(st.balance, 0))
	locked := map[int64]bool{}
	if fromCard > 0 {
		ps = append(ps, posting{st.account, fromCard})
		locked[st.account] = true
		rest -= fromCard
	}
	if rest > 0 {
		lossAcct, err := ensureAccount(ctx, tx, p.org, loss, "")
		if err != nil {
			return txid.ID{}, err
		}
		ps = append(ps, posting{lossAcct, rest})
	}
	id := l.newID()
	en := entry{id: id, kind: kind, event: p.event, ref: provider, at: l.now(), postings: ps}
	if err := writeEntries(ctx, tx, p.org, []entry{en}, locked); err != nil {
		return txid.ID{}, err
	}
	if fromCard == 0 && rest == 0 && reason != ReasonChargeback {
		return id, nil // only the pending load: the card never held it
	}
	detail := fmt.Sprintf("%s of provider %s payment %s: %d cents taken back, %d from the card, %d already spent (booked to %s)",
		kind, provider, truncateRunes(p.ref, 100), amount, fromCard, rest, loss)
	notice := reason != ReasonChargeback || st.status != "active"
	l.log.Warn("card alert", "org", p.org, "card", terminaltx.CardHex(p.card), "reason", reason, "amount", amount, "loss", rest)
	return id, insertAlerts(ctx, tx, p.org, []alert{{id: l.newID(), card: p.card, kind: reason, txn: id, detail: detail, notice: notice}})
}

// ExpireProcessing abandons the payments that stayed processing for
// longer than after: the provider never confirmed them, so nothing was
// credited and nothing is. It returns how many it abandoned. A payment
// that succeeds later is credited then (RecordPayment).
func (l *Ledger) ExpireProcessing(ctx context.Context, after time.Duration) (int64, error) {
	if after <= 0 {
		return 0, fmt.Errorf("%w: a payment waits a positive time", ErrInvalid)
	}
	tag, err := l.pool.Exec(ctx, `UPDATE topups SET status = 'abandoned' WHERE status = 'processing' AND created_at < $1`,
		l.now().Add(-after))
	if err != nil {
		return 0, fmt.Errorf("ledger: expire processing payments: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Reasons a provider payment is parked as unmatched.
const (
	ReasonBadCard  = "bad_card" // the card reference is not a card id
	ReasonCurrency = "currency" // paid in a currency other than EUR
	// ReasonUnknownCard (above): no such card in the organizer.
	// ReasonUnknownState (above): the provider named a state nobody documented.
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
