package main

import (
	"encoding/csv"
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger"
)

func reportCommand() *cli.Command {
	format := []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		&cli.BoolFlag{Name: "csv", Usage: "print CSV (amounts in cents)"},
	}
	return &cli.Command{
		Name:  "report",
		Usage: "money reports: per store per business day, per event, per product",
		Subcommands: []*cli.Command{
			{
				Name:  "stores",
				Usage: "per store per business day (ledger business-day): expected against counted cash, cards received, sold and in stock",
				Flags: append([]cli.Flag{organizerFlag,
					&cli.StringFlag{Name: "from", Usage: "first business day, YYYY-MM-DD (default: the business day now)"},
					&cli.StringFlag{Name: "to", Usage: "last day, YYYY-MM-DD (default: --from)"}}, format...),
				Action: reportStores,
			},
			{
				Name:   "event",
				Usage:  "per event: sales by merchant, top-ups by channel, outstanding card balances",
				Flags:  append([]cli.Flag{organizerFlag, &cli.StringFlag{Name: "event", Required: true, Usage: "event id"}}, format...),
				Action: reportEvent,
			},
			{
				Name: "products",
				Usage: "per product, merchant and business day: quantity, revenue (VAT included) and VAT per rate; " +
					"debits count in the day they were taken, late arrivals are shown",
				Flags: append([]cli.Flag{organizerFlag, &cli.StringFlag{Name: "event", Required: true, Usage: "event id"},
					&cli.StringFlag{Name: "day", Usage: "one business day, YYYY-MM-DD (default: every day)"}}, format...),
				Action: reportProducts,
			},
		},
	}
}

func reportStores(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		from, err := businessDayFlag(c, l, "from")
		if err != nil {
			return err
		}
		to := from
		if s := c.String("to"); s != "" {
			if to, err = time.Parse(time.DateOnly, s); err != nil {
				return fmt.Errorf("--to: want YYYY-MM-DD")
			}
		}
		days, err := l.StoreDays(c.Context, c.Int64("organizer"), from, to)
		if err != nil {
			return err
		}
		opt := func(p *int64) string {
			if p == nil {
				return ""
			}
			return strconv.FormatInt(*p, 10)
		}
		switch {
		case c.Bool("json"):
			if days == nil {
				days = []ledger.StoreDayReport{}
			}
			return printJSON(c, days)
		case c.Bool("csv"):
			w := csv.NewWriter(c.App.Writer)
			_ = w.Write([]string{"store", "day", "expected_cash", "counted_cash", "difference", "cards_received", "cards_sold", "cards_in_stock"})
			for _, d := range days {
				_ = w.Write([]string{d.Store, d.Day.UTC().Format(time.DateOnly), strconv.FormatInt(d.ExpectedCash, 10), opt(d.CountedCash),
					opt(d.Difference), strconv.FormatInt(d.CardsReceived, 10), strconv.FormatInt(d.CardsSold, 10), strconv.FormatInt(d.CardsInStock, 10)})
			}
			w.Flush()
			return w.Error()
		}
		fmt.Fprintf(c.App.Writer, "%-16s %-10s %12s %12s %12s %9s %6s %8s\n", "STORE", "DAY", "EXPECTED", "COUNTED", "DIFFERENCE", "RECEIVED", "SOLD", "IN STOCK")
		for _, d := range days {
			counted, diff := "open", ""
			if d.CountedCash != nil {
				counted, diff = money(*d.CountedCash), money(*d.Difference)
			}
			fmt.Fprintf(c.App.Writer, "%-16s %-10s %12s %12s %12s %9d %6d %8d\n", d.Store, d.Day.UTC().Format(time.DateOnly),
				money(d.ExpectedCash), counted, diff, d.CardsReceived, d.CardsSold, d.CardsInStock)
		}
		return nil
	})
}

func reportEvent(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		r, err := l.Event(c.Context, c.Int64("organizer"), c.String("event"))
		if err != nil {
			return err
		}
		switch {
		case c.Bool("json"):
			if r.Sales == nil {
				r.Sales = []ledger.MerchantSales{}
			}
			if r.TopUps == nil {
				r.TopUps = []ledger.ChannelTopUps{}
			}
			if r.Hourly == nil {
				r.Hourly = []ledger.HourlySales{}
			}
			return printJSON(c, r)
		case c.Bool("csv"):
			// One table: section, key, status, count, amount.
			w := csv.NewWriter(c.App.Writer)
			_ = w.Write([]string{"section", "key", "status", "count", "amount"})
			for _, s := range r.Sales {
				_ = w.Write([]string{"sales", s.Merchant, "", strconv.FormatInt(s.Count, 10), strconv.FormatInt(s.Amount, 10)})
			}
			for _, h := range r.Hourly {
				// The key is the hour (UTC) and the merchant.
				_ = w.Write([]string{"hourly", h.Hour.UTC().Format("2006-01-02T15Z") + " " + h.Merchant, "", strconv.FormatInt(h.Count, 10), strconv.FormatInt(h.Amount, 10)})
			}
			for _, t := range r.TopUps {
				_ = w.Write([]string{"topups", t.Channel, t.Status, strconv.FormatInt(t.Count, 10), strconv.FormatInt(t.Amount, 10)})
			}
			_ = w.Write([]string{"outstanding", "cards", "", strconv.FormatInt(r.CardsWithMoney, 10), strconv.FormatInt(r.Outstanding, 10)})
			_ = w.Write([]string{"held", "transactions", "", strconv.FormatInt(r.HeldTxs, 10), ""})
			_ = w.Write([]string{"alerts", "cards", "", strconv.FormatInt(r.Alerts, 10), ""})
			_ = w.Write([]string{"losses", "chargebacks", "", "", strconv.FormatInt(r.ChargebackLosses, 10)})
			_ = w.Write([]string{"losses", "provider_refunds", "", "", strconv.FormatInt(r.ProviderRefundLosses, 10)})
			w.Flush()
			return w.Error()
		}
		out := c.App.Writer
		fmt.Fprintf(out, "event %s\nsales by merchant:\n", r.Event)
		for _, s := range r.Sales {
			fmt.Fprintf(out, "  %-24s %8d %12s\n", s.Merchant, s.Count, money(s.Amount))
		}
		if len(r.Hourly) > 0 {
			fmt.Fprintln(out, "sales by hour (UTC) and merchant:")
			for _, h := range r.Hourly {
				fmt.Fprintf(out, "  %s %-24s %8d %12s\n", h.Hour.UTC().Format("2006-01-02 15h"), h.Merchant, h.Count, money(h.Amount))
			}
		}
		fmt.Fprintln(out, "top-ups by channel:")
		for _, t := range r.TopUps {
			fmt.Fprintf(out, "  %-8s %-8s %8d %12s\n", t.Channel, t.Status, t.Count, money(t.Amount))
		}
		fmt.Fprintf(out, "outstanding: %s on %d cards\nheld transactions: %d, alerts: %d\n", money(r.Outstanding), r.CardsWithMoney, r.HeldTxs, r.Alerts)
		fmt.Fprintf(out, "losses: %s to chargebacks, %s to refunds made at the provider\n", money(r.ChargebackLosses), money(r.ProviderRefundLosses))
		return nil
	})
}

func reportProducts(c *cli.Context) error {
	var day time.Time
	if s := c.String("day"); s != "" {
		var err error
		if day, err = time.Parse(time.DateOnly, s); err != nil {
			return fmt.Errorf("--day: want YYYY-MM-DD")
		}
	}
	return withLedger(c, func(l *ledger.Ledger) error {
		r, err := l.Products(c.Context, c.Int64("organizer"), c.String("event"), day)
		if err != nil {
			return hintUnknown(err)
		}
		opt := func(p *int64) string {
			if p == nil {
				return ""
			}
			return strconv.FormatInt(*p, 10)
		}
		rate := func(p *int32) string {
			if p == nil {
				return ""
			}
			return strconv.FormatInt(int64(*p), 10)
		}
		switch {
		case c.Bool("json"):
			return printJSON(c, r)
		case c.Bool("csv"):
			// One table: the product lines, then the VAT per rate of each
			// merchant and day (product "vat"), amounts in cents; an empty
			// product is unitemized, an empty rate unknown.
			w := csv.NewWriter(c.App.Writer)
			_ = w.Write([]string{"day", "merchant", "product", "name", "vat_rate_bp", "quantity", "revenue", "vat"})
			for _, ln := range r.Lines {
				_ = w.Write([]string{ln.Day, ln.Merchant, ln.Product, ln.Name, rate(ln.VATRateBP), strconv.FormatInt(ln.Quantity, 10),
					strconv.FormatInt(ln.Revenue, 10), opt(ln.VAT)})
			}
			for _, v := range r.VAT {
				_ = w.Write([]string{v.Day, v.Merchant, "vat", "", rate(v.VATRateBP), "", strconv.FormatInt(v.Gross, 10), opt(v.VAT)})
			}
			w.Flush()
			return w.Error()
		}
		out := c.App.Writer
		fmt.Fprintf(out, "event %s, business days ending at %02d:00 %s\n", r.Event, r.DayEndHour, r.TimeZone)
		pct := func(p *int32) string {
			if p == nil {
				return "?"
			}
			return fmt.Sprintf("%d.%02d%%", *p/100, *p%100)
		}
		vat := func(p *int64) string {
			if p == nil {
				return "?"
			}
			return money(*p)
		}
		fmt.Fprintf(out, "%-10s %-16s %-24s %7s %9s %12s %10s\n", "DAY", "MERCHANT", "PRODUCT", "VAT", "QUANTITY", "REVENUE", "OF IT VAT")
		for _, ln := range r.Lines {
			name := ln.Name
			if ln.Product == "" {
				name = "(no items)"
			}
			fmt.Fprintf(out, "%-10s %-16s %-24s %7s %9d %12s %10s\n", ln.Day, ln.Merchant, name, pct(ln.VATRateBP), ln.Quantity, money(ln.Revenue), vat(ln.VAT))
		}
		fmt.Fprintln(out, "VAT per rate, merchant and day:")
		for _, v := range r.VAT {
			fmt.Fprintf(out, "  %-10s %-16s %7s gross %12s VAT %10s\n", v.Day, v.Merchant, pct(v.VATRateBP), money(v.Gross), vat(v.VAT))
		}
		fmt.Fprintln(out, "VAT per rate:")
		for _, v := range r.Rates {
			fmt.Fprintf(out, "  %7s gross %12s VAT %10s\n", pct(v.VATRateBP), money(v.Gross), vat(v.VAT))
		}
		fmt.Fprintln(out, "merchants per day:")
		for _, m := range r.Merchants {
			late := ""
			if m.LateCount > 0 {
				late = fmt.Sprintf(", of them %d for %s arrived after the day ended", m.LateCount, money(m.LateAmount))
			}
			fmt.Fprintf(out, "  %-10s %-16s %6d transactions %12s%s\n", m.Day, m.Merchant, m.Count, money(m.Amount), late)
		}
		fmt.Fprintf(out, "total: %d transactions, %s\n", r.Count, money(r.Total))
		return nil
	})
}
