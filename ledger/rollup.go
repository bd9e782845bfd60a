package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The dashboard's totals (migration 033): terminal_sales and card_totals
// hold what the rows of terminal_txs and postings below the organizer's
// mark (dashboard_rollups.upto, a transaction id) add up to; a reader adds
// the rows at or above the mark in the same snapshot (Event). RollUp moves
// the mark on, so that a reader has only the last seconds' rows to add.

// DefaultRollUpEvery is how often serve rolls up the dashboard's totals.
// A reader adds what came since, so the interval bounds its work, not its
// accuracy: at a thousand payments a second the dashboard adds up about
// two thousand rows.
const DefaultRollUpEvery = 2 * time.Second

// rollUpLock keys the advisory lock (with the organizer) that lets one
// roll-up at a time run per organizer, across every serve.
const rollUpLock = 0x10_0c_a2_d0

// RollUp adds the rows of every organizer's transactions that ended since
// its last roll-up to the dashboard's totals. Roll-ups from several serve
// processes take turns: one that finds another running for an organizer
// leaves that organizer to it.
func (l *Ledger) RollUp(ctx context.Context) error {
	rows, err := l.pool.Query(ctx, `SELECT org_id FROM organizers ORDER BY org_id`)
	if err != nil {
		return fmt.Errorf("ledger: roll-up: %w", err)
	}
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("ledger: roll-up: %w", err)
	}
	var errs []error
	for _, org := range orgs {
		// One organizer that fails leaves the others' roll-ups to run.
		errs = append(errs, l.rollUp(ctx, org))
	}
	return errors.Join(errs...)
}

func (l *Ledger) rollUp(ctx context.Context, org int64) error {
	// One snapshot for all of it: its xmin is the new mark, the oldest
	// transaction still running when it was taken; every transaction
	// below it has ended, and those that committed are in the snapshot.
	err := pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		// An organizer with no new rows is left as it is: moving its mark
		// would write (and take a transaction id) every few seconds for
		// nothing.
		var locked, rows bool
		var from, to int64
		if err := tx.QueryRow(ctx, `WITH m AS (SELECT coalesce((SELECT upto FROM dashboard_rollups WHERE org_id = $2), 0) AS upto,
					pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin)
				SELECT pg_try_advisory_xact_lock($1, hashint8($2)), m.upto, m.xmin,
					EXISTS (SELECT 1 FROM terminal_txs WHERE org_id = $2 AND xact >= m.upto AND xact < m.xmin)
					OR EXISTS (SELECT 1 FROM postings WHERE org_id = $2 AND xact >= m.upto AND xact < m.xmin)
				FROM m`, rollUpLock, org).Scan(&locked, &from, &to, &rows); err != nil {
			return err
		}
		if !locked || to <= from || !rows {
			return nil
		}
		b := &pgx.Batch{}
		b.Queue(`SET LOCAL jit = off`) // as in Event: the guess of the rows above the mark is too high
		b.Queue(`INSERT INTO terminal_sales AS s (org_id, event_id, terminal_id, hour, merchant_id, status, count, amount)
			SELECT $1, event_id, terminal_id, hour, merchant_id, status, count, amount FROM ledger_sales_since($1, $2, $3)
			ON CONFLICT (org_id, event_id, terminal_id, hour, merchant_id, status)
			DO UPDATE SET count = s.count + EXCLUDED.count, amount = s.amount + EXCLUDED.amount`, org, from, to)
		b.Queue(`INSERT INTO card_totals AS s (org_id, event_id, with_money, outstanding)
			SELECT $1, event_id, with_money, outstanding FROM ledger_card_totals_since($1, $2, $3)
			ON CONFLICT (org_id, event_id)
			DO UPDATE SET with_money = s.with_money + EXCLUDED.with_money, outstanding = s.outstanding + EXCLUDED.outstanding`, org, from, to)
		b.Queue(`INSERT INTO dashboard_rollups (org_id, upto) VALUES ($1, $2)
			ON CONFLICT (org_id) DO UPDATE SET upto = EXCLUDED.upto`, org, to)
		return tx.SendBatch(ctx, b).Close()
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "40001" {
		// Another roll-up moved the mark after this one's snapshot: its
		// totals stand, and this one's would count rows twice.
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: roll-up of organizer %d: %w", org, err)
	}
	return nil
}

// RollUpEvery rolls up the dashboard's totals every d until ctx is done,
// logging what fails (the next one tries again; readers stay exact).
func (l *Ledger) RollUpEvery(ctx context.Context, d time.Duration, log *slog.Logger) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if err := l.RollUp(ctx); err != nil && ctx.Err() == nil {
			log.Warn("ledger: dashboard roll-up", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
