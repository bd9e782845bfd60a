package ledger

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

func amsterdam(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Europe/Amsterdam")
	require.NoError(t, err)
	return loc
}

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

// A business day ends at the day-end hour local time: 05:30 in Amsterdam
// is still the night before. Six hours are subtracted from the instant
// (the contract's definition), so the night the clocks go forward ends at
// 07:00 summer time and the next day is 23 hours long; the night they go
// back ends at 05:00 and the next day is 25 hours long.
func TestBusinessDayBounds(t *testing.T) {
	ams := BusinessDay{Zone: amsterdam(t), EndHour: 6}
	utc := BusinessDay{EndHour: DefaultDayEndHour}
	for _, c := range []struct {
		bd   BusinessDay
		at   string
		want string
	}{
		{ams, "2026-07-10T03:59:59Z", "2026-07-09"}, // 05:59:59 CEST
		{ams, "2026-07-10T04:00:00Z", "2026-07-10"}, // 06:00 CEST
		{ams, "2026-01-10T04:30:00Z", "2026-01-09"}, // 05:30 CET
		{ams, "2026-01-10T05:00:00Z", "2026-01-10"},
		{utc, "2026-07-10T05:59:59Z", "2026-07-09"},
		{utc, "2026-07-10T06:00:00Z", "2026-07-10"},
		{BusinessDay{}, "2026-07-10T00:00:00Z", "2026-07-10"}, // midnight UTC
	} {
		at, err := time.Parse(time.RFC3339, c.at)
		require.NoError(t, err)
		require.Equal(t, c.want, c.bd.Of(at).Format(time.DateOnly), "%s in %s", c.at, c.bd.ZoneName())
	}
	for _, c := range []struct {
		day  string
		want time.Duration
	}{{"2026-03-28", 24 * time.Hour}, {"2026-03-29", 23 * time.Hour}, {"2026-10-24", 24 * time.Hour},
		{"2026-10-25", 25 * time.Hour}, {"2026-07-10", 24 * time.Hour}} {
		start, end := ams.Bounds(date(c.day))
		require.Equal(t, c.want, end.Sub(start), c.day)
		require.Equal(t, c.day, ams.Of(start).Format(time.DateOnly))
		require.Equal(t, c.day, ams.Of(end.Add(-time.Nanosecond)).Format(time.DateOnly))
		require.Equal(t, date(c.day).AddDate(0, 0, 1), ams.Of(end))
	}
	_, end := ams.Bounds(date("2026-03-28"))
	require.Equal(t, "07:00", end.In(ams.Zone).Format("15:04"), "the night the clocks go forward")
	_, end = ams.Bounds(date("2026-10-24"))
	require.Equal(t, "05:00", end.In(ams.Zone).Format("15:04"), "the night they go back")
}

// The report's SQL and BusinessDay.Of agree on the business day of any
// instant, in zones with and without daylight saving.
func TestBusinessDaySQLAgrees(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(19, 3))
	for _, zone := range []string{"UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"} {
		loc, err := time.LoadLocation(zone)
		require.NoError(t, err)
		for _, hour := range []int{0, 6, 23} {
			bd := BusinessDay{Zone: loc, EndHour: hour}
			ats := make([]time.Time, 500)
			for i := range ats {
				ats[i] = time.Unix(1767225600+rnd.Int64N(2*365*86400), 0).UTC() // 2026 and 2027
			}
			rows, err := l.pool.Query(ctx, `SELECT ((a - make_interval(hours => $3)) AT TIME ZONE $2)::date FROM unnest($1::timestamptz[]) a`,
				ats, zone, hour)
			require.NoError(t, err)
			var got []time.Time
			for rows.Next() {
				var d time.Time
				require.NoError(t, rows.Scan(&d))
				got = append(got, d)
			}
			require.NoError(t, rows.Err())
			for i, at := range ats {
				require.Equal(t, bd.Of(at), got[i], "%s in %s, day ends at %d", at, zone, hour)
			}
		}
	}
}

func TestSetBusinessDay(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	s, err := l.Settings(ctx, org)
	require.NoError(t, err)
	require.Equal(t, "UTC", s.TimeZone)
	require.Equal(t, DefaultDayEndHour, s.DayEndHour)
	for _, c := range []struct {
		zone string
		hour int
	}{{"Mars/Olympus", 6}, {"Local", 6}, {"", 6}, {"Europe/Amsterdam", 24}, {"Europe/Amsterdam", -1}, {"../../etc/passwd", 6}, {"Europe/Amsterdam\x00", 6}} {
		require.ErrorIs(t, l.SetBusinessDay(ctx, org, c.zone, c.hour), ErrInvalid, "%q %d", c.zone, c.hour)
	}
	require.ErrorIs(t, l.SetBusinessDay(ctx, 999, "UTC", 6), ErrNotFound)
	s, err = l.Settings(ctx, org)
	require.NoError(t, err)
	require.Equal(t, "UTC", s.TimeZone, "nothing changed")
	require.NoError(t, l.SetBusinessDay(ctx, org, "Europe/Amsterdam", 5))
	s, err = l.Settings(ctx, org)
	require.NoError(t, err)
	require.Equal(t, "Europe/Amsterdam", s.TimeZone)
	require.Equal(t, 5, s.DayEndHour)
	bd, err := l.BusinessDay(ctx, org)
	require.NoError(t, err)
	require.Equal(t, "Europe/Amsterdam", bd.ZoneName())
}

// Cash taken at 05:30 in Amsterdam belongs to the store's night before:
// its close and the store-days report count it there, not in the UTC
// date.
func TestStoreDayIsBusinessDay(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	require.NoError(t, l.SetBusinessDay(ctx, org, "Europe/Amsterdam", 6))
	now := time.Date(2026, 7, 10, 3, 30, 0, 0, time.UTC) // 05:30 CEST
	l.now = func() time.Time { return now }
	require.NoError(t, l.AddStore(ctx, org, "gate", "Gate"))
	a, b := newCard(1), newCard(2)
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{a.uid, b.uid}))
	_, err := l.TopUpCash(ctx, org, CashTopUp{Store: "gate", Card: a.uid, Amount: 1000})
	require.NoError(t, err)
	now = now.Add(time.Hour) // 06:30 CEST: the next business day
	_, err = l.TopUpCash(ctx, org, CashTopUp{Store: "gate", Card: b.uid, Amount: 250})
	require.NoError(t, err)

	d, err := l.CloseStoreDay(ctx, org, "gate", date("2026-07-09"), 1000)
	require.NoError(t, err)
	require.Equal(t, int64(1000), d.Expected, "the night's cash only")
	require.Equal(t, time.Date(2026, 7, 9, 4, 0, 0, 0, time.UTC), d.Start)
	require.Equal(t, time.Date(2026, 7, 10, 4, 0, 0, 0, time.UTC), d.End)
	days, err := l.StoreDays(ctx, org, date("2026-07-09"), date("2026-07-10"))
	require.NoError(t, err)
	require.Len(t, days, 2)
	require.Equal(t, []int64{1000, 250}, []int64{days[0].ExpectedCash, days[1].ExpectedCash})
	require.Equal(t, int64(0), *days[0].Difference)
	require.Nil(t, days[1].CountedCash)
	require.Equal(t, d.End, days[1].Start)
}

// payAt debits the card at the terminal at terminal time at and returns
// the transaction's id and signed encoding.
func (tm *terminal) payAt(t testing.TB, c *card, amount int64, at time.Time) (txid.ID, []byte) {
	t.Helper()
	tm.seq++
	c.seq++
	tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org, Terminal: tm.id, TerminalSeq: tm.seq,
		Card: c.uid, CardSeq: c.seq, Amount: amount, BalanceBefore: c.bal, BalanceAfter: c.bal - amount,
		Merchant: tm.merchant, Time: at}
	c.bal -= amount
	s, err := terminaltx.Sign(&tx, tm.key)
	require.NoError(t, err)
	return tx.ID, s.Bytes()
}

type item struct {
	product  string
	quantity int32
	price    int64
	rate     int32
}

// insertItems stores a transaction's line items as the ledger does for a
// version 2 transaction (terminal_tx_items; the upload of items is another
// part of issue 19).
func insertItems(t testing.TB, l *Ledger, id txid.ID, merchant string, at time.Time, items []item) {
	t.Helper()
	for i, it := range items {
		_, err := l.pool.Exec(context.Background(), `INSERT INTO terminal_tx_items (org_id, txn_id, line, merchant_id, at, product_id,
			quantity, unit_price, vat_rate_bp, menu_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)`,
			org, pgtype.UUID{Bytes: id, Valid: true}, i+1, merchant, at, it.product, it.quantity, it.price, it.rate)
		require.NoError(t, err)
	}
}

// roundRat rounds r half away from zero to an integer.
func roundRat(r *big.Rat) int64 {
	n, d := new(big.Int).Abs(r.Num()), r.Denom()
	q := new(big.Int).Quo(new(big.Int).Add(new(big.Int).Lsh(n, 1), d), new(big.Int).Lsh(d, 1))
	if r.Sign() < 0 {
		q.Neg(q)
	}
	return q.Int64()
}

// VATOf is gross·rate/(10000+rate) rounded half away from zero, exactly.
func TestVATOfIsExact(t *testing.T) {
	rnd := rand.New(rand.NewPCG(19, 1))
	for i := range 200000 {
		gross := rnd.Int64N(2_000_000) - 1_000_000
		if i%10 == 0 {
			gross = rnd.Int64() >> 1 // large amounts do not overflow
			if i%20 == 0 {
				gross = -gross
			}
		}
		rate := int32(rnd.IntN(3001))
		want := roundRat(new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(gross), big.NewInt(int64(rate))), big.NewInt(10000+int64(rate))))
		require.Equal(t, want, VATOf(gross, rate), "gross %d rate %d", gross, rate)
	}
	// Half a cent rounds away from zero: 2100 bp of 12100 cents is 2100; of 121 cents 21.
	require.Equal(t, int64(21), VATOf(121, 2100))
	require.Equal(t, int64(1), VATOf(11, 1000))     // 1.0 exactly
	require.Equal(t, int64(1), VATOf(6, 2000))      // 6*2000/12000 = 1.0
	require.Equal(t, int64(1), VATOf(3, 2000))      // 0.5 -> 1
	require.Equal(t, int64(-1), VATOf(-3, 2000))    // -0.5 -> -1
	require.Equal(t, int64(0), VATOf(2, 2000))      // 0.333
	require.Equal(t, int64(0), VATOf(12345, 0))     // no VAT
	require.Equal(t, int64(174), VATOf(1000, 2100)) // 173.55
}

// Random baskets, uploaded the normal way, some of them late and some
// without items: the product report's totals are the ledger's merchant
// totals (Event), each merchant's day is its transactions, and the VAT of
// each rate per merchant and day, and over the report, is the exact VAT
// of the items rounded once, to the cent.
func TestProductReportRandomBaskets(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	require.NoError(t, l.SetBusinessDay(ctx, org, "Europe/Amsterdam", 6))
	bd := BusinessDay{Zone: amsterdam(t), EndHour: 6}
	rnd := rand.New(rand.NewPCG(19, 2))
	terms := []*terminal{newTerminal(t, l, "bar-1", "bar"), newTerminal(t, l, "food-1", "food"), newTerminal(t, l, "bar-2", "bar-b")}
	cards := make([]*card, 24)
	for i := range cards {
		cards[i] = newCard(i + 1)
	}
	fund(t, l, 200000, cards...)
	// Each merchant's catalog: rates 0, 9 % and 21 %, and odd ones.
	rates := []int32{0, 900, 2100, 600, 1900, 2500}
	catalog := map[string][]item{}
	for _, tm := range terms {
		for p := range 8 {
			catalog[tm.merchant] = append(catalog[tm.merchant], item{product: fmt.Sprintf("p%d", p), rate: rates[rnd.IntN(len(rates))]})
		}
		catalog[tm.merchant] = append(catalog[tm.merchant], item{product: "cup", rate: 0, price: 100})
	}

	type key struct {
		day, merchant string
		rate          int32
	}
	exact := map[key]*big.Rat{} // VAT per day, merchant and rate
	gross := map[key]int64{}    // revenue per day, merchant and rate
	rateVAT := map[int32]*big.Rat{}
	qty := map[[3]string]int64{} // day, merchant, product
	type tally struct{ count, amount, lateCount, lateAmount int64 }
	days := map[[2]string]*tally{}
	sales := map[string]int64{}
	add := func(m map[key]*big.Rat, k key, r *big.Rat) {
		if m[k] == nil {
			m[k] = new(big.Rat)
		}
		m[k].Add(m[k], r)
	}

	// Transactions at increasing terminal times over four nights ending
	// now: the earlier ones reach the ledger after their day ended.
	const n = 400
	now := time.Now()
	start := now.Add(-4 * 24 * time.Hour)
	var batch [][]byte
	var pending []func()
	for i := range n {
		tm := terms[rnd.IntN(len(terms))]
		c := cards[rnd.IntN(len(cards))]
		at := start.Add(time.Duration(i) * (4 * 24 * time.Hour / n)).Add(time.Duration(rnd.IntN(1000)) * time.Millisecond).Truncate(time.Millisecond)
		var items []item
		var amount int64
		if rnd.IntN(5) > 0 { // itemized
			for range 1 + rnd.IntN(4) {
				p := catalog[tm.merchant][rnd.IntN(8)]
				p.quantity, p.price = int32(1+rnd.IntN(3)), int64(1+rnd.IntN(1500))
				items = append(items, p)
				amount += int64(p.quantity) * p.price
			}
			if rnd.IntN(3) == 0 { // cups given back
				cup := catalog[tm.merchant][8]
				cup.quantity = -int32(1 + rnd.IntN(2))
				if amount+int64(cup.quantity)*cup.price > 0 {
					items = append(items, cup)
					amount += int64(cup.quantity) * cup.price
				}
			}
			if rnd.IntN(10) == 0 { // a returned item with VAT
				ret := catalog[tm.merchant][rnd.IntN(8)]
				ret.quantity, ret.price = -1, int64(1+rnd.IntN(200))
				if amount-ret.price > 0 {
					items = append(items, ret)
					amount -= ret.price
				}
			}
		} else {
			amount = int64(1 + rnd.IntN(3000))
		}
		id, b := tm.payAt(t, c, amount, at)
		batch = append(batch, b)
		day := bd.Of(at).Format(time.DateOnly)
		merchant := tm.merchant
		pending = append(pending, func() { insertItems(t, l, id, merchant, at, items) })
		for _, it := range items {
			g := int64(it.quantity) * it.price
			k := key{day, merchant, it.rate}
			gross[k] += g
			v := new(big.Rat).SetFrac(big.NewInt(g*int64(it.rate)), big.NewInt(10000+int64(it.rate)))
			add(exact, k, v)
			if rateVAT[it.rate] == nil {
				rateVAT[it.rate] = new(big.Rat)
			}
			rateVAT[it.rate].Add(rateVAT[it.rate], v)
			qty[[3]string{day, merchant, it.product}] += int64(it.quantity)
		}
		if len(items) == 0 {
			gross[key{day, merchant, -1}] += amount
			qty[[3]string{day, merchant, ""}]++
		}
		dk := [2]string{day, merchant}
		if days[dk] == nil {
			days[dk] = &tally{}
		}
		days[dk].count++
		days[dk].amount += amount
		if day < bd.Of(now).Format(time.DateOnly) {
			days[dk].lateCount++
			days[dk].lateAmount += amount
		}
		sales[merchant] += amount
	}
	for len(batch) > 0 {
		k := min(50, len(batch))
		res, err := l.Upload(ctx, org, batch[:k])
		require.NoError(t, err)
		for _, r := range res {
			require.Equal(t, Accepted, r.Status, "%v", r.Err)
		}
		batch = batch[k:]
	}
	for _, f := range pending {
		f()
	}

	rep, err := l.Products(ctx, org, "fest", time.Time{})
	require.NoError(t, err)
	require.Equal(t, "Europe/Amsterdam", rep.TimeZone)

	// Totals are the ledger's merchant totals.
	ev, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Len(t, ev.Sales, 3)
	byMerchant := map[string]int64{}
	for _, ln := range rep.Lines {
		byMerchant[ln.Merchant] += ln.Revenue
	}
	var total, count int64
	for _, s := range ev.Sales {
		require.Equal(t, sales[s.Merchant], s.Amount)
		require.Equal(t, s.Amount, byMerchant[s.Merchant], "product lines of %s", s.Merchant)
		total += s.Amount
		count += s.Count
	}
	require.Equal(t, total, rep.Total)
	require.Equal(t, count, rep.Count)
	require.Len(t, rep.Merchants, len(days))
	for _, m := range rep.Merchants {
		want := days[[2]string{m.Day, m.Merchant}]
		require.NotNil(t, want, "%s %s", m.Day, m.Merchant)
		require.Equal(t, *want, tally{m.Count, m.Amount, m.LateCount, m.LateAmount}, "%s %s", m.Day, m.Merchant)
	}

	// Quantities per product.
	gotQty := map[[3]string]int64{}
	for _, ln := range rep.Lines {
		gotQty[[3]string{ln.Day, ln.Merchant, ln.Product}] += ln.Quantity
		require.Equal(t, ln.Product, ln.Name, "no menu: the product id")
		if ln.Product == "" {
			require.Nil(t, ln.VATRateBP)
			require.Nil(t, ln.VAT)
		} else {
			require.Equal(t, VATOf(ln.Revenue, *ln.VATRateBP), *ln.VAT)
		}
	}
	require.Equal(t, qty, gotQty)

	// VAT per rate, per merchant and day, to the cent.
	require.Len(t, rep.VAT, len(gross))
	for _, v := range rep.VAT {
		if v.VATRateBP == nil {
			require.Equal(t, gross[key{v.Day, v.Merchant, -1}], v.Gross)
			require.Nil(t, v.VAT)
			continue
		}
		k := key{v.Day, v.Merchant, *v.VATRateBP}
		require.Equal(t, gross[k], v.Gross, "%+v", k)
		require.Equal(t, roundRat(exact[k]), *v.VAT, "%+v", k)
		require.Equal(t, v.Gross-*v.VAT, *v.Net)
	}
	var rateGross int64
	for _, v := range rep.Rates {
		rateGross += v.Gross
		if v.VATRateBP != nil {
			require.Equal(t, roundRat(rateVAT[*v.VATRateBP]), *v.VAT, "rate %d", *v.VATRateBP)
		}
	}
	require.Equal(t, total, rateGross)

	// One day's report is that day's part of the whole.
	day := rep.Merchants[0].Day
	one, err := l.Products(ctx, org, "fest", date(day))
	require.NoError(t, err)
	require.Equal(t, day, one.Day)
	var want []ProductLine
	for _, ln := range rep.Lines {
		if ln.Day == day {
			want = append(want, ln)
		}
	}
	require.Equal(t, want, one.Lines)
	requireInvariants(t, l)
}

// A debit taken before the day ended but uploaded after counts in the day
// it was taken, and the report says it arrived late; one uploaded in its
// own day does not.
func TestProductReportLateDebit(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a := newCard(1)
	fund(t, l, 5000, a)
	bd := BusinessDay{EndHour: DefaultDayEndHour}
	now := time.Now()
	yesterday := bd.Of(now).AddDate(0, 0, -1)
	_, end := bd.Bounds(yesterday)
	_, late := bar.payAt(t, a, 350, end.Add(-time.Minute)) // 05:59 this morning, uploaded now
	_, onTime := bar.payAt(t, a, 200, now)
	res, err := l.Upload(ctx, org, [][]byte{late, onTime})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))

	rep, err := l.Products(ctx, org, "fest", time.Time{})
	require.NoError(t, err)
	require.Equal(t, []MerchantDay{
		{Day: yesterday.Format(time.DateOnly), Merchant: "bar", Count: 1, Amount: 350, LateCount: 1, LateAmount: 350},
		{Day: bd.Of(now).Format(time.DateOnly), Merchant: "bar", Count: 1, Amount: 200},
	}, rep.Merchants)
	require.Len(t, rep.Lines, 2)
	require.Equal(t, ProductLine{Day: yesterday.Format(time.DateOnly), Merchant: "bar", Quantity: 1, Revenue: 350}, rep.Lines[0],
		"a transaction without items is one unitemized line")
	one, err := l.Products(ctx, org, "fest", yesterday)
	require.NoError(t, err)
	require.Equal(t, int64(350), one.Total)
	other, err := l.Products(ctx, org, "other", time.Time{})
	require.NoError(t, err)
	require.Zero(t, other.Total)
	require.Empty(t, other.Lines)
}
