package ledger

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkProductReport measures the product report on a season's
// volume: 100,000 posted debits of one event over fourteen business days
// at five merchants, four in five with one to three items (about 160,000
// item rows), written straight into the tables. It checks first, with
// EXPLAIN, that one day's report reads the day's transactions through
// terminal_txs_at. (When one day is a third of the organizer's
// transactions, as in a three-day festival, PostgreSQL rightly reads the
// table instead; the whole event's report reads all of them either way.)
//
//	go test ./ledger -run '^$' -bench ProductReport -benchtime 20x
func BenchmarkProductReport(b *testing.B) {
	const txs, cards = 100_000, 2000
	l := newLedger(b)
	ctx := context.Background()
	uids := make([][]byte, cards)
	for i := range uids {
		uids[i] = newCard(i + 1).uid
	}
	require.NoError(b, l.RegisterCards(ctx, org, "fest", uids))
	for _, m := range []string{"m0", "m1", "m2", "m3", "m4"} {
		require.NoError(b, l.AddMerchant(ctx, org, m, m))
	}
	now := time.Now().UTC().Truncate(time.Second)
	// Items first (every fifth transaction has none), then the
	// transactions with their items' sum as the amount.
	_, err := l.pool.Exec(ctx, `INSERT INTO terminal_tx_items (org_id, txn_id, line, merchant_id, at, product_id, quantity,
			unit_price, vat_rate_bp, menu_version)
		SELECT $1, md5(g::text)::uuid, line, 'm' || (g % 5), $2::timestamptz - make_interval(secs => g * 12.096),
			'p' || ((g + line) % 12), 1 + (g + line) % 3, 100 + (g * 7 + line * 13) % 900, (ARRAY[0, 900, 2100])[1 + (g + line) % 3], 1
		FROM generate_series(1, $3) g CROSS JOIN LATERAL generate_series(1, 1 + g % 3) line WHERE g % 5 <> 0`, org, now, txs)
	require.NoError(b, err)
	_, err = l.pool.Exec(ctx, `INSERT INTO terminal_txs (org_id, txn_id, terminal_id, terminal_seq, card_id, card_seq, amount,
			balance_before, balance_after, merchant_id, at, received_at, signature, status)
		SELECT $1, md5(g::text)::uuid, 'bench-' || (g % 10), g, '\x040000'::bytea || int4send(1 + g % $4), g,
			coalesce((SELECT sum(quantity * unit_price) FROM terminal_tx_items i WHERE i.org_id = $1 AND i.txn_id = md5(g::text)::uuid), 500),
			0, 0, 'm' || (g % 5), $2::timestamptz - make_interval(secs => g * 12.096),
			$2::timestamptz - make_interval(secs => g * 12.096) + interval '1 second' * (g % 7200), '\x00', 'posted'
		FROM generate_series(1, $3) g`, org, now, txs, cards)
	require.NoError(b, err)
	_, err = l.pool.Exec(ctx, `ANALYZE terminal_txs; ANALYZE terminal_tx_items; ANALYZE cards`)
	require.NoError(b, err)

	bd, err := l.BusinessDay(ctx, org)
	require.NoError(b, err)
	day := bd.Of(now).AddDate(0, 0, -1)
	start, end := bd.Bounds(day)
	var plan []string
	rows, err := l.pool.Query(ctx, "EXPLAIN "+reportTxs(true, productLinesSQL), org, "fest", bd.ZoneName(), bd.EndHour, start, end)
	require.NoError(b, err)
	for rows.Next() {
		var s string
		require.NoError(b, rows.Scan(&s))
		plan = append(plan, s)
	}
	require.NoError(b, rows.Err())
	b.Logf("one day's product lines:\n%s", strings.Join(plan, "\n"))
	require.Contains(b, strings.Join(plan, "\n"), "terminal_txs_at", "one day's transactions by their time")

	all, err := l.Products(ctx, org, "fest", time.Time{})
	require.NoError(b, err)
	require.Equal(b, int64(txs), all.Count)
	ev, err := l.Event(ctx, org, "fest")
	require.NoError(b, err)
	var total int64
	for _, s := range ev.Sales {
		total += s.Amount
	}
	require.Equal(b, total, all.Total, "the product report's total is the merchants'")

	b.Run("day", func(b *testing.B) {
		for b.Loop() {
			r, err := l.Products(ctx, org, "fest", day)
			if err != nil || r.Count == 0 {
				b.Fatal(err, r.Count)
			}
		}
	})
	b.Run("event", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Products(ctx, org, "fest", time.Time{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
