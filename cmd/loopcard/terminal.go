package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
)

// terminalConnFlags say where a terminal keeps its state and how it
// reaches the API.
var terminalConnFlags = []cli.Flag{
	&cli.StringFlag{Name: "state", Usage: "the terminal's state directory (identity, session key, queue)", EnvVars: []string{"LOOPCARD_TERMINAL_STATE"}},
	&cli.StringFlag{Name: "url", Value: "https://127.0.0.1:8443", Usage: "the API's base URL", EnvVars: []string{"LOOPCARD_URL"}},
	&cli.StringFlag{Name: "ca", Usage: "PEM file of the CA the API's certificate chains to (default: DATA_DIR/tls/ca.pem)", EnvVars: []string{"LOOPCARD_CA"}},
}

// terminalFlags add --event and --merchant, which are not needed: the
// terminal's event and merchant are fixed at enrolment. Given, they must
// match its identity.
var terminalFlags = append([]cli.Flag{
	&cli.StringFlag{Name: "event", Usage: "not needed (fixed at enrolment); if given, refuse to run unless the terminal's event is this", EnvVars: []string{"LOOPCARD_EVENT"}},
	&cli.StringFlag{Name: "merchant", Usage: "not needed (fixed at enrolment); if given, refuse to run unless the terminal's merchant is this", EnvVars: []string{"LOOPCARD_MERCHANT"}},
}, terminalConnFlags...)

func terminalCommand() *cli.Command {
	return &cli.Command{
		Name:  "terminal",
		Usage: "register terminals (HQ); the reference terminal: enrol, take payments offline, upload; simulate many terminals",
		Subcommands: []*cli.Command{
			{
				Name:  "register",
				Usage: "(HQ) register a terminal of a merchant and write its one-time enrolment token to a new file",
				Description: "Runs next to HQ's database, like `loopcard ledger merchant`. The token goes to a new file (mode 0600),\n" +
					"never to the screen; take the file to the terminal and run the command this one prints.\n" +
					"Without --event the terminal takes the organizer's only event when it enrols.",
				Flags: []cli.Flag{organizerFlag,
					&cli.StringFlag{Name: "terminal", Required: true, Usage: "terminal id (a-z 0-9 . _ -)"},
					&cli.StringFlag{Name: "merchant", Required: true, Usage: "the merchant whose payments it takes"},
					&cli.StringFlag{Name: "event", Usage: "the event it takes payments for (default: the organizer's only event)"},
					&cli.StringFlag{Name: "out", Usage: "write the token to this new file (default: ./TERMINAL.token)"},
					&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "how long the token is valid, at most 720h"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: terminalRegister,
			},
			{
				Name:   "list",
				Usage:  "(HQ) list terminals: merchant, event, status (created, enrolled, revoked), enrolment, last upload",
				Flags:  []cli.Flag{organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
				Action: terminalList,
			},
			{
				Name:  "enrol",
				Usage: "enrol this terminal with its one-time token (read from --token-file or LOOPCARD_ENROL_TOKEN)",
				Flags: append([]cli.Flag{
					organizerFlag,
					&cli.StringFlag{Name: "terminal", Required: true, Usage: "terminal id, as HQ registered it"},
					&cli.StringFlag{Name: "token-file", Usage: "file holding the one-time enrolment token"},
				}, terminalConnFlags...),
				Action: terminalEnrol,
			},
			{
				Name:  "pay",
				Usage: "take payments of --amount cents from cards presented to a PC/SC reader (a `loopcard vcard` in a vpcd slot works)",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "reader", Required: true, Usage: "PC/SC reader name, index or part of its name"},
					&cli.Int64Flag{Name: "amount", Required: true, Usage: "amount of each payment in cents"},
					&cli.IntFlag{Name: "count", Value: 1, Usage: "payments to take, one card presentation each (0: until SIGINT)"},
					&cli.DurationFlag{Name: "upload-every", Value: 5 * time.Second, Usage: "how often the background uploader runs"},
				}, terminalFlags...),
				Action: terminalPay,
			},
			{
				Name:   "upload",
				Usage:  "upload every committed transaction now",
				Flags:  terminalFlags,
				Action: terminalUpload,
			},
			{
				Name:   "status",
				Usage:  "show the queue and the session key",
				Flags:  append([]cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}}, terminalFlags...),
				Action: terminalStatus,
			},
			{
				Name:  "simulate",
				Usage: "drive many simulated terminals with virtual cards; report taps per second and upload lag",
				Description: "Without --url, everything runs in this process on embedded defaults (a fresh database \"sim\").\n" +
					"With --url, the terminals talk to a running `loopcard serve` whose HSM and database this command\n" +
					"also opens (same --data-dir, --hsm, --database-url) to set up the event and the cards.",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "terminals", Value: 8, Usage: "simulated terminals"},
					&cli.IntFlag{Name: "taps", Value: 100, Usage: "payments per terminal"},
					&cli.IntFlag{Name: "cards-per-terminal", Value: 4, Usage: "virtual cards per terminal"},
					&cli.IntFlag{Name: "restart-every", Usage: "kill each terminal in the middle of a card's commit every N taps and restart it from its state directory (0: never)"},
					&cli.DurationFlag{Name: "tap-every", Usage: "pause of each terminal between two taps (0: as fast as the cards answer)"},
					&cli.StringFlag{Name: "url", Usage: "the API's base URL (default: serve one in this process)"},
					&cli.StringFlag{Name: "ca", Usage: "PEM file of the API's CA (default: DATA_DIR/tls/ca.pem)"},
					organizerFlag,
					&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				},
				Action: terminalSimulate,
			},
			terminalUICommand(),
		},
	}
}

func caFile(c *cli.Context) string {
	if f := c.String("ca"); f != "" {
		return f
	}
	return filepath.Join(getConfig(c).DataDir, "tls", "ca.pem")
}

func terminalConfig(c *cli.Context) (terminal.Config, error) {
	if c.String("state") == "" {
		return terminal.Config{}, errors.New("--state is required: the terminal's state directory")
	}
	pem, err := os.ReadFile(caFile(c))
	if err != nil {
		return terminal.Config{}, fmt.Errorf("CA file: %w (give --ca)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return terminal.Config{}, fmt.Errorf("CA file %s holds no PEM certificate", caFile(c))
	}
	hc := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	// enrol has no --event or --merchant: they come from the server.
	return terminal.Config{StateDir: c.String("state"), URL: c.String("url"), HTTP: hc, Event: c.String("event"),
		Merchant: c.String("merchant"), Logger: logger(c)}, nil
}

func openTerminal(c *cli.Context) (*terminal.Terminal, error) {
	cfg, err := terminalConfig(c)
	if err != nil {
		return nil, err
	}
	t, err := terminal.Open(cfg)
	if errors.Is(err, terminal.ErrNotEnrolled) {
		return nil, fmt.Errorf("no terminal identity in %s: enrol it first with loopcard terminal enrol --terminal ID --token-file FILE --state %s", cfg.StateDir, cfg.StateDir)
	}
	return t, err
}

// terminalTokenFile creates path for the enrolment token: a new file that
// only its owner reads. It refuses to replace one.
func terminalTokenFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%s exists: give another --out, or remove it if its token is no longer wanted", path)
	}
	return f, err
}

func terminalRegister(c *cli.Context) (err error) {
	org, id, merchant, event := c.Int64("organizer"), c.String("terminal"), c.String("merchant"), c.String("event")
	ttl := c.Duration("ttl")
	// The audit record of a privileged action, like store.enrol's.
	defer func() {
		outcome := "ok"
		if err != nil {
			outcome = "failed"
		}
		logger(c).Info("terminal.register", slog.Int64("org", org), slog.String("terminal", id), slog.String("merchant", merchant),
			slog.String("event", event), slog.String("outcome", outcome))
	}()
	switch {
	case !terminaltx.ValidID(id):
		return cli.Exit("--terminal: ids are 1 to 64 of a-z 0-9 . _ -", 2)
	case !terminaltx.ValidID(merchant):
		return cli.Exit("--merchant: ids are 1 to 64 of a-z 0-9 . _ -", 2)
	case event != "" && !terminaltx.ValidID(event):
		return cli.Exit("--event: ids are 1 to 64 of a-z 0-9 . _ -", 2)
	case ttl <= 0 || ttl > 30*24*time.Hour:
		return cli.Exit("--ttl: between 1s and 720h", 2)
	}
	out := c.String("out")
	if out == "" {
		out = id + ".token"
	}
	// The file first: a refused --out changes nothing in the ledger.
	f, err := terminalTokenFile(out)
	if err != nil {
		return err
	}
	written := false
	defer func() {
		if !written {
			f.Close()
			os.Remove(out)
		}
	}()
	return withLedger(c, func(l *ledger.Ledger) error {
		tok, err := l.RegisterTerminal(c.Context, org, ledger.TerminalRegistration{Terminal: id, Merchant: merchant, Event: event, TTL: ttl})
		switch {
		case errors.Is(err, ledger.ErrNoSuchMerchant):
			return fmt.Errorf("organizer %d has no merchant %q: add it with loopcard ledger merchant --organizer %d --merchant %s --name NAME", org, merchant, org, merchant)
		case errors.Is(err, ledger.ErrNoSuchEvent):
			return fmt.Errorf("organizer %d has no event %q: add it with loopcard ledger event --organizer %d --event %s --name NAME", org, event, org, event)
		case errors.Is(err, ledger.ErrExists):
			return fmt.Errorf("terminal %s is enrolled already; revoke it (DELETE /v1/hq/terminals/%s) and register a new id", id, id)
		case err != nil:
			return err
		}
		if _, err := f.WriteString(tok.Reveal() + "\n"); err != nil {
			return fmt.Errorf("%s: %w (the terminal is registered: run this command again with another --out for a new token)", out, err)
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		written = true
		expires := time.Now().Add(ttl).UTC().Truncate(time.Second)
		abs, err := filepath.Abs(out)
		if err != nil {
			abs = out
		}
		next := fmt.Sprintf("loopcard terminal enrol --organizer %d --terminal %s --token-file %s --state DIR --url URL --ca CA.pem", org, id, out)
		if c.Bool("json") {
			return printJSON(c, map[string]any{"terminal": id, "merchant": merchant, "event": event, "token_file": abs,
				"token_expires_at": expires, "next": next})
		}
		ev := event
		if ev == "" {
			ev = "the organizer's only event (fixed when it enrols)"
		}
		fmt.Fprintf(c.App.Writer, "terminal %s registered: merchant %s, event %s\n", id, merchant, ev)
		fmt.Fprintf(c.App.Writer, "its one-time enrolment token is in %s (mode 0600), valid until %s\n", abs, expires.Format(time.RFC3339))
		fmt.Fprintf(c.App.Writer, "on the terminal, run:\n  %s\n", next)
		return nil
	})
}

func terminalList(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		recs, err := l.Terminals(c.Context, c.Int64("organizer"))
		if err != nil {
			return err
		}
		type row struct {
			Terminal       string     `json:"terminal"`
			Merchant       string     `json:"merchant"`
			Event          string     `json:"event"`
			Status         string     `json:"status"`
			EnrolledAt     *time.Time `json:"enrolled_at,omitempty"`
			TokenExpiresAt *time.Time `json:"token_expires_at,omitempty"`
			LastUpload     *time.Time `json:"last_upload,omitempty"`
		}
		rows := []row{}
		for _, r := range recs {
			rows = append(rows, row{r.Terminal, r.Merchant, r.Event, r.Status, r.EnrolledAt, r.TokenExpiresAt, r.LastUpload})
		}
		if c.Bool("json") {
			return printJSON(c, rows)
		}
		when := func(t *time.Time) string {
			if t == nil {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TERMINAL\tMERCHANT\tEVENT\tSTATUS\tENROLLED\tLAST UPLOAD")
		for _, r := range rows {
			ev := r.Event
			if ev == "" {
				ev = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Terminal, r.Merchant, ev, r.Status, when(r.EnrolledAt), when(r.LastUpload))
		}
		return tw.Flush()
	})
}

func terminalEnrol(c *cli.Context) error {
	cfg, err := terminalConfig(c)
	if err != nil {
		return err
	}
	tok := os.Getenv("LOOPCARD_ENROL_TOKEN")
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		return errors.New("no enrolment token: give --token-file or set LOOPCARD_ENROL_TOKEN")
	}
	if err := terminal.Enrol(c.Context, cfg, c.Int64("organizer"), c.String("terminal"), tok); err != nil {
		return err
	}
	t, err := terminal.Open(cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	fmt.Fprintf(c.App.Writer, "terminal %s enrolled for organizer %d, merchant %s, event %s; identity in %s\n",
		t.ID(), t.Org(), t.Merchant(), t.Event(), filepath.Join(cfg.StateDir, terminal.IdentityFile))
	fmt.Fprintf(c.App.Writer, "take payments with: loopcard terminal pay --state %s --reader READER --amount CENTS\n", cfg.StateDir)
	return nil
}

func terminalPay(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, err := openTerminal(c)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := t.EnsureSessionKey(ctx); err != nil {
		return err
	}
	r, err := pcsc.Open(c.String("reader"))
	if err != nil {
		return err
	}
	defer r.Close()
	upCtx, stopUp := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.RunUploader(upCtx, c.Duration("upload-every"), terminal.Backoff{}, nil)
	}()
	defer func() { stopUp(); <-done }()
	fmt.Fprintf(c.App.ErrWriter, "terminal %s on %s: present a card\n", t.ID(), r.Name())
	for n := 0; c.Int("count") == 0 || n < c.Int("count"); {
		card, err := r.WaitForCard(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// Online top-ups waiting for this card go onto it first.
		loads, err := t.WritePendingLoads(ctx, card, t.ConfirmLoad)
		for _, l := range loads {
			fmt.Fprintf(c.App.Writer, "loaded %d.%02d onto the card (online top-up)\n", l.Amount/100, l.Amount%100)
		}
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "loopcard: pending loads not written: %v\n", err)
		}
		s, err := t.Debit(card, c.Int64("amount"))
		switch {
		case err == nil:
			n++
			fmt.Fprintf(c.App.Writer, "paid %d.%02d: card %X sequence %d, balance %d.%02d\n", s.Amount/100, s.Amount%100, s.Card, s.CardSeq, s.BalanceAfter/100, s.BalanceAfter%100)
		case errors.Is(err, terminal.ErrInsufficient), errors.Is(err, terminal.ErrUncertain), errors.Is(err, terminal.ErrUnresolved):
			fmt.Fprintf(c.App.Writer, "declined: %v\n", err)
		default:
			fmt.Fprintf(c.App.ErrWriter, "loopcard: card: %v\n", err)
		}
		_ = card.WaitForRemoval(ctx)
		card.Close()
	}
	res, err := t.Upload(ctx)
	fmt.Fprintf(c.App.Writer, "uploaded: %d accepted, %d duplicates, %d held, %d rejected\n", res.Accepted, res.Duplicate, res.Held, res.Rejected)
	return err
}

func terminalUpload(c *cli.Context) error {
	t, err := openTerminal(c)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := t.EnsureSessionKey(c.Context); err != nil {
		return err
	}
	res, err := t.Upload(c.Context)
	fmt.Fprintf(c.App.Writer, "uploaded in %d batches: %d accepted, %d duplicates, %d held, %d rejected\n", res.Batches, res.Accepted, res.Duplicate, res.Held, res.Rejected)
	return err
}

func terminalStatus(c *cli.Context) error {
	t, err := openTerminal(c)
	if err != nil {
		return err
	}
	defer t.Close()
	st := struct {
		Terminal          string          `json:"terminal"`
		Org               int64           `json:"organizer"`
		Merchant          string          `json:"merchant"`
		Event             string          `json:"event"`
		Queue             terminal.Counts `json:"queue"`
		SessionKeyExpires time.Time       `json:"session_key_expires,omitzero"`
	}{t.ID(), t.Org(), t.Merchant(), t.Event(), t.Queue().Counts(), t.SessionKeyExpires()}
	if c.Bool("json") {
		return printJSON(c, st)
	}
	fmt.Fprintf(c.App.Writer, "terminal %s (organizer %d, merchant %s, event %s)\nqueue: %d pending, %d to upload, %d rejected\nsession key expires: %s\n",
		st.Terminal, st.Org, st.Merchant, st.Event, st.Queue.Pending, st.Queue.Committed, st.Queue.Rejected, st.SessionKeyExpires.Format(time.RFC3339))
	return nil
}

func terminalSimulate(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := getConfig(c)
	var s *sim.Stack
	var err error
	if c.String("url") == "" {
		s, err = sim.StartStack(ctx, sim.StackConfig{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL, Database: "sim"})
	} else {
		s, err = sim.AttachStack(ctx, sim.AttachConfig{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL,
			URL: c.String("url"), CAFile: caFile(c)})
	}
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := sim.Simulate(ctx, s, sim.SimConfig{Org: c.Int64("organizer"), Terminals: c.Int("terminals"), Taps: c.Int("taps"),
		CardsPerTerminal: c.Int("cards-per-terminal"), RestartEvery: c.Int("restart-every"), TapEvery: c.Duration("tap-every"), Dir: filepath.Join(cfg.DataDir, "sim"), Out: c.App.ErrWriter})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, rep)
	}
	fmt.Fprintf(c.App.Writer, "%d terminals, %d cards: %d taps at %.0f taps/s, %d restarts; upload lag p50 %.0f ms, p95 %.0f ms, max %.0f ms; %d recorded by the ledger (%d expected, %d acknowledged), %d cards differ\n",
		rep.Terminals, rep.Cards, rep.Taps, rep.TapsPerSecond, rep.Restarts, rep.Lag.P50, rep.Lag.P95, rep.Lag.Max, rep.Recorded, rep.Taps+rep.CrashCommitted, rep.Acked, rep.Mismatched)
	if rep.Recorded != rep.Taps+rep.CrashCommitted || rep.Acked > rep.Recorded || rep.Mismatched != 0 {
		return cli.Exit("the ledger does not match the taps", 1)
	}
	return nil
}
