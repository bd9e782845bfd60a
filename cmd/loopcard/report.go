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
		Usage: "money reports: per store per day, per event",
		Subcommands: []*cli.Command{
			{
				Name:  "stores",
				Usage: "per store per day (UTC): expected against counted cash, cards received, sold and in stock",
				Flags: append([]cli.Flag{organizerFlag,
					&cli.StringFlag{Name: "from", Required: true, Usage: "first day, YYYY-MM-DD"},
					&cli.StringFlag{Name: "to", Usage: "last day, YYYY-MM-DD (default: --from)"}}, format...),
				Action: reportStores,
			},
			{
				Name:   "event",
				Usage:  "per event: sales by merchant, top-ups by channel, outstanding card balances",
				Flags:  append([]cli.Flag{organizerFlag, &cli.StringFlag{Name: "event", Required: true, Usage: "event id"}}, format...),
				Action: reportEvent,
			},
		},
	}
}

func reportStores(c *cli.Context) error {
	from, err := time.Parse(time.DateOnly, c.String("from"))
	if err != nil {
		return fmt.Errorf("--from: want YYYY-MM-DD")
	}
	to := from
	if s := c.String("to"); s != "" {
		if to, err = time.Parse(time.DateOnly, s); err != nil {
			return fmt.Errorf("--to: want YYYY-MM-DD")
		}
	}
	return withLedger(c, func(l *ledger.Ledger) error {
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
