package ledger

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StoreDayReport is one store's business day: cash expected by the
// ledger against cash counted at the close, and cards received, sold and
// in stock.
type StoreDayReport struct {
	Store string    `json:"store"`
	Day   time.Time `json:"day"` // the business day's date, as midnight UTC
	// Start and End bound the business day: it counts what happened from
	// Start up to End (the organizer's day-end hour in its time zone).
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	ExpectedCash  int64     `json:"expected_cash"`
	CountedCash   *int64    `json:"counted_cash"` // nil: day not closed
	Difference    *int64    `json:"difference"`   // counted - expected
	CardsReceived int64     `json:"cards_received"`
	CardsSold     int64     `json:"cards_sold"`
	CardsInStock  int64     `json:"cards_in_stock"` // at the end of the day
	// PendingLoads is the cash the store took that day for credit that is
	// still not confirmed on its cards (counted in ExpectedCash).
	PendingLoads int64 `json:"pending_loads"`
}

// StoreDays reports every store of an organizer for each business day
// (BusinessDay) from the date of from to that of to inclusive, ordered by
// store and day.
func (l *Ledger) StoreDays(ctx context.Context, org int64, from, to time.Time) ([]StoreDayReport, error) {
	from = time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	to = time.Date(to.Year(), to.Month(), to.Day(), 0, 0, 0, 0, time.UTC)
	if to.Before(from) || to.Sub(from) > 366*24*time.Hour {
		return nil, fmt.Errorf("%w: the period must run forwards and span at most a year", ErrInvalid)
	}
	bd, err := l.BusinessDay(ctx, org)
	if err != nil {
		return nil, err
	}
	var dates []time.Time
	var starts, ends []time.Time
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		s, e := bd.Bounds(d)
		dates, starts, ends = append(dates, d), append(starts, s), append(ends, e)
	}
	rows, err := l.pool.Query(ctx, `
		WITH days AS (SELECT s.store_id, s.cash_account_id, d.date, d.day, d.next
			FROM stores s CROSS JOIN unnest($2::date[], $3::timestamptz[], $4::timestamptz[]) AS d(date, day, next)
			WHERE s.org_id = $1)
		SELECT d.store_id, d.date, d.day, d.next,
			coalesce((SELECT sum(p.amount) FROM journal j
				JOIN postings p ON p.org_id = j.org_id AND p.txn_id = j.txn_id AND p.account_id = d.cash_account_id
				WHERE j.org_id = $1 AND j.kind IN ('cash_topup', 'card_sale') AND j.ref = d.store_id
				AND j.at >= d.day AND j.at < d.next), 0)::bigint,
			c.counted_cash,
			coalesce((SELECT sum(count) FROM store_card_moves m WHERE m.org_id = $1 AND m.store_id = d.store_id
				AND m.kind = 'received' AND m.at >= d.day AND m.at < d.next), 0)::bigint,
			coalesce((SELECT sum(count) FROM store_card_moves m WHERE m.org_id = $1 AND m.store_id = d.store_id
				AND m.kind = 'sold' AND m.at >= d.day AND m.at < d.next), 0)::bigint,
			coalesce((SELECT sum(CASE WHEN kind = 'received' THEN count ELSE -count END) FROM store_card_moves m
				WHERE m.org_id = $1 AND m.store_id = d.store_id AND m.at < d.next), 0)::bigint,
			coalesce((SELECT sum(amount) FROM topups t WHERE t.org_id = $1 AND t.channel = 'cash' AND t.store_id = d.store_id
				AND t.status = 'pending' AND t.created_at >= d.day AND t.created_at < d.next), 0)::bigint
		FROM days d LEFT JOIN store_day_closes c ON c.org_id = $1 AND c.store_id = d.store_id AND c.day = d.date
		ORDER BY d.store_id, d.date`, org, dates, starts, ends)
	if err != nil {
		return nil, fmt.Errorf("ledger: store report: %w", err)
	}
	var out []StoreDayReport
	var r StoreDayReport
	_, err = pgx.ForEachRow(rows, []any{&r.Store, &r.Day, &r.Start, &r.End, &r.ExpectedCash, &r.CountedCash, &r.CardsReceived, &r.CardsSold, &r.CardsInStock, &r.PendingLoads}, func() error {
		x := r
		x.Day, x.Start, x.End = x.Day.UTC(), x.Start.UTC(), x.End.UTC()
		if x.CountedCash != nil {
			c := *x.CountedCash
			d := c - x.ExpectedCash
			x.CountedCash, x.Difference = &c, &d
		}
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: store report: %w", err)
	}
	return out, nil
}

// EventReport is an event's money: sales by merchant, top-ups by channel,
// and what is still on its cards.
type EventReport struct {
	Event          string          `json:"event"`
	Sales          []MerchantSales `json:"sales"`
	TopUps         []ChannelTopUps `json:"topups"`
	CardsWithMoney int64           `json:"cards_with_balance"`
	Outstanding    int64           `json:"outstanding_balance"` // on the cards
	// PendingLoads is credit paid (cash or online) but not yet confirmed
	// on its cards: not part of Outstanding.
	PendingLoads int64 `json:"pending_loads"`
	HeldTxs      int64 `json:"held_transactions"`
	// Alerts is the open alerts of the event's cards: not reviewed by HQ.
	Alerts int64 `json:"alerts"`
	// ChargebackLosses is what chargebacks cost (less those won): credit of the event's
	// cards spent before the provider took its payment back.
	ChargebackLosses int64 `json:"chargeback_losses"`
	// ProviderRefundLosses is the same for refunds made at the provider
	// (its dashboard) after the credit was spent.
	ProviderRefundLosses int64 `json:"provider_refund_losses"`
	// Hourly is Sales by the hour of the terminal's clock (UTC), by hour
	// then merchant: each merchant's hours add up to its Sales.
	Hourly []HourlySales `json:"hourly"`
}

// HourlySales is what one merchant sold in one hour.
type HourlySales struct {
	Hour     time.Time `json:"hour"`
	Merchant string    `json:"merchant"`
	Count    int64     `json:"count"`
	Amount   int64     `json:"amount"`
}

// MerchantSales is what one merchant sold at an event.
type MerchantSales struct {
	Merchant string `json:"merchant"`
	Count    int64  `json:"count"`
	Amount   int64  `json:"amount"`
}

// ChannelTopUps is the money loaded through one channel.
type ChannelTopUps struct {
	Channel string `json:"channel"` // cash, online, or transfer (a replaced card's credit moved to its new card)
	Status  string `json:"status"`  // loaded (confirmed on the card), pending (paid, not confirmed on the card), refunded or expired
	Count   int64  `json:"count"`
	Amount  int64  `json:"amount"`
}

// Event reports an event.
func (l *Ledger) Event(ctx context.Context, org int64, event string) (EventReport, error) {
	rep := EventReport{Event: event}
	b := &pgx.Batch{}
	// The totals of migrations 031 and 033. Terminal sales and the cards'
	// balances are rolled up to the organizer's mark (see RollUp); the
	// rows at or above it are added here, in the same snapshot, so every
	// figure is the ledger's at that snapshot (TestEventReportTotals).
	// The top-ups' totals are kept by triggers.
	// One pass over the event's terminal sales gives Sales, Hourly and
	// HeldTxs (ordered by hour, then merchant, bytewise as Sales).
	sales := map[string]*MerchantSales{}
	// The planner cannot know the mark when it plans the rows above it,
	// so it guesses a third of the table and would compile the query
	// (JIT), 0.26 s at 1M transactions, to read a few hundred rows.
	b.Queue(`SET LOCAL jit = off`)
	b.Queue(`SELECT hour, merchant_id, status, sum(count)::bigint, sum(amount)::bigint FROM (
			SELECT hour, merchant_id, status, count, amount FROM terminal_sales WHERE org_id = $1 AND event_id = $2
			UNION ALL
			SELECT s.hour, s.merchant_id, s.status, s.count, s.amount
			  FROM (SELECT coalesce(max(upto), 0) AS upto FROM dashboard_rollups WHERE org_id = $1) w,
			       LATERAL ledger_sales_since($1, w.upto, NULL) s WHERE s.event_id = $2) x
		GROUP BY 1, 2, 3 HAVING sum(count) <> 0 ORDER BY hour, merchant_id COLLATE "C"`, org, event).
		Query(func(rows pgx.Rows) error {
			var h HourlySales
			var status string
			_, err := pgx.ForEachRow(rows, []any{&h.Hour, &h.Merchant, &status, &h.Count, &h.Amount}, func() error {
				if status != "posted" {
					rep.HeldTxs += h.Count
					return nil
				}
				h.Hour = h.Hour.UTC()
				rep.Hourly = append(rep.Hourly, h)
				s := sales[h.Merchant]
				if s == nil {
					s = &MerchantSales{Merchant: h.Merchant}
					sales[h.Merchant] = s
				}
				s.Count += h.Count
				s.Amount += h.Amount
				return nil
			})
			return err
		})
	b.Queue(`SELECT channel, status, sum(count)::bigint, sum(amount)::bigint FROM topup_totals
		WHERE org_id = $1 AND event_id = $2 GROUP BY 1, 2 HAVING sum(count) <> 0 ORDER BY 1, 2`, org, event).
		Query(func(rows pgx.Rows) error {
			var s ChannelTopUps
			_, err := pgx.ForEachRow(rows, []any{&s.Channel, &s.Status, &s.Count, &s.Amount}, func() error {
				rep.TopUps = append(rep.TopUps, s)
				if s.Status == "pending" {
					rep.PendingLoads += s.Amount
				}
				return nil
			})
			return err
		})
	b.Queue(`SELECT (coalesce(max(t.with_money), 0) + coalesce(sum(s.with_money), 0))::bigint,
			(coalesce(max(t.outstanding), 0) + coalesce(sum(s.outstanding), 0))::bigint
		FROM (SELECT coalesce(max(upto), 0) AS upto FROM dashboard_rollups WHERE org_id = $1) w
		LEFT JOIN card_totals t ON t.org_id = $1 AND t.event_id = $2
		LEFT JOIN LATERAL ledger_card_totals_since($1, w.upto, NULL) s ON s.event_id = $2`, org, event).QueryRow(func(row pgx.Row) error {
		return row.Scan(&rep.CardsWithMoney, &rep.Outstanding)
	})
	b.Queue(`SELECT count(*) FROM card_alerts a JOIN cards c ON c.org_id = a.org_id AND c.card_id = a.card_id
		WHERE a.org_id = $1 AND c.event_id = $2 AND a.resolved_at IS NULL AND a.reviewed_at IS NULL`, org, event).QueryRow(func(row pgx.Row) error {
		return row.Scan(&rep.Alerts)
	})
	b.Queue(`SELECT coalesce(sum(p.amount) FILTER (WHERE j.kind IN ('chargeback', 'chargeback_reversal')), 0)::bigint,
			coalesce(sum(p.amount) FILTER (WHERE j.kind = 'provider_refund'), 0)::bigint
		FROM journal j JOIN postings p ON p.org_id = j.org_id AND p.txn_id = j.txn_id
		JOIN accounts a ON a.org_id = p.org_id AND a.account_id = p.account_id AND a.kind IN ('chargeback_losses', 'refund_losses')
		WHERE j.org_id = $1 AND j.event_id = $2 AND j.kind IN ('chargeback', 'chargeback_reversal', 'provider_refund')`, org, event).QueryRow(func(row pgx.Row) error {
		return row.Scan(&rep.ChargebackLosses, &rep.ProviderRefundLosses)
	})
	// One snapshot for the totals and the rows above their mark.
	err := pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return EventReport{}, fmt.Errorf("ledger: event report: %w", err)
	}
	for _, s := range sales {
		rep.Sales = append(rep.Sales, *s)
	}
	slices.SortFunc(rep.Sales, func(a, b MerchantSales) int { return strings.Compare(a.Merchant, b.Merchant) })
	return rep, nil
}

// UploadLag is how long terminal transactions took to reach the ledger:
// from their time on the terminal to their arrival, in milliseconds.
type UploadLag struct {
	Count         int
	P50, P95, Max float64
}

// UploadLag measures the upload lag of the organizer's transactions from
// the terminals whose ids start with prefix (the load simulator's runs).
func (l *Ledger) UploadLag(ctx context.Context, org int64, prefix string) (UploadLag, error) {
	var u UploadLag
	err := l.pool.QueryRow(ctx, `SELECT count(*),
		coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - at)), 0) * 1000,
		coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - at)), 0) * 1000,
		coalesce(max(extract(epoch FROM received_at - at)), 0) * 1000
		FROM terminal_txs WHERE org_id = $1 AND starts_with(terminal_id, $2)`, org, prefix).
		Scan(&u.Count, &u.P50, &u.P95, &u.Max)
	if err != nil {
		return UploadLag{}, fmt.Errorf("ledger: upload lag: %w", err)
	}
	return u, nil
}
