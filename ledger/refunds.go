package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/input"
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

// RequestRefund records a request to pay a card's remaining credit to a
// bank account and puts the card on the refund list (status refunded: no
// more top-ups or loads). It books nothing: terminals may still upload
// debits the card made offline before the request, so ExportPayouts fixes
// the amount at payout, once the event's terminals have synced (see
// ExportPayouts). It returns the refund's id and the credit the ledger
// holds for the card now, on it and paid online but not yet written onto
// it: what the payout pays unless such debits arrive.
//
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
	var credit int64
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
		case "replaced":
			return fmt.Errorf("%w: card %s was replaced: its credit moved to the new card", ErrConflict, terminaltx.CardHex(req.Card))
		}
		var deadline, breakage *time.Time
		if err := tx.QueryRow(ctx, `SELECT refund_deadline, breakage_at FROM events WHERE org_id = $1 AND event_id = $2`,
			org, st.event).Scan(&deadline, &breakage); err != nil {
			return err
		}
		if breakage != nil || (deadline != nil && l.now().After(*deadline)) {
			return ErrRefundWindow
		}
		// Only money paid in is refunded: not the card's non-refundable
		// part, nor vouchers not yet written onto it.
		var pendingSum int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount - nonrefundable), 0)::bigint FROM topups
			WHERE org_id = $1 AND card_id = $2 AND status = 'pending'`, org, req.Card).Scan(&pendingSum); err != nil {
			return err
		}
		nrs, err := readNonRefundable(ctx, tx, org, [][]byte{req.Card})
		if err != nil {
			return err
		}
		refundable := st.balance - nrs[string(req.Card)].balance
		if refundable+pendingSum <= 0 {
			return ErrNothingToPay
		}
		credit = refundable + pendingSum
		if _, err := tx.Exec(ctx, `INSERT INTO refunds (org_id, refund_id, card_id, amount, holder_name, iban, bic, payee, status)
			VALUES ($1, $2, $3, NULL, '', '', '', $4, 'requested')`, org, pgtype.UUID{Bytes: id, Valid: true}, req.Card,
			payee); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE cards SET status = 'refunded' WHERE org_id = $1 AND card_id = $2`, org, req.Card)
		return err
	})
	if err != nil {
		return txid.ID{}, 0, fmt.Errorf("ledger: refund: %w", err)
	}
	return id, credit, nil
}

// Refund is a card's refund as the cardholder sees it.
type Refund struct {
	ID     txid.ID
	Status string // pending (not paid out yet), paid, or nothing_due (nothing was left at payout)
	// Amount is what the payout pays, fixed at payout; nil while pending.
	Amount      *int64
	RequestedAt time.Time
}

// Refund states as Refund names them.
const (
	RefundPending    = "pending"
	RefundPaid       = "paid"
	RefundNothingDue = "nothing_due"
)

// ListedRefund is a refund as HQ lists it: its card, never its payee.
type ListedRefund struct {
	Refund
	Card []byte
}

// refundStatus names a refunds row's status as Refund does.
func refundStatus(status string) string {
	switch status {
	case "exported":
		return RefundPaid
	case "nothing_due":
		return RefundNothingDue
	}
	return RefundPending
}

// Refunds lists at most limit of the organizer's refunds: those waiting
// for a payout first, oldest first (the next payout's order), then the
// others, newest first. It also returns how many wait in all.
func (l *Ledger) Refunds(ctx context.Context, org int64, limit int) ([]ListedRefund, int, error) {
	var out []ListedRefund
	var waiting int
	b := &pgx.Batch{}
	b.Queue(`SELECT refund_id, card_id, status, amount, requested_at FROM refunds WHERE org_id = $1
		ORDER BY status <> 'requested', CASE WHEN status = 'requested' THEN requested_at END, requested_at DESC, refund_id LIMIT $2`,
		org, limit).Query(func(rows pgx.Rows) error {
		var r ListedRefund
		var status string
		_, err := pgx.ForEachRow(rows, []any{&r.ID, &r.Card, &status, &r.Amount, &r.RequestedAt}, func() error {
			r.Status = refundStatus(status)
			r.Card = bytes.Clone(r.Card)
			out = append(out, r)
			return nil
		})
		return err
	})
	b.Queue(`SELECT count(*) FROM refunds WHERE org_id = $1 AND status = 'requested'`, org).QueryRow(func(row pgx.Row) error {
		return row.Scan(&waiting)
	})
	if err := l.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, fmt.Errorf("ledger: refunds: %w", err)
	}
	return out, waiting, nil
}

// CardRefund returns the card's refund, or ErrNotFound when none was
// requested.
func (l *Ledger) CardRefund(ctx context.Context, org int64, card []byte) (Refund, error) {
	var r Refund
	var status string
	err := l.pool.QueryRow(ctx, `SELECT refund_id, status, amount, requested_at FROM refunds WHERE org_id = $1 AND card_id = $2`,
		org, card).Scan(&r.ID, &status, &r.Amount, &r.RequestedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("%w: no refund for card %s", ErrNotFound, terminaltx.CardHex(card))
	}
	if err != nil {
		return r, fmt.Errorf("ledger: refund: %w", err)
	}
	// Amount is set while pending only for a refund requested before
	// amounts were fixed at payout.
	r.Status = refundStatus(status)
	return r, nil
}

// DefaultSyncWindow is how long ExportPayouts waits, after a refund was
// requested, for the terminals of the card's event to upload before it
// fixes the amount anyway: a terminal that stays offline longer than this
// may bring a debit that is posted against RefundLosses.
const DefaultSyncWindow = 24 * time.Hour

// Payout is one exported SEPA file of refunds.
type Payout struct {
	ID    txid.ID
	Count int
	Total int64
	XML   []byte // pain.001.001.09
	// Waiting counts the requested refunds not paid yet: some terminal of
	// the card's event has not uploaded since the request, and the sync
	// window has not passed.
	Waiting int
	// NothingDue counts the refunds closed without payment: offline debits
	// that arrived before payout used up the card's credit.
	NothingDue int
	// SEPATotal is what the SEPA file pays (XML is nil when nothing);
	// ProviderTotal what goes back to the payments through their
	// providers (ProviderRefunds). Total is both.
	SEPATotal, ProviderTotal int64
	// Lines say how each refund is paid, for HQ's review.
	Lines []PayoutLine
	// ProviderRefunds are the refunds to send to the providers once the
	// run is booked (PendingProviderRefunds, ProviderRefundSent).
	ProviderRefunds []ProviderRefund
	// Plan is a digest of the lines: HQ reviews a dry run and approves the
	// run by its plan (PayoutOptions.Approve).
	Plan string
}

// PayoutLine is how one card's refund is paid.
type PayoutLine struct {
	Refund   txid.ID
	Card     string // hex id
	Amount   int64
	Provider int64 // back to the card's online payments
	SEPA     int64 // to the cardholder's bank account
}

// ProviderRefund is a refund of part of a payment through its provider.
type ProviderRefund struct {
	Line     txid.ID // also the provider's idempotency key
	Refund   txid.ID
	Provider string
	Payment  string // the provider's payment id
	Amount   int64
	// SentAs is the provider's refund id once sent; "" while pending.
	SentAs string
}

// PayoutOptions choose how a payout run goes.
type PayoutOptions struct {
	// SyncWindow: see ExportPayouts.
	SyncWindow time.Duration
	// RefundProviders are the providers whose payments are refunded back to
	// the payment, up to what each paid online and was not refunded yet,
	// before the rest goes by SEPA; none means SEPA only.
	RefundProviders []string
	// DryRun computes the run, books nothing and returns it with its Plan.
	DryRun bool
	// Approve is the Plan of the dry run HQ reviewed: the run is booked
	// only if it is still the same, else ErrPlanChanged. Empty: no check.
	Approve string
}

// ErrPlanChanged: the run is no longer the one HQ approved (a refund
// became due, a terminal uploaded); review a new dry run.
var ErrPlanChanged = errors.New("ledger: the payout run changed since it was reviewed")

// errDryRun rolls a dry run back.
var errDryRun = errors.New("ledger: dry run")

// ExportPayouts fixes the amount of every requested refund that is due and
// puts those with something to pay into one SEPA credit-transfer file
// from the organizer's account, and books them (card and pending loads →
// refunds payable → bank).
//
// A refund is due when every active terminal of the card's event has
// uploaded a transaction (or enrolled) since the refund was requested, so
// that the debits it took offline before the request are on the ledger,
// or when syncWindow has passed since the request. Its amount is then the
// card's credit: its balance and the online top-ups never written onto
// it. The others wait for a later payout (Payout.Waiting). A debit that
// arrives after its card's refund was paid is posted against RefundLosses
// with a ReasonRefundedCard alert (see Upload).
//
// With nothing to pay it returns ErrNothingToPay, with the Payout's
// Waiting and NothingDue set (the refunds found with nothing left are
// closed even then).
func (l *Ledger) ExportPayouts(ctx context.Context, org int64, debtor sepa.Party, execution time.Time, syncWindow time.Duration) (Payout, error) {
	return l.RunPayout(ctx, org, debtor, execution, PayoutOptions{SyncWindow: syncWindow})
}

// RunPayout is ExportPayouts with options: each refund goes back to the
// card's online payments of o.RefundProviders first (newest payment first,
// each up to what it paid and was not refunded: partial refunds), the rest
// by SEPA. The provider refunds are booked with the run (refunds payable →
// the provider's clearing account; the SEPA part: refunds payable → bank)
// and kept as lines to send (PendingProviderRefunds). With o.DryRun it
// books nothing and returns the run; with o.Approve it books the run only
// if its Plan is still o.Approve (else ErrPlanChanged).
func (l *Ledger) RunPayout(ctx context.Context, org int64, debtor sepa.Party, execution time.Time, o PayoutOptions) (Payout, error) {
	syncWindow := o.SyncWindow
	if syncWindow < 0 {
		return Payout{}, fmt.Errorf("%w: negative sync window", ErrInvalid)
	}
	var out Payout
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		out = Payout{ID: l.newID()}
		// Each terminal's last upload, once; then whether each open refund
		// is due.
		rows, err := tx.Query(ctx, `WITH term AS MATERIALIZED (
				SELECT t.event_id, greatest(u.received_at, t.enrolled_at) AS synced FROM terminals t
				LEFT JOIN LATERAL (SELECT received_at FROM terminal_txs x WHERE x.org_id = t.org_id AND x.terminal_id = t.terminal_id
					ORDER BY x.terminal_seq DESC LIMIT 1) u ON true
				WHERE t.org_id = $1 AND t.status = 'active')
			SELECT r.refund_id, r.card_id, c.event_id, r.amount, r.holder_name, r.iban, r.bic, r.payee,
				r.amount IS NOT NULL OR r.requested_at <= now() - $2::bigint * interval '1 microsecond' OR NOT EXISTS (
					SELECT 1 FROM term WHERE (term.event_id IS NULL OR term.event_id = c.event_id)
					AND coalesce(term.synced, '-infinity') < r.requested_at)
			FROM refunds r JOIN cards c ON c.org_id = r.org_id AND c.card_id = r.card_id
			WHERE r.org_id = $1 AND r.status = 'requested' ORDER BY r.requested_at, r.refund_id FOR UPDATE OF r`,
			org, syncWindow.Microseconds())
		if err != nil {
			return err
		}
		type open struct {
			id              pgtype.UUID
			card            []byte
			event           string
			amount          *int64
			name, iban, bic string
			payee           []byte
			due             bool
		}
		var due []*open
		var fixCards [][]byte
		var r open
		_, err = pgx.ForEachRow(rows, []any{&r.id, &r.card, &r.event, &r.amount, &r.name, &r.iban, &r.bic, &r.payee, &r.due}, func() error {
			if !r.due {
				out.Waiting++
				return nil
			}
			c := r
			c.card, c.payee = bytes.Clone(r.card), bytes.Clone(r.payee)
			due = append(due, &c)
			if c.amount == nil {
				fixCards = append(fixCards, c.card)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// Fix the amounts: lock the cards, take their balances and the
		// online top-ups never written onto them.
		states, err := lockCards(ctx, tx, org, fixCards)
		if err != nil {
			return err
		}
		// Vouchers never written onto a card and the card's non-refundable
		// part are not refunded: they go to breakage.
		pending, pendingNR := map[string]int64{}, map[string]int64{}
		nrs := map[string]nonRefundable{}
		if len(fixCards) > 0 {
			rows, err := tx.Query(ctx, `UPDATE topups SET status = 'refunded'
				WHERE org_id = $1 AND card_id = ANY($2) AND status = 'pending' RETURNING card_id, amount - nonrefundable, nonrefundable`, org, fixCards)
			if err != nil {
				return err
			}
			var card []byte
			var amount, nr int64
			if _, err := pgx.ForEachRow(rows, []any{&card, &amount, &nr}, func() error {
				pendingNR[string(card)] += nr
				pending[string(card)] += amount
				return nil
			}); err != nil {
				return err
			}
			if nrs, err = readNonRefundable(ctx, tx, org, fixCards); err != nil {
				return err
			}
		}
		// What each due card paid online and may be refunded to its
		// payment, newest payment first.
		online := map[string][]*onlinePayment{}
		providerTotals := map[string]int64{}
		if len(o.RefundProviders) > 0 && len(due) > 0 {
			cards := make([][]byte, len(due))
			for i, d := range due {
				cards[i] = d.card
			}
			rows, err := tx.Query(ctx, `SELECT t.card_id, t.provider, t.provider_ref, t.paid - t.provider_refunded - coalesce((SELECT sum(r.amount)
					FROM provider_refunds r WHERE r.org_id = t.org_id AND r.provider = t.provider AND r.payment_ref = t.provider_ref), 0)
				FROM topups t WHERE t.org_id = $1 AND t.card_id = ANY($2) AND t.channel = 'online' AND t.provider = ANY($3)
				AND t.status IN ('pending', 'loaded', 'refunded') AND t.disputed_at IS NULL
				ORDER BY t.created_at DESC, t.topup_id DESC`, org, cards, o.RefundProviders)
			if err != nil {
				return err
			}
			var op onlinePayment
			var card []byte
			if _, err := pgx.ForEachRow(rows, []any{&card, &op.provider, &op.ref, &op.left}, func() error {
				if op.left > 0 {
					c := op
					online[string(card)] = append(online[string(card)], &c)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		var breakage int64
		var entries []entry
		var payable, pendingAcct int64
		locked := map[int64]bool{}
		var ids, closed []pgtype.UUID
		var amounts []int64
		f := sepa.File{MessageID: "LC-" + out.ID.String()[:32], Created: l.now(), Execution: execution, Debtor: debtor}
		for _, d := range due {
			if d.amount == nil {
				st := states[string(d.card)]
				if st == nil {
					return fmt.Errorf("%w: card %s of refund %s", ErrNotFound, terminaltx.CardHex(d.card), txid.ID(d.id.Bytes))
				}
				p, pv, nr := pending[string(d.card)], pendingNR[string(d.card)], nrs[string(d.card)]
				amount := st.balance - nr.balance + p
				if amount <= 0 {
					closed = append(closed, d.id)
					if nr.balance+pv == 0 {
						continue
					}
					amount = 0 // the rest still goes to breakage
				}
				if payable == 0 {
					if payable, err = accountID(ctx, tx, org, RefundsPayable, ""); err != nil {
						return err
					}
				}
				var ps []posting
				if amount > 0 {
					ps = append(ps, posting{payable, -amount})
				}
				if st.balance > 0 {
					ps = append(ps, posting{st.account, st.balance})
					locked[st.account] = true
				}
				if p+pv > 0 {
					if pendingAcct == 0 {
						if pendingAcct, err = accountID(ctx, tx, org, PendingLoads, ""); err != nil {
							return err
						}
					}
					ps = append(ps, posting{pendingAcct, p + pv})
				}
				if rest := nr.balance + pv; rest > 0 {
					if breakage == 0 {
						if breakage, err = accountID(ctx, tx, org, Breakage, ""); err != nil {
							return err
						}
					}
					release, err := releaseNonRefundable(ctx, tx, org, nr)
					if err != nil {
						return err
					}
					ps = append(append(ps, posting{breakage, -rest}), release...)
					locked[nr.account] = true
				}
				if amount == 0 {
					entries = append(entries, entry{id: l.newID(), kind: "breakage", event: d.event, ref: terminaltx.CardHex(d.card),
						at: l.now(), postings: ps})
					continue
				}
				entries = append(entries, entry{id: l.newID(), kind: "refund", event: d.event, ref: terminaltx.CardHex(d.card),
					at: l.now(), postings: ps})
				d.amount = &amount
			}
			ids = append(ids, d.id)
			amounts = append(amounts, *d.amount)
			line := PayoutLine{Refund: txid.ID(d.id.Bytes), Card: terminaltx.CardHex(d.card), Amount: *d.amount}
			for _, op := range online[string(d.card)] {
				take := min(op.left, line.Amount-line.Provider)
				if take <= 0 {
					continue
				}
				op.left -= take
				line.Provider += take
				out.ProviderRefunds = append(out.ProviderRefunds, ProviderRefund{Line: l.newID(), Refund: line.Refund,
					Provider: op.provider, Payment: op.ref, Amount: take})
				providerTotals[op.provider] += take
			}
			line.SEPA = line.Amount - line.Provider
			out.Lines = append(out.Lines, line)
			out.Total += *d.amount
			out.ProviderTotal += line.Provider
			if line.SEPA == 0 {
				continue
			}
			out.SEPATotal += line.SEPA
			pay := sepa.Payment{EndToEndID: txid.ID(d.id.Bytes).String()[:32], Name: d.name, IBAN: d.iban, BIC: d.bic,
				Amount: line.SEPA, Remittance: "Refund of card " + terminaltx.CardHex(d.card)}
			if d.payee != nil { // nil: requested before payees were sealed
				p, err := l.unsealPayee(ctx, org, txid.ID(d.id.Bytes), d.payee)
				if err != nil {
					return err
				}
				pay.Name, pay.IBAN, pay.BIC = p.Name, p.IBAN, p.BIC
			}
			f.Payments = append(f.Payments, pay)
		}
		out.NothingDue = len(closed)
		if len(closed) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE refunds SET status = 'nothing_due', amount = 0, fixed_at = now()
				WHERE org_id = $1 AND refund_id = ANY($2)`, org, closed); err != nil {
				return err
			}
		}
		if len(ids) == 0 {
			// ErrNothingToPay below, with the closed refunds kept and
			// their non-refundable credit booked as breakage.
			return writeEntries(ctx, tx, org, entries, locked)
		}
		out.Count = len(ids)
		out.Plan = payoutPlan(out.Lines, out.ProviderRefunds)
		if o.Approve != "" && o.Approve != out.Plan {
			return fmt.Errorf("%w: approved %s, now %s", ErrPlanChanged, o.Approve, out.Plan)
		}
		if len(f.Payments) > 0 {
			if out.XML, err = f.Marshal(); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
		}
		if o.DryRun {
			return errDryRun
		}
		if _, err := tx.Exec(ctx, `INSERT INTO payouts (org_id, payout_id, message_id, count, total, provider_count, provider_total)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			org, pgtype.UUID{Bytes: out.ID, Valid: true}, f.MessageID, out.Count, out.Total, len(out.ProviderRefunds), out.ProviderTotal); err != nil {
			return err
		}
		for _, r := range out.ProviderRefunds {
			if _, err := tx.Exec(ctx, `INSERT INTO provider_refunds (org_id, line_id, refund_id, payout_id, provider, payment_ref, amount)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, org, pgtype.UUID{Bytes: r.Line, Valid: true}, pgtype.UUID{Bytes: r.Refund, Valid: true},
				pgtype.UUID{Bytes: out.ID, Valid: true}, r.Provider, r.Payment, r.Amount); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE refunds r SET status = 'exported', payout_id = $2, amount = q.amount,
				fixed_at = coalesce(r.fixed_at, now())
			FROM unnest($3::uuid[], $4::bigint[]) q(id, amount) WHERE r.org_id = $1 AND r.refund_id = q.id`,
			org, pgtype.UUID{Bytes: out.ID, Valid: true}, ids, amounts); err != nil {
			return err
		}
		if payable == 0 {
			if payable, err = accountID(ctx, tx, org, RefundsPayable, ""); err != nil {
				return err
			}
		}
		bank, err := accountID(ctx, tx, org, Bank, "")
		if err != nil {
			return err
		}
		ps := []posting{{payable, out.Total}}
		if out.SEPATotal > 0 {
			ps = append(ps, posting{bank, -out.SEPATotal})
		}
		for _, prov := range slices.Sorted(maps.Keys(providerTotals)) {
			clearing, err := ensureAccount(ctx, tx, org, ProviderClearing, prov)
			if err != nil {
				return err
			}
			ps = append(ps, posting{clearing, -providerTotals[prov]})
		}
		entries = append(entries, entry{id: out.ID, kind: "payout", ref: f.MessageID, at: l.now(), postings: ps})
		return writeEntries(ctx, tx, org, entries, locked)
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	if err != nil {
		return Payout{}, fmt.Errorf("ledger: export payouts: %w", err)
	}
	if out.Count == 0 {
		return Payout{Waiting: out.Waiting, NothingDue: out.NothingDue}, fmt.Errorf("ledger: export payouts: %w", ErrNothingToPay)
	}
	return out, nil
}

// onlinePayment is a card's payment that a payout may refund.
type onlinePayment struct {
	provider, ref string
	left          int64
}

// payoutPlan digests a run's lines: what HQ reviews and approves.
func payoutPlan(lines []PayoutLine, refunds []ProviderRefund) string {
	h := sha256.New()
	for _, l := range lines {
		fmt.Fprintf(h, "refund %s %s %d %d %d\n", l.Refund, l.Card, l.Amount, l.Provider, l.SEPA)
	}
	for _, r := range refunds {
		fmt.Fprintf(h, "provider %s %s %s %d\n", r.Refund, r.Provider, r.Payment, r.Amount)
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// PendingProviderRefunds lists the provider refunds of booked payout runs
// not sent yet, oldest first.
func (l *Ledger) PendingProviderRefunds(ctx context.Context, org int64) ([]ProviderRefund, error) {
	rows, err := l.pool.Query(ctx, `SELECT line_id, refund_id, provider, payment_ref, amount FROM provider_refunds
		WHERE org_id = $1 AND status = 'pending' ORDER BY created_at, line_id`, org)
	if err != nil {
		return nil, fmt.Errorf("ledger: provider refunds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProviderRefund, error) {
		var p ProviderRefund
		err := r.Scan(&p.Line, &p.Refund, &p.Provider, &p.Payment, &p.Amount)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: provider refunds: %w", err)
	}
	return out, nil
}

// ProviderRefundSent records the provider's id of a sent refund line.
// Sending it again is harmless: the line id is the provider's idempotency
// key.
func (l *Ledger) ProviderRefundSent(ctx context.Context, org int64, line txid.ID, providerID string) error {
	if err := input.Text("provider refund id", providerID, 255); err != nil || providerID == "" {
		return fmt.Errorf("%w: provider refund id", ErrInvalid)
	}
	_, err := l.pool.Exec(ctx, `UPDATE provider_refunds SET status = 'sent', provider_refund_id = $3, sent_at = $4
		WHERE org_id = $1 AND line_id = $2 AND status = 'pending'`, org, pgtype.UUID{Bytes: line, Valid: true}, providerID, l.now())
	if err != nil {
		return fmt.Errorf("ledger: provider refund sent: %w", err)
	}
	return nil
}

// CloseRefundWindow books every remaining card balance of an event as
// breakage (card → breakage), and so the online top-ups never written onto
// its cards (pending loads → breakage), once its refund deadline has passed,
// and closes refunds for the event. The credit of a card whose refund was
// requested in time stays for its payout. It returns how many cards and how much
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
			WHERE c.org_id = $1 AND c.event_id = $2 AND a.side * a.balance > 0
			AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.org_id = c.org_id AND r.card_id = c.card_id)
			ORDER BY c.card_id`, org, event)
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
		nrs, err := readNonRefundable(ctx, tx, org, cards)
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
			// The card's non-refundable part goes with the rest.
			release, err := releaseNonRefundable(ctx, tx, org, nrs[string(c)])
			if err != nil {
				return err
			}
			if release != nil {
				locked[nrs[string(c)].account] = true
			}
			entries = append(entries, entry{id: l.newID(), kind: "breakage", event: event, ref: terminaltx.CardHex(c), at: l.now(),
				postings: append(transfer(st.account, breakage, st.balance), release...)})
			n++
			total += st.balance
		}
		// Online top-ups never written onto a card of the event expire too.
		var expired int64
		if err := tx.QueryRow(ctx, `WITH x AS (UPDATE topups t SET status = 'expired' FROM cards c
				WHERE t.org_id = $1 AND t.status = 'pending' AND c.org_id = t.org_id AND c.card_id = t.card_id AND c.event_id = $2
				AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.org_id = c.org_id AND r.card_id = c.card_id)
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
