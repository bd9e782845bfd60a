package ledger

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// The product report (issue 19): quantity, revenue and VAT per product,
// merchant and business day, from the line items of the signed terminal
// transactions (terminal_tx_items). It counts what Event counts as a
// merchant's sales (posted debits of the event's cards), so that its
// totals are the merchant totals: a transaction without items (terminal
// transaction version 1) is one unitemized line (product "", VAT rate
// unknown) of its merchant and day.
//
// A debit counts in the business day of its terminal time (terminal_txs.at),
// whenever it reached the ledger. One that reached it after its business
// day ended (its received_at falls in a later business day) "arrived late":
// MerchantDay says how many and for how much, so that a report printed at
// the end of a day can be told apart from one printed after offline
// terminals uploaded.
//
// VAT: prices are VAT-inclusive (gross). The VAT in a gross amount g at
// rate r basis points is g·r/(10000+r), rounded half away from zero to
// the cent (VATOf), once per figure on that figure's gross: a product
// line's VAT on the line's revenue, a VATLine's on the total of its rate
// that day at that merchant, a report rate's on the rate's total of the
// whole report. The VAT per rate is therefore exact to the cent on the
// rate's total; adding rounded lines up may differ from it by a few cents.

// ProductLine is one product's sales at one merchant on one business day.
type ProductLine struct {
	Day      string `json:"day"` // business day, YYYY-MM-DD
	Merchant string `json:"merchant"`
	Product  string `json:"product"` // "": unitemized (transactions without items)
	Name     string `json:"name"`    // from the merchant's latest menu naming it, else the product id
	// VATRateBP is the VAT rate in basis points; nil for unitemized sales.
	VATRateBP *int32 `json:"vat_rate_bp"`
	// Quantity is the items sold less those returned (negative lines,
	// such as a cup deposit given back); for unitemized sales the number
	// of transactions.
	Quantity int64  `json:"quantity"`
	Revenue  int64  `json:"revenue"` // gross, VAT included, in cents
	VAT      *int64 `json:"vat"`     // nil when the rate is unknown
}

// VATLine is the VAT of one rate: at one merchant on one business day,
// or (Day and Merchant empty) in the whole report.
type VATLine struct {
	Day       string `json:"day,omitempty"`
	Merchant  string `json:"merchant,omitempty"`
	VATRateBP *int32 `json:"vat_rate_bp"` // nil: unitemized
	Gross     int64  `json:"gross"`
	Net       *int64 `json:"net"` // gross - VAT
	VAT       *int64 `json:"vat"`
}

// MerchantDay is one merchant's sales on one business day: the sum of its
// product lines, and of them what arrived late (received after the
// business day ended).
type MerchantDay struct {
	Day        string `json:"day"`
	Merchant   string `json:"merchant"`
	Count      int64  `json:"count"` // transactions
	Amount     int64  `json:"amount"`
	LateCount  int64  `json:"late_count"`
	LateAmount int64  `json:"late_amount"`
}

// ProductReport is an event's sales by product, merchant and business day.
type ProductReport struct {
	Event      string `json:"event"`
	Day        string `json:"day,omitempty"` // the one business day reported; "": every day
	TimeZone   string `json:"time_zone"`
	DayEndHour int    `json:"day_end_hour"`
	// Lines are ordered by day, merchant, product and rate.
	Lines []ProductLine `json:"lines"`
	// VAT is per day, merchant and rate; Rates per rate over the report.
	VAT       []VATLine     `json:"vat"`
	Rates     []VATLine     `json:"rates"`
	Merchants []MerchantDay `json:"merchants"`
	Count     int64         `json:"count"`
	Total     int64         `json:"total"`
}

// VATOf returns the VAT in gross cents at rate basis points, prices
// including VAT: gross·rate/(10000+rate) rounded half away from zero.
func VATOf(gross int64, rate int32) int64 {
	if rate <= 0 || gross == 0 {
		return 0
	}
	n := new(big.Int).Mul(big.NewInt(gross), big.NewInt(int64(rate)))
	d := big.NewInt(10000 + int64(rate))
	neg := n.Sign() < 0
	n.Abs(n)
	// floor((2n + d) / 2d): n/d rounded half up, on the magnitude.
	n.Add(n.Lsh(n, 1), d)
	n.Quo(n, d.Lsh(d, 1))
	if neg {
		n.Neg(n)
	}
	return n.Int64()
}

// Products reports an event's sales by product, merchant and business
// day (the organizer's BusinessDay); with day non-zero, only that day's
// (its date). It fails with ErrNotFound for an unknown organizer.
func (l *Ledger) Products(ctx context.Context, org int64, event string, day time.Time) (ProductReport, error) {
	bd, err := l.BusinessDay(ctx, org)
	if err != nil {
		return ProductReport{}, err
	}
	rep := ProductReport{Event: event, TimeZone: bd.ZoneName(), DayEndHour: bd.EndHour,
		Lines: []ProductLine{}, VAT: []VATLine{}, Rates: []VATLine{}, Merchants: []MerchantDay{}}
	args := []any{org, event, bd.ZoneName(), bd.EndHour}
	if !day.IsZero() {
		s, e := bd.Bounds(day)
		args = append(args, s, e)
		rep.Day = day.Format(time.DateOnly)
	}
	oneDay := len(args) > 4
	err = pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		names, err := productNames(ctx, tx, org)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, reportTxs(oneDay, productLinesSQL), args...)
		if err != nil {
			return err
		}
		var d time.Time
		var ln ProductLine
		var rate *int32
		_, err = pgx.ForEachRow(rows, []any{&d, &ln.Merchant, &ln.Product, &rate, &ln.Quantity, &ln.Revenue}, func() error {
			x := ln
			x.Day, x.Name = d.Format(time.DateOnly), x.Product
			if n, ok := names[[2]string{x.Merchant, x.Product}]; ok {
				x.Name = n
			}
			if rate != nil {
				r, v := *rate, VATOf(x.Revenue, *rate)
				x.VATRateBP, x.VAT = &r, &v
			}
			rep.Lines = append(rep.Lines, x)
			return nil
		})
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, reportTxs(oneDay, merchantDaysSQL), args...)
		if err != nil {
			return err
		}
		var m MerchantDay
		_, err = pgx.ForEachRow(rows, []any{&d, &m.Merchant, &m.Count, &m.Amount, &m.LateCount, &m.LateAmount}, func() error {
			x := m
			x.Day = d.Format(time.DateOnly)
			rep.Merchants = append(rep.Merchants, x)
			rep.Count += x.Count
			rep.Total += x.Amount
			return nil
		})
		return err
	})
	if err != nil {
		return ProductReport{}, fmt.Errorf("ledger: product report: %w", err)
	}
	rep.VAT, rep.Rates = vatLines(rep.Lines)
	return rep, nil
}

// vatLines adds up lines per day, merchant and rate, and per rate, and
// rounds the VAT of each sum once.
func vatLines(lines []ProductLine) (byDay, byRate []VATLine) {
	type key struct {
		day, merchant string
		rate          int64 // -1: unknown
	}
	sums := map[key]int64{}
	for _, ln := range lines {
		r := int64(-1)
		if ln.VATRateBP != nil {
			r = int64(*ln.VATRateBP)
		}
		sums[key{ln.Day, ln.Merchant, r}] += ln.Revenue
		sums[key{"", "", r}] += ln.Revenue
	}
	keys := make([]key, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.day != b.day {
			return a.day < b.day
		}
		if a.merchant != b.merchant {
			return a.merchant < b.merchant
		}
		return a.rate < b.rate
	})
	byDay, byRate = []VATLine{}, []VATLine{}
	for _, k := range keys {
		v := VATLine{Day: k.day, Merchant: k.merchant, Gross: sums[k]}
		if k.rate >= 0 {
			r := int32(k.rate)
			vat := VATOf(v.Gross, r)
			net := v.Gross - vat
			v.VATRateBP, v.VAT, v.Net = &r, &vat, &net
		}
		if k.day == "" && k.merchant == "" {
			byRate = append(byRate, v)
		} else {
			byDay = append(byDay, v)
		}
	}
	return byDay, byRate
}

// reportTxs is the event's posted debits, of one business day when
// oneDay ($5 and $6 bound it), each with its business day (the date of at
// - $4 hours in zone $3): what Event counts as the merchants' sales. One
// day is a range scan of terminal_txs_at; every day reads all of the
// organizer's transactions. The two are two statements, so that neither
// gets a plan made for the other.
func reportTxs(oneDay bool, query string) string {
	day := ""
	if oneDay {
		day = " AND t.at >= $5 AND t.at < $6"
	}
	return `WITH txs AS (
	SELECT t.org_id, t.txn_id, t.merchant_id, t.amount,
		((t.at - make_interval(hours => $4)) AT TIME ZONE $3)::date AS day,
		((t.received_at - make_interval(hours => $4)) AT TIME ZONE $3)::date AS received_day
	FROM terminal_txs t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
	WHERE t.org_id = $1 AND c.event_id = $2 AND t.status = 'posted'` + day + `)
` + query
}

// productLinesSQL: a transaction's items, or the transaction as one
// unitemized line when it has none.
const productLinesSQL = `SELECT t.day, t.merchant_id, coalesce(i.product_id, ''), i.vat_rate_bp,
		sum(coalesce(i.quantity, 1))::bigint, sum(coalesce(i.quantity::bigint * i.unit_price, t.amount))::bigint
	FROM txs t LEFT JOIN terminal_tx_items i ON i.org_id = t.org_id AND i.txn_id = t.txn_id
	GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4 NULLS FIRST`

const merchantDaysSQL = `SELECT day, merchant_id, count(*), sum(amount)::bigint,
		count(*) FILTER (WHERE received_day > day), coalesce(sum(amount) FILTER (WHERE received_day > day), 0)::bigint
	FROM txs GROUP BY 1, 2 ORDER BY 1, 2`

// productNames returns the product names of the organizer's menus (their
// products are stored as a JSON array of menu.Product), the latest version
// of each merchant's menu naming a product first.
func productNames(ctx context.Context, tx pgx.Tx, org int64) (map[[2]string]string, error) {
	rows, err := tx.Query(ctx, `SELECT DISTINCT ON (m.merchant_id, p->>'id') m.merchant_id, p->>'id', coalesce(p->>'name', '')
		FROM menus m CROSS JOIN jsonb_array_elements(m.products) p
		WHERE m.org_id = $1 AND p->>'id' IS NOT NULL ORDER BY m.merchant_id, p->>'id', m.version DESC`, org)
	if err != nil {
		return nil, err
	}
	names := map[[2]string]string{}
	var merchant, id, name string
	_, err = pgx.ForEachRow(rows, []any{&merchant, &id, &name}, func() error {
		if name != "" {
			names[[2]string{merchant, id}] = name
		}
		return nil
	})
	return names, err
}
