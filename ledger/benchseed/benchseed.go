// Package benchseed fills a ledger fast with a large event for benchmarks
// (the HQ console's, scripts/bench console): cards through the ledger's
// bulk registration, their credit and top-ups written directly, and the
// terminal transactions with COPY through the ledger's own triggers (they
// post the debits, as an upload does, and keep the running totals). It
// lives under ledger because it writes the ledger's tables; nothing but
// benchmarks uses it.
package benchseed

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/ledger"
)

// Event is the shape of the event Seed writes: Cards cards (at most
// 2^24) with Txs terminal transactions over Days days, at Merchants bars
// (bar-00, bar-01, ...) with Terminals terminals (term-000, ...).
type Event struct {
	Cards, Txs, Merchants, Terminals, Days int
}

// Seed creates organizer org with event "fest", store "store", e's
// merchants and terminals, and fills them.
func Seed(ctx context.Context, l *ledger.Ledger, pool *pgxpool.Pool, org int64, e Event) error {
	if e.Cards <= 0 || e.Cards > 1<<24 || e.Txs < 0 || e.Merchants <= 0 || e.Terminals <= 0 || e.Days <= 0 {
		return fmt.Errorf("benchseed: bad event shape %+v", e)
	}
	if err := l.CreateOrganizer(ctx, org, "Bench"); err != nil {
		return err
	}
	if err := l.AddEvent(ctx, org, "fest", "Fest", time.Time{}); err != nil {
		return err
	}
	if err := l.AddStore(ctx, org, "store", "Store"); err != nil {
		return err
	}
	merchantAccount := make([]int64, e.Merchants)
	for m := range e.Merchants {
		id := fmt.Sprintf("bar-%02d", m)
		if err := l.AddMerchant(ctx, org, id, "Bar"); err != nil {
			return err
		}
		if err := pool.QueryRow(ctx, `SELECT account_id FROM accounts WHERE org_id = $1 AND kind = 'merchant' AND ref = $2`, org, id).
			Scan(&merchantAccount[m]); err != nil {
			return err
		}
	}
	for i := range e.Terminals {
		if _, err := l.CreateTerminal(ctx, org, fmt.Sprintf("term-%03d", i), fmt.Sprintf("bar-%02d", i%e.Merchants), time.Hour); err != nil {
			return err
		}
	}
	cards := make([][]byte, e.Cards)
	for i := range cards {
		cards[i] = []byte{0x04, 0x70, 0x20, 0x30, byte(i >> 16), byte(i >> 8), byte(i)}
	}
	for i := 0; i < len(cards); i += 10_000 {
		if err := l.RegisterCards(ctx, org, "fest", cards[i:min(i+10_000, len(cards))]); err != nil {
			return err
		}
	}
	// Every card's credit: a top-up each (one in ten online, one in fifty
	// still pending), the loaded ones on the card. Balances change only
	// through postings (a trigger guards them): written here as a
	// replica would, which skips the guard.
	const credit = 10_000
	rows := make([][]any, e.Cards)
	for i, c := range cards {
		var id [16]byte
		_, _ = rand.Read(id[:])
		ch, status, store := "cash", "loaded", "store"
		if i%10 == 0 {
			ch, store = "online", ""
		}
		if i%50 == 1 {
			status = "pending"
		}
		rows[i] = []any{org, pgtype.UUID{Bytes: id, Valid: true}, c, ch, store, int64(credit), status}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"topups"}, []string{"org_id", "topup_id", "card_id", "channel", "store_id", "amount", "status"},
		pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts a SET balance = a.side * $2 FROM cards c
		WHERE c.org_id = $1 AND a.org_id = c.org_id AND a.account_id = c.account_id`, org, credit); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	cardAccount := make([]int64, e.Cards)
	{
		r, err := pool.Query(ctx, `SELECT c.card_id, c.account_id FROM cards c WHERE c.org_id = $1`, org)
		if err != nil {
			return err
		}
		byID := map[string]int64{}
		var id []byte
		var acc int64
		if _, err := pgx.ForEachRow(r, []any{&id, &acc}, func() error { byID[string(id)] = acc; return nil }); err != nil {
			return err
		}
		for i, c := range cards {
			cardAccount[i] = byID[string(c)]
		}
	}
	// The transactions: each terminal's in its own sequence, spread over
	// the days; one in a thousand held (a revoked terminal's).
	t0 := time.Now().Add(-time.Duration(e.Days) * 24 * time.Hour).Truncate(time.Hour)
	span := int64(time.Duration(e.Days) * 24 * time.Hour)
	seqs := make([]int64, e.Terminals)
	sig := make([]byte, 64)
	const chunk = 50_000
	for done := 0; done < e.Txs; done += chunk {
		n := min(chunk, e.Txs-done)
		rows := make([][]any, n)
		for k := range n {
			i := done + k
			term := i % e.Terminals
			seqs[term]++
			card := (i * 7919) % e.Cards
			var id [16]byte
			_, _ = rand.Read(id[:])
			amount := int64(1 + i%9)
			status, reason := "posted", ""
			var ca, ma any = cardAccount[card], merchantAccount[term%e.Merchants]
			if i%1000 == 999 {
				status, reason, ca, ma = "held", "terminal_revoked", nil, nil
			}
			at := t0.Add(time.Duration(int64(i) * span / int64(e.Txs))).Truncate(time.Millisecond)
			rows[k] = []any{org, pgtype.UUID{Bytes: id, Valid: true}, fmt.Sprintf("term-%03d", term), seqs[term], cards[card], int64(i / e.Cards),
				amount, int64(credit), int64(credit) - amount, fmt.Sprintf("bar-%02d", term%e.Merchants), at, sig, status, reason, false, ca, ma}
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"terminal_txs"}, []string{"org_id", "txn_id", "terminal_id", "terminal_seq", "card_id", "card_seq",
			"amount", "balance_before", "balance_after", "merchant_id", "at", "signature", "status", "hold_reason", "chained",
			"card_account", "merchant_account"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return err
	}
	return nil
}
