package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
	"github.com/loopcard/loopcard/ledger/sepa"
)

func ledgerCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return &cli.Command{
		Name:  "ledger",
		Usage: "the money ledger: organizers, events, merchants, stores, invariants, alerts, payouts, breakage",
		Subcommands: append([]*cli.Command{
			{
				Name:   "init",
				Usage:  "register an organizer and its own accounts",
				Flags:  []cli.Flag{organizerFlag, &cli.StringFlag{Name: "name", Required: true, Usage: "organizer name"}},
				Action: ledgerInit,
			},
			{
				Name:  "event",
				Usage: "add or update an event",
				Flags: []cli.Flag{organizerFlag,
					&cli.StringFlag{Name: "event", Required: true, Usage: "event id"},
					&cli.StringFlag{Name: "name", Required: true, Usage: "event name"},
					&cli.TimestampFlag{Name: "refund-deadline", Layout: time.RFC3339, Usage: "last moment for refunds (RFC 3339)"}},
				Action: ledgerEvent,
			},
			{
				Name:  "merchant",
				Usage: "add a merchant",
				Flags: []cli.Flag{organizerFlag,
					&cli.StringFlag{Name: "merchant", Required: true, Usage: "merchant id"},
					&cli.StringFlag{Name: "name", Required: true, Usage: "merchant name"}},
				Action: ledgerMerchant,
			},
			{
				Name:  "store",
				Usage: "add a store with its cash account",
				Flags: []cli.Flag{organizerFlag,
					&cli.StringFlag{Name: "store", Required: true, Usage: "store id"},
					&cli.StringFlag{Name: "name", Required: true, Usage: "store name"}},
				Action: ledgerStore,
			},
			{
				Name:   "events",
				Usage:  "list the organizer's events",
				Flags:  []cli.Flag{organizerFlag, jsonFlag},
				Action: ledgerEvents,
			},
			{
				Name:   "merchants",
				Usage:  "list the organizer's merchants",
				Flags:  []cli.Flag{organizerFlag, jsonFlag},
				Action: ledgerMerchants,
			},
			{
				Name:   "stores",
				Usage:  "list the organizer's stores",
				Flags:  []cli.Flag{organizerFlag, jsonFlag},
				Action: ledgerStores,
			},
			{
				Name:   "verify",
				Usage:  "check the ledger's invariants: balances sum to zero and match the postings, entries balance, floors hold",
				Flags:  []cli.Flag{jsonFlag},
				Action: ledgerVerify,
			},
			{
				Name:   "alerts",
				Usage:  "list clone and tamper alerts, open and reviewed",
				Flags:  []cli.Flag{organizerFlag, jsonFlag},
				Action: ledgerAlerts,
			},
			ledgerReviewCommand(),
			ledgerUnblockCommand(),
			ledgerBlockCommand(),
			ledgerReplacementHoldCommand(),
			ledgerBusinessDayCommand(),
			ledgerSettingsCommand(),
			ledgerSettleReplacementsCommand(),
			{
				Name:  "payout",
				Usage: "fix the amount of every refund that is due and export them as one SEPA credit-transfer file (pain.001.001.09), booked",
				Description: "HQ reviews every run first, SEPA only or not: --dry-run books nothing and prints the run and\n" +
					"its plan; --approve PLAN books it if it is still the same. With --stripe-key-file, each refund\n" +
					"goes back to the card's Stripe payments first (partial refunds, up to what each paid) and the\n" +
					"rest by SEPA; the Stripe refunds are sent once the run is booked (--resend-refunds sends those a\n" +
					"failure left behind).",
				Flags: []cli.Flag{organizerFlag, jsonFlag,
					&cli.BoolFlag{Name: "dry-run", Usage: "show the run and its plan; book nothing"},
					&cli.StringFlag{Name: "approve", Usage: "book the run whose plan a dry run printed, if it is still the same"},
					&cli.StringFlag{Name: "stripe-key-file", Usage: "file holding the Stripe secret key: refund to Stripe payments first"},
					&cli.StringFlag{Name: "stripe-api-url", Usage: "Stripe API address (stripe-mock in tests)", Hidden: true},
					&cli.BoolFlag{Name: "resend-refunds", Usage: "only send the Stripe refunds of booked runs not sent yet"},
					&cli.DurationFlag{Name: "sync-window", Value: ledger.DefaultSyncWindow,
						Usage: "pay a refund once every terminal of its event has uploaded since the request, or once this long has passed since it"},
					&cli.StringFlag{Name: "debtor-name", Usage: "the organizer's account holder name (required but with --resend-refunds)"},
					&cli.StringFlag{Name: "debtor-iban", Usage: "the organizer's IBAN (required but with --resend-refunds)"},
					&cli.StringFlag{Name: "debtor-bic", Usage: "the organizer's BIC (optional)"},
					&cli.StringFlag{Name: "out", Usage: "write the XML to this new file (required but with --dry-run or --resend-refunds)"}},
				Action: ledgerPayout,
			},
			{
				Name:   "breakage",
				Usage:  "after an event's refund deadline, book what is left on its cards as breakage",
				Flags:  []cli.Flag{organizerFlag, jsonFlag, &cli.StringFlag{Name: "event", Required: true, Usage: "event id"}},
				Action: ledgerBreakage,
			},
			{
				Name:  "close-day",
				Usage: "record the cash a store counted at the end of a business day (ledger business-day) against what the ledger expects",
				Flags: []cli.Flag{organizerFlag, jsonFlag,
					&cli.StringFlag{Name: "store", Required: true, Usage: "store id"},
					&cli.StringFlag{Name: "day", Usage: "business day, YYYY-MM-DD (default: the business day now)"},
					&cli.Int64Flag{Name: "counted", Required: true, Usage: "counted cash in cents"}},
				Action: ledgerCloseDay,
			},
		}, ledgerCreditCommands()...),
	}
}

// ledgerInit registers an organizer and its own accounts.
func ledgerInit(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		return l.CreateOrganizer(c.Context, c.Int64("organizer"), c.String("name"))
	})
}

// ledgerEvent adds or updates an event.
func ledgerEvent(c *cli.Context) error {
	var dl time.Time
	if t := c.Timestamp("refund-deadline"); t != nil {
		dl = *t
	}
	return withLedger(c, func(l *ledger.Ledger) error {
		return l.AddEvent(c.Context, c.Int64("organizer"), c.String("event"), c.String("name"), dl)
	})
}

// ledgerMerchant adds a merchant.
func ledgerMerchant(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		return l.AddMerchant(c.Context, c.Int64("organizer"), c.String("merchant"), c.String("name"))
	})
}

// ledgerStore adds a store with its cash account.
func ledgerStore(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		return l.AddStore(c.Context, c.Int64("organizer"), c.String("store"), c.String("name"))
	})
}

// ledgerMerchants lists the organizer's merchants.
func ledgerMerchants(c *cli.Context) error {
	return ledgerParties(c, (*ledger.Ledger).Merchants, "MERCHANT")
}

// ledgerStores lists the organizer's stores.
func ledgerStores(c *cli.Context) error {
	return ledgerParties(c, (*ledger.Ledger).Stores, "STORE")
}

// ledgerVerify checks the ledger's invariants; a broken one exits with status 3.
func ledgerVerify(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		err := l.Verify(c.Context)
		var ie *ledger.InvariantError
		if c.Bool("json") {
			res := map[string]any{"ok": err == nil}
			if errors.As(err, &ie) {
				res["problem"] = ie.Problem
			}
			if pe := printJSON(c, res); pe != nil {
				return pe
			}
		} else if err == nil {
			fmt.Fprintln(c.App.Writer, "ledger ok")
		}
		if errors.As(err, &ie) {
			return cli.Exit(err.Error(), 3)
		}
		return err
	})
}

// ledgerAlerts lists clone and tamper alerts, open and reviewed.
func ledgerAlerts(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		alerts, err := l.Alerts(c.Context, c.Int64("organizer"))
		if err != nil {
			return err
		}
		rows := []alertRow{}
		for _, a := range alerts {
			rows = append(rows, newAlertRow(a))
		}
		if c.Bool("json") {
			return printJSON(c, rows)
		}
		for _, r := range rows {
			block := "notice"
			if r.Blocking {
				block = "blocking"
			}
			fmt.Fprintf(c.App.Writer, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Card, r.Kind, r.State, block, r.Txn, r.Detail)
		}
		return nil
	})
}

// ledgerPayout exports the requested refunds as one SEPA file and books it.
func ledgerPayout(c *cli.Context) error {
	org := c.Int64("organizer")
	var prov *stripepay.Provider
	if c.String("stripe-key-file") != "" {
		var err error
		if prov, err = stripeProvider(c); err != nil {
			return err
		}
	}
	if c.Bool("resend-refunds") {
		if prov == nil {
			return cli.Exit("--resend-refunds needs --stripe-key-file", 2)
		}
		return withStack(c, partDatabase, func(l *ledger.Ledger) error {
			n, err := sendProviderRefunds(c, l, prov, org)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%d Stripe refunds sent\n", n)
			return nil
		})
	}
	if c.String("debtor-name") == "" || c.String("debtor-iban") == "" {
		return cli.Exit("--debtor-name and --debtor-iban are required", 2)
	}
	dry := c.Bool("dry-run")
	if !dry && c.String("out") == "" {
		return cli.Exit("--out is required (or --dry-run to review the run first)", 2)
	}
	// Every run is reviewed, SEPA only or mixed: HQ reads a dry run's
	// lines, then books exactly that plan.
	if !dry && c.String("approve") == "" {
		return cli.Exit("a payout run is reviewed first: run with --dry-run, then --approve PLAN", 2)
	}
	opts := ledger.PayoutOptions{SyncWindow: c.Duration("sync-window"), DryRun: dry, Approve: c.String("approve")}
	if prov != nil {
		opts.RefundProviders = []string{"stripe"}
	}
	// The refunds' payout details are sealed by the HSM.
	return withStack(c, partHSM|partDatabase, func(l *ledger.Ledger) error {
		p, err := l.RunPayout(c.Context, org, sepa.Party{Name: c.String("debtor-name"),
			IBAN: c.String("debtor-iban"), BIC: c.String("debtor-bic")}, time.Now().AddDate(0, 0, 1), opts)
		if errors.Is(err, ledger.ErrNothingToPay) {
			if p.Waiting > 0 {
				return fmt.Errorf("no refund is due yet: %d wait for their event's terminals to upload, or for --sync-window (%s) to pass since the request; run loopcard ledger payout again later",
					p.Waiting, c.Duration("sync-window"))
			}
			return fmt.Errorf("no refunds waiting to be paid")
		}
		if errors.Is(err, ledger.ErrPlanChanged) {
			return fmt.Errorf("%w: review it again with loopcard ledger payout --dry-run", err)
		}
		if err != nil {
			return err
		}
		if dry {
			if c.Bool("json") {
				return printJSON(c, payoutJSON(p, ""))
			}
			for _, ln := range p.Lines {
				fmt.Fprintf(c.App.Writer, "refund %s card %s: %s (%s to its payments, %s by SEPA)\n", ln.Refund, ln.Card,
					money(ln.Amount), money(ln.Provider), money(ln.SEPA))
			}
			fmt.Fprintf(c.App.Writer, "%d refunds, %s: %s back to payments, %s by SEPA; nothing booked\n", p.Count, money(p.Total),
				money(p.ProviderTotal), money(p.SEPATotal))
			fmt.Fprintf(c.App.Writer, "approve with: loopcard ledger payout --approve %s (and the same flags, --out FILE)\n", p.Plan)
			return nil
		}
		if p.XML != nil {
			f, err := os.OpenFile(c.String("out"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("%w (the payout %s is booked: its refunds are marked exported)", err, p.ID)
			}
			if _, err := f.Write(p.XML); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		sent := 0
		if prov != nil {
			if sent, err = sendProviderRefunds(c, l, prov, org); err != nil {
				return err
			}
		}
		if c.Bool("json") {
			m := payoutJSON(p, c.String("out"))
			m["payout"], m["provider_refunds_sent"] = p.ID.String(), sent
			return printJSON(c, m)
		}
		fmt.Fprintf(c.App.Writer, "%d refunds, %s: %s by SEPA in %s, %s back to payments (%d Stripe refunds sent)\n", p.Count, money(p.Total),
			money(p.SEPATotal), c.String("out"), money(p.ProviderTotal), sent)
		if p.Waiting > 0 {
			fmt.Fprintf(c.App.Writer, "%d more wait for their event's terminals to upload (or for --sync-window to pass); run loopcard ledger payout again later\n", p.Waiting)
		}
		return nil
	})
}

func payoutJSON(p ledger.Payout, file string) map[string]any {
	lines := make([]map[string]any, len(p.Lines))
	for i, ln := range p.Lines {
		lines[i] = map[string]any{"refund": ln.Refund.String(), "card": ln.Card, "amount": ln.Amount, "provider": ln.Provider, "sepa": ln.SEPA}
	}
	return map[string]any{"plan": p.Plan, "count": p.Count, "total": p.Total, "sepa_total": p.SEPATotal, "provider_total": p.ProviderTotal,
		"file": file, "waiting": p.Waiting, "nothing_due": p.NothingDue, "lines": lines}
}

// sendProviderRefunds sends the Stripe refunds of booked runs not sent
// yet, each with its line id as Stripe's idempotency key.
func sendProviderRefunds(c *cli.Context, l *ledger.Ledger, prov *stripepay.Provider, org int64) (int, error) {
	lines, err := l.PendingProviderRefunds(c.Context, org)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ln := range lines {
		if ln.Provider != "stripe" {
			continue
		}
		id, err := prov.Refund(c.Context, ln.Payment, ln.Amount, ln.Line.String())
		if err != nil {
			return n, fmt.Errorf("%w; %d of %d Stripe refunds sent, the rest are booked: send them with loopcard ledger payout --resend-refunds --organizer %d --stripe-key-file FILE",
				err, n, len(lines), org)
		}
		if err := l.ProviderRefundSent(c.Context, org, ln.Line, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ledgerBreakage books what is left on an event's cards as breakage after its refund deadline.
func ledgerBreakage(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		if err := l.CheckEvent(c.Context, c.Int64("organizer"), c.String("event")); err != nil {
			return hintUnknown(err)
		}
		n, total, err := l.CloseRefundWindow(c.Context, c.Int64("organizer"), c.String("event"))
		if errors.Is(err, ledger.ErrWindowOpen) {
			return fmt.Errorf("the refund window of %s is still open (or has no deadline): set one with loopcard ledger event --refund-deadline", c.String("event"))
		}
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c, map[string]any{"cards": n, "total": total})
		}
		fmt.Fprintf(c.App.Writer, "%d cards, %s booked as breakage\n", n, money(total))
		return nil
	})
}

// ledgerCloseDay records the cash a store counted at the end of a day.
func ledgerCloseDay(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		day, err := businessDayFlag(c, l, "day")
		if err != nil {
			return err
		}
		if err := l.CheckStore(c.Context, c.Int64("organizer"), c.String("store")); err != nil {
			return hintUnknown(err)
		}
		d, err := l.CloseStoreDay(c.Context, c.Int64("organizer"), c.String("store"), day, c.Int64("counted"))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c, map[string]any{"store": d.Store, "day": d.Day.Format(time.DateOnly), "start": d.Start, "end": d.End,
				"expected_cash": d.Expected, "counted_cash": d.Counted, "difference": d.Difference()})
		}
		fmt.Fprintf(c.App.Writer, "%s, business day %s: expected %s, counted %s, difference %s\n", d.Store, d.Day.Format(time.DateOnly),
			money(d.Expected), money(d.Counted), money(d.Difference()))
		return nil
	})
}

// ledgerEvents lists the organizer's events.
func ledgerEvents(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		evs, err := l.Events(c.Context, c.Int64("organizer"))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			if evs == nil {
				evs = []ledger.EventInfo{}
			}
			return printJSON(c, evs)
		}
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "EVENT\tNAME\tREFUND DEADLINE")
		for _, e := range evs {
			dl := "-"
			if e.RefundDeadline != nil {
				dl = e.RefundDeadline.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", e.ID, e.Name, dl)
		}
		return w.Flush()
	})
}

// ledgerParties lists merchants or stores.
func ledgerParties(c *cli.Context, list func(*ledger.Ledger, context.Context, int64) ([]ledger.Party, error), header string) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		ps, err := list(l, c.Context, c.Int64("organizer"))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			if ps == nil {
				ps = []ledger.Party{}
			}
			return printJSON(c, ps)
		}
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "%s\tNAME\n", header)
		for _, p := range ps {
			fmt.Fprintf(w, "%s\t%s\n", p.ID, p.Name)
		}
		return w.Flush()
	})
}

// withLedger opens the database and runs fn with a ledger on it.
func withLedger(c *cli.Context, fn func(*ledger.Ledger) error) error {
	return withStack(c, partDatabase, fn)
}

// withStack is withLedger that opens p (partHSM too: the ledger then
// seals and opens refunds' payout details with the HSM).
func withStack(c *cli.Context, p parts, fn func(*ledger.Ledger) error) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", c.Args().First())
	}
	st, err := openStack(c, p)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st.Ledger)
}

// money formats cents as a decimal amount.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}
