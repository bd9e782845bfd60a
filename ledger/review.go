package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Card alerts and HQ's review of them: listing, reviewing an alert,
// unblocking a card whose blocking alerts are reviewed. Every review and
// unblocking is recorded in card_alert_actions with who did it and why.

// ErrNotReviewed: the card has a blocking alert that HQ has not reviewed,
// so it may be neither unblocked nor refunded.
var ErrNotReviewed = errors.New("ledger: the card's blocking alert is not reviewed")

// Alert is an alert raised for a card. Blocking alerts (a clone, chain or
// unfunded debit among terminal-signed transactions) blocked the card;
// the others (write_conflict, wrong_merchant, terminal_revoked,
// sequence_gap) are for HQ only.
type Alert struct {
	ID       txid.ID
	Card     []byte
	Kind     string // a Reason
	Txn      txid.ID
	OtherTxn *txid.ID
	Detail   string
	Blocking bool
	RaisedAt time.Time
	// Review is HQ's review, nil while the alert is open.
	Review *AlertReview
}

// AlertReview is HQ's review of an alert.
type AlertReview struct {
	By, Reason string
	At         time.Time
}

// State is "open" or "reviewed".
func (a Alert) State() string {
	if a.Review != nil {
		return "reviewed"
	}
	return "open"
}

const alertColumns = `alert_id, card_id, kind, txn_id, other_txn_id, detail, blocking, raised_at, reviewed_at, reviewed_by, review_reason`

func scanAlert(row pgx.Row) (Alert, error) {
	var a Alert
	var other pgtype.UUID
	var at *time.Time
	var by, reason *string
	if err := row.Scan(&a.ID, &a.Card, &a.Kind, &a.Txn, &other, &a.Detail, &a.Blocking, &a.RaisedAt, &at, &by, &reason); err != nil {
		return Alert{}, err
	}
	if other.Valid {
		o := txid.ID(other.Bytes)
		a.OtherTxn = &o
	}
	if at != nil {
		a.Review = &AlertReview{By: *by, Reason: *reason, At: *at}
	}
	return a, nil
}

// Alerts lists the alerts of an organizer, oldest first, open and
// reviewed (Alert.State): all but the sequence gaps that a late upload
// closed since.
func (l *Ledger) Alerts(ctx context.Context, org int64) ([]Alert, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+alertColumns+` FROM card_alerts
		WHERE org_id = $1 AND resolved_at IS NULL ORDER BY raised_at, alert_id`, org)
	if err != nil {
		return nil, fmt.Errorf("ledger: alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("ledger: alerts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// checkReason checks HQ's reason for a review or an unblocking: 1 to 500
// characters of printable UTF-8.
func checkReason(reason string) error {
	if reason == "" || len(reason) > 500 || !utf8.ValidString(reason) {
		return fmt.Errorf("%w: a reason of 1 to 500 characters is required", ErrInvalid)
	}
	for _, r := range reason {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: the reason must be printable text on one line", ErrInvalid)
		}
	}
	return nil
}

// ReviewAlert records that actor (HQ) reviewed alert id of the organizer
// for reason, and returns the alert as reviewed. A review does not
// unblock the card (UnblockCard) but lets it be unblocked or refunded. It
// fails with ErrNotFound for an alert the organizer does not have,
// ErrExists when the alert was reviewed before and ErrInvalid for a
// missing or bad reason.
func (l *Ledger) ReviewAlert(ctx context.Context, org int64, id txid.ID, actor, reason string) (Alert, error) {
	if err := checkReason(reason); err != nil {
		return Alert{}, err
	}
	var out Alert
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var card []byte
		err := tx.QueryRow(ctx, `SELECT card_id FROM card_alerts WHERE org_id = $1 AND alert_id = $2`,
			org, pgtype.UUID{Bytes: id, Valid: true}).Scan(&card)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: alert %s", ErrNotFound, id)
		}
		if err != nil {
			return err
		}
		// The card's lock orders the review with refunds and unblocking.
		if _, err := lockCard(ctx, tx, org, card); err != nil {
			return err
		}
		now := l.now()
		out, err = scanAlert(tx.QueryRow(ctx, `UPDATE card_alerts SET reviewed_at = $3, reviewed_by = $4, review_reason = $5
			WHERE org_id = $1 AND alert_id = $2 AND reviewed_at IS NULL RETURNING `+alertColumns,
			org, pgtype.UUID{Bytes: id, Valid: true}, now, actor, reason))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: alert %s was reviewed before", ErrExists, id)
		}
		if err != nil {
			return err
		}
		return l.recordAlertAction(ctx, tx, org, card, &id, "review", actor, reason, now)
	})
	if err != nil {
		return Alert{}, fmt.Errorf("ledger: review alert: %w", err)
	}
	l.log.Info("card alert reviewed", "org", org, "alert", id.String(), "card", terminaltx.CardHex(out.Card), "by", actor)
	return out, nil
}

// UnblockCard sets a blocked card of the organizer active again, for
// actor (HQ) with reason, once every alert that blocked it is reviewed.
// It fails with ErrNotReviewed (naming the alert) while one is not,
// ErrConflict for a card that is not blocked, ErrNotFound for an unknown
// card and ErrInvalid for a missing or bad reason.
func (l *Ledger) UnblockCard(ctx context.Context, org int64, card []byte, actor, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, card)
		if err != nil {
			return err
		}
		if st.status != "blocked" {
			return fmt.Errorf("%w: card %s is %s, not blocked", ErrConflict, terminaltx.CardHex(card), st.status)
		}
		if err := checkReviewed(ctx, tx, org, card); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE cards SET status = 'active' WHERE org_id = $1 AND card_id = $2`, org, card); err != nil {
			return err
		}
		return l.recordAlertAction(ctx, tx, org, card, nil, "unblock", actor, reason, l.now())
	})
	if err != nil {
		return fmt.Errorf("ledger: unblock card: %w", err)
	}
	l.log.Info("card unblocked", "org", org, "card", terminaltx.CardHex(card), "by", actor)
	return nil
}

// checkReviewed fails with ErrNotReviewed, naming the alert, when the card
// has a blocking alert HQ has not reviewed. The card must be locked.
func checkReviewed(ctx context.Context, tx pgx.Tx, org int64, card []byte) error {
	var open pgtype.UUID
	err := tx.QueryRow(ctx, `SELECT alert_id FROM card_alerts WHERE org_id = $1 AND card_id = $2
		AND blocking AND reviewed_at IS NULL ORDER BY raised_at LIMIT 1`, org, card).Scan(&open)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: alert %s of card %s", ErrNotReviewed, txid.ID(open.Bytes), terminaltx.CardHex(card))
}

func (l *Ledger) recordAlertAction(ctx context.Context, tx pgx.Tx, org int64, card []byte, alert *txid.ID, action, actor, reason string, at time.Time) error {
	var a *pgtype.UUID
	if alert != nil {
		a = &pgtype.UUID{Bytes: *alert, Valid: true}
	}
	_, err := tx.Exec(ctx, `INSERT INTO card_alert_actions (org_id, action_id, card_id, alert_id, action, actor, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, org, pgtype.UUID{Bytes: l.newID(), Valid: true}, card, a, action, actor, reason, at)
	return err
}
