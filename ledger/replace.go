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
	"github.com/loopcard/loopcard/ledger/txid"
)

// Replacing a lost or stolen card with its balance: the new card takes
// the old card's credit as loads (pending until the writer confirms them,
// as a store's cash top-up), less a hold that waits until the terminals
// have synced past the old card's block, so that the debits the old card
// made offline before are paid from it (see SettleReplacements).

// DefaultReplacementWindow is how long a replacement's hold waits for the
// terminals of the card's event to sync past the block before the rest
// moves anyway.
const DefaultReplacementWindow = 24 * time.Hour

// Replacement is a card replaced by another.
type Replacement struct {
	ID       txid.ID
	Old, New []byte
	Balance  int64 // the old card's credit at replacement
	Hold     int64 // kept back until the terminals synced past the block
	// FirstLoad is the load of Balance-Hold onto the new card (zero when
	// nothing moved at once); RestLoad the later load of what the hold
	// left (zero until settled or when nothing was left).
	FirstLoad, RestLoad txid.ID
	Blocklist           uint64 // the blocklist version that lists the old card
	Settled             bool
	Rest                int64 // what followed (when Settled)
}

// ReplaceRequest asks to replace card Old by card New.
type ReplaceRequest struct {
	// ID makes the request idempotent (an API idempotency key); zero: a
	// new id. It is also the id of the first load.
	ID       txid.ID
	Old, New []byte
	Store    string // the store at whose desk ("" for HQ)
	// Batch and Slot are where New was personalized, for a store: the
	// store must hold it by the custody log (ErrNotInStock), as for a sale,
	// unless New was sold before; it then leaves the store's stock.
	Batch  int64
	Slot   int
	Actor  string // who did it, for the card's actions
	Reason string
}

// SetReplacementHold sets the organizer's replacement hold: the larger of
// cents and percent of the old card's balance, at most the balance.
func (l *Ledger) SetReplacementHold(ctx context.Context, org int64, cents int64, percent int) error {
	if cents < 0 || cents > 1<<31-1 || percent < 0 || percent > 100 {
		return fmt.Errorf("%w: a hold of 0..2147483647 cents and 0..100 percent", ErrInvalid)
	}
	tag, err := l.pool.Exec(ctx, `UPDATE organizers SET replacement_hold_cents = $2, replacement_hold_percent = $3 WHERE org_id = $1`,
		org, cents, percent)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("%w: organizer %d", ErrNotFound, org)
	}
	if err != nil {
		return fmt.Errorf("ledger: replacement hold: %w", err)
	}
	return nil
}

// replacementHold is the hold for a balance: the larger of cents and
// percent of it, at most the balance.
func replacementHold(balance, cents int64, percent int) int64 {
	h := max(cents, balance*int64(percent)/100)
	return max(0, min(h, balance))
}

// ReplaceCard replaces card Old (active or blocked: lost or stolen) by
// card New (active) at once: Old is marked replaced, which keeps it on the
// blocklist for good, its pending loads move to New, and its credit less
// the organizer's hold moves to New as a pending load (old card → pending
// loads), which the writer confirms with the card write (LoadPending).
// The hold stays on Old until SettleReplacements moves what is left of it.
// Repeating a request with the same ID and cards returns the same
// replacement. It fails with ErrNotFound for an unknown card, ErrExists
// when Old was replaced before, ErrConflict when Old is refunded or New
// not active, ErrNotInStock when the store does not hold New by the
// custody log, and ErrInvalid for the same card twice, a bad reason or a
// store's replacement without New's batch and slot.
func (l *Ledger) ReplaceCard(ctx context.Context, org int64, req ReplaceRequest) (Replacement, error) {
	if err := checkReason(req.Reason); err != nil {
		return Replacement{}, err
	}
	if bytes.Equal(req.Old, req.New) {
		return Replacement{}, fmt.Errorf("%w: a card cannot replace itself", ErrInvalid)
	}
	if req.Store != "" && (req.Batch <= 0 || req.Slot <= 0) {
		return Replacement{}, fmt.Errorf("%w: the new card's batch and slot are required", ErrInvalid)
	}
	if req.ID == (txid.ID{}) {
		req.ID = l.newID()
	}
	var out Replacement
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		states, err := lockCards(ctx, tx, org, [][]byte{req.Old, req.New})
		if err != nil {
			return err
		}
		old, nw := states[string(req.Old)], states[string(req.New)]
		if old == nil {
			return fmt.Errorf("%w: card %s", ErrNotFound, terminaltx.CardHex(req.Old))
		}
		if nw == nil {
			return fmt.Errorf("%w: card %s", ErrNotFound, terminaltx.CardHex(req.New))
		}
		if r, err := replacementOf(ctx, tx, org, req.Old); err == nil {
			if r.ID == req.ID && bytes.Equal(r.New, req.New) {
				out = r
				return nil
			}
			return fmt.Errorf("%w: card %s was replaced by card %s", ErrExists, terminaltx.CardHex(req.Old), terminaltx.CardHex(r.New))
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if old.status != "active" && old.status != "blocked" {
			return fmt.Errorf("%w: card %s is %s", ErrConflict, terminaltx.CardHex(req.Old), old.status)
		}
		if nw.status != "active" {
			return fmt.Errorf("%w: the new card %s is %s", ErrConflict, terminaltx.CardHex(req.New), nw.status)
		}
		if old.event != nw.event {
			return fmt.Errorf("%w: the new card is of event %s, the old of %s", ErrConflict, nw.event, old.event)
		}
		if req.Store != "" {
			if err := takeFromStock(ctx, tx, org, req.Store, req.New, req.Batch, req.Slot, req.ID, l.now()); err != nil {
				return err
			}
		}
		var cents int64
		var percent int
		if err := tx.QueryRow(ctx, `SELECT replacement_hold_cents, replacement_hold_percent FROM organizers WHERE org_id = $1`,
			org).Scan(&cents, &percent); err != nil {
			return err
		}
		now := l.now()
		out = Replacement{ID: req.ID, Old: req.Old, New: req.New, Balance: max(old.balance, 0)}
		out.Hold = replacementHold(out.Balance, cents, percent)
		if _, err := tx.Exec(ctx, `UPDATE cards SET status = 'replaced' WHERE org_id = $1 AND card_id = $2`, org, req.Old); err != nil {
			return err
		}
		// Online top-ups never written onto the old card go to the new one.
		if _, err := tx.Exec(ctx, `UPDATE topups SET card_id = $3 WHERE org_id = $1 AND card_id = $2 AND status = 'pending'`,
			org, req.Old, req.New); err != nil {
			return err
		}
		var v int64
		if err := tx.QueryRow(ctx, `SELECT version FROM card_blocklist WHERE org_id = $1 AND card_id = $2`, org, req.Old).Scan(&v); err != nil {
			return err
		}
		out.Blocklist = uint64(v)
		var first *pgtype.UUID
		if move := out.Balance - out.Hold; move > 0 {
			out.FirstLoad = req.ID
			first = &pgtype.UUID{Bytes: req.ID, Valid: true}
			if err := l.transferLoad(ctx, tx, org, old, req.New, req.Store, req.ID, move, "card_replacement"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO card_replacements (org_id, replacement_id, old_card, new_card, store_id, actor,
				balance, hold, first_load, blocklist_version, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, org, pgtype.UUID{Bytes: req.ID, Valid: true}, req.Old, req.New,
			req.Store, req.Actor, out.Balance, out.Hold, first, v, now); err != nil {
			return err
		}
		return l.recordAlertAction(ctx, tx, org, req.Old, nil, "replace", req.Actor,
			fmt.Sprintf("%s; replaced by card %s", req.Reason, terminaltx.CardHex(req.New)), now)
	})
	if err != nil {
		return Replacement{}, fmt.Errorf("ledger: replace card: %w", err)
	}
	l.log.Info("card replaced", "org", org, "old", terminaltx.CardHex(req.Old), "new", terminaltx.CardHex(req.New),
		"balance", out.Balance, "hold", out.Hold, "blocklist", out.Blocklist)
	return out, nil
}

// transferLoad moves amount from the locked card old to a pending load id
// of card to (old card → pending loads). The old card's non-refundable
// credit (vouchers, comps) goes first, as payments spend it first: that
// part leaves the old card's non-refundable account and rides on the load
// as non-refundable, so the new card gets it back as credit a refund does
// not pay (LoadPending puts it in the new card's part).
func (l *Ledger) transferLoad(ctx context.Context, tx pgx.Tx, org int64, old *cardState, to []byte, store string, id txid.ID, amount int64, kind string) error {
	pending, err := accountID(ctx, tx, org, PendingLoads, "")
	if err != nil {
		return err
	}
	nrs, err := readNonRefundable(ctx, tx, org, [][]byte{old.card})
	if err != nil {
		return err
	}
	nr := nrs[string(old.card)]
	nrAmount := min(max(nr.balance, 0), amount)
	if _, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, store_id, amount, nonrefundable, status, created_at)
		VALUES ($1, $2, $3, 'transfer', $4, $5, $6, 'pending', $7)`, org, pgtype.UUID{Bytes: id, Valid: true}, to, store, amount,
		nrAmount, l.now()); err != nil {
		return err
	}
	e := entry{id: id, kind: kind, event: old.event, ref: terminaltx.CardHex(old.card), at: l.now(), postings: transfer(old.account, pending, amount)}
	if nrAmount > 0 {
		release, err := releaseNonRefundable(ctx, tx, org, nonRefundable{account: nr.account, balance: nrAmount})
		if err != nil {
			return err
		}
		e.postings = append(e.postings, release...)
	}
	return writeEntries(ctx, tx, org, []entry{e}, map[int64]bool{old.account: true})
}

const replacementColumns = `replacement_id, old_card, new_card, balance, hold, first_load, rest_load, blocklist_version, settled_at IS NOT NULL, coalesce(rest_amount, 0)`

func scanReplacement(row pgx.Row) (Replacement, error) {
	var r Replacement
	var first, rest pgtype.UUID
	var v int64
	if err := row.Scan(&r.ID, &r.Old, &r.New, &r.Balance, &r.Hold, &first, &rest, &v, &r.Settled, &r.Rest); err != nil {
		return r, err
	}
	r.FirstLoad, r.RestLoad, r.Blocklist = txid.ID(first.Bytes), txid.ID(rest.Bytes), uint64(v)
	return r, nil
}

func replacementOf(ctx context.Context, tx pgx.Tx, org int64, old []byte) (Replacement, error) {
	r, err := scanReplacement(tx.QueryRow(ctx, `SELECT `+replacementColumns+` FROM card_replacements WHERE org_id = $1 AND old_card = $2`, org, old))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("%w: no replacement of card %s", ErrNotFound, terminaltx.CardHex(old))
	}
	return r, err
}

// CardReplacement returns the replacement of card old, or ErrNotFound.
func (l *Ledger) CardReplacement(ctx context.Context, org int64, old []byte) (Replacement, error) {
	var r Replacement
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		r, err = replacementOf(ctx, tx, org, old)
		return err
	})
	return r, err
}

// SettleReplacements moves what is left of the hold of every open
// replacement that is due to its new card, as a second pending load (old
// card → pending loads), and returns the replacements it settled. A
// replacement is due when every active terminal of the old card's event
// has synced past the blocklist version that listed the old card
// (BlocklistSynced: every debit it took before refusing the card has
// reached the ledger and was paid from the hold), or when window has
// passed since the replacement. A debit of the old card that arrives
// later is paid to its merchant from the organizer's refund losses, with
// an alert (see Upload).
func (l *Ledger) SettleReplacements(ctx context.Context, org int64, window time.Duration) ([]Replacement, error) {
	if window < 0 {
		return nil, fmt.Errorf("%w: negative window", ErrInvalid)
	}
	var out []Replacement
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `SELECT r.replacement_id, r.old_card, r.new_card, r.store_id FROM card_replacements r
			JOIN cards c ON c.org_id = r.org_id AND c.card_id = r.old_card
			WHERE r.org_id = $1 AND r.settled_at IS NULL AND (r.created_at <= $2 OR NOT EXISTS (
				SELECT 1 FROM terminals t WHERE t.org_id = r.org_id AND t.status = 'active'
				AND (t.event_id IS NULL OR t.event_id = c.event_id) AND t.blocklist_synced < r.blocklist_version))
			ORDER BY r.created_at, r.replacement_id FOR UPDATE OF r SKIP LOCKED`, org, l.now().Add(-window))
		if err != nil {
			return err
		}
		type due struct {
			id       pgtype.UUID
			old, new []byte
			store    string
		}
		var dues []due
		var d due
		if _, err := pgx.ForEachRow(rows, []any{&d.id, &d.old, &d.new, &d.store}, func() error {
			dues = append(dues, due{d.id, bytes.Clone(d.old), bytes.Clone(d.new), d.store})
			return nil
		}); err != nil {
			return err
		}
		if len(dues) == 0 {
			return nil
		}
		cards := make([][]byte, len(dues))
		for i, d := range dues {
			cards[i] = d.old
		}
		states, err := lockCards(ctx, tx, org, cards)
		if err != nil {
			return err
		}
		for _, d := range dues {
			st := states[string(d.old)]
			if st == nil {
				return fmt.Errorf("%w: card %s", ErrNotFound, terminaltx.CardHex(d.old))
			}
			rest := max(st.balance, 0)
			var restLoad *pgtype.UUID
			if rest > 0 {
				id := l.newID()
				restLoad = &pgtype.UUID{Bytes: id, Valid: true}
				if err := l.transferLoad(ctx, tx, org, st, d.new, d.store, id, rest, "card_replacement_rest"); err != nil {
					return err
				}
			}
			r, err := scanReplacement(tx.QueryRow(ctx, `UPDATE card_replacements SET rest_amount = $3, rest_load = $4, settled_at = $5
				WHERE org_id = $1 AND replacement_id = $2 RETURNING `+replacementColumns, org, d.id, rest, restLoad, l.now()))
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: settle replacements: %w", err)
	}
	for _, r := range out {
		l.log.Info("card replacement settled", "org", org, "old", terminaltx.CardHex(r.Old), "new", terminaltx.CardHex(r.New), "rest", r.Rest)
	}
	return out, nil
}
