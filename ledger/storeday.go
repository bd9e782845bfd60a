package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/input"
)

// Store days: the cash a store counted at the end of a day against what
// the ledger expects.

// StoreDay is a store's close of one business day.
type StoreDay struct {
	Store string
	Day   time.Time // the business day's date, as midnight UTC
	// Start and End bound the business day (BusinessDay.Bounds).
	Start, End time.Time
	Expected   int64 // cash taken that day according to the ledger
	Counted    int64
}

// Difference is counted minus expected cash: negative when cash is missing.
func (d StoreDay) Difference() int64 { return d.Counted - d.Expected }

// CloseStoreDay records the cash a store counted at the end of a business
// day (the date of day; the organizer's BusinessDay) against what the
// ledger expects. A day closes once (ErrDayClosed).
func (l *Ledger) CloseStoreDay(ctx context.Context, org int64, store string, day time.Time, counted int64) (StoreDay, error) {
	if err := input.AmountOrZero("counted", counted); err != nil {
		return StoreDay{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	d := StoreDay{Store: store, Day: time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC), Counted: counted}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		bd, err := businessDay(ctx, tx, org)
		if err != nil {
			return err
		}
		d.Start, d.End = bd.Bounds(d.Day)
		cash, err := storeCash(ctx, tx, org, store)
		if err != nil {
			return err
		}
		if d.Expected, err = expectedCash(ctx, tx, org, store, cash, d.Start, d.End); err != nil {
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

// expectedCash sums what a store's cash account took from start to end.
func expectedCash(ctx context.Context, q queryRower, org int64, store string, cash int64, start, end time.Time) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `SELECT coalesce(sum(p.amount), 0)::bigint FROM journal j
		JOIN postings p ON p.org_id = j.org_id AND p.txn_id = j.txn_id AND p.account_id = $3
		WHERE j.org_id = $1 AND j.kind IN ('cash_topup', 'card_sale') AND j.ref = $2 AND j.at >= $4 AND j.at < $5`,
		org, store, cash, start, end).Scan(&v)
	return v, err
}
