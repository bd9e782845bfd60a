package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/demo"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
)

var terminalFlags = []cli.Flag{
	&cli.StringFlag{Name: "state", Usage: "the terminal's state directory (identity, session key, queue)", EnvVars: []string{"LOOPCARD_TERMINAL_STATE"}},
	&cli.StringFlag{Name: "url", Value: "https://127.0.0.1:8443", Usage: "the API's base URL", EnvVars: []string{"LOOPCARD_URL"}},
	&cli.StringFlag{Name: "ca", Usage: "PEM file of the CA the API's certificate chains to (default: DATA_DIR/tls/ca.pem)", EnvVars: []string{"LOOPCARD_CA"}},
	&cli.StringFlag{Name: "event", Usage: "the event the terminal takes payments for", EnvVars: []string{"LOOPCARD_EVENT"}},
	&cli.StringFlag{Name: "merchant", Usage: "the merchant the terminal belongs to", EnvVars: []string{"LOOPCARD_MERCHANT"}},
}

func terminalCommand() *cli.Command {
	return &cli.Command{
		Name:  "terminal",
		Usage: "the reference terminal: enrol, take payments offline, upload; simulate many terminals",
		Subcommands: []*cli.Command{
			{
				Name:  "enrol",
				Usage: "enrol this terminal with its one-time token (read from --token-file or LOOPCARD_ENROL_TOKEN)",
				Flags: append([]cli.Flag{
					organizerFlag,
					&cli.StringFlag{Name: "terminal", Required: true, Usage: "terminal id, as HQ registered it"},
					&cli.StringFlag{Name: "token-file", Usage: "file holding the one-time enrolment token"},
				}, terminalFlags...),
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
					&cli.StringFlag{Name: "url", Usage: "the API's base URL (default: serve one in this process)"},
					&cli.StringFlag{Name: "ca", Usage: "PEM file of the API's CA (default: DATA_DIR/tls/ca.pem)"},
					organizerFlag,
					&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				},
				Action: terminalSimulate,
			},
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
	return terminal.Config{StateDir: c.String("state"), URL: c.String("url"), HTTP: hc, Event: c.String("event"),
		Merchant: c.String("merchant"), Logger: logger(c)}, nil
}

func openTerminal(c *cli.Context) (*terminal.Terminal, error) {
	cfg, err := terminalConfig(c)
	if err != nil {
		return nil, err
	}
	if cfg.Event == "" || cfg.Merchant == "" {
		return nil, errors.New("--event and --merchant are required")
	}
	return terminal.Open(cfg)
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
	fmt.Fprintf(c.App.Writer, "terminal %s enrolled; identity in %s\n", c.String("terminal"), filepath.Join(cfg.StateDir, terminal.IdentityFile))
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
		Queue             terminal.Counts `json:"queue"`
		SessionKeyExpires time.Time       `json:"session_key_expires,omitzero"`
	}{t.ID(), t.Org(), t.Queue().Counts(), t.SessionKeyExpires()}
	if c.Bool("json") {
		return printJSON(c, st)
	}
	fmt.Fprintf(c.App.Writer, "terminal %s (organizer %d)\nqueue: %d pending, %d to upload, %d rejected\nsession key expires: %s\n",
		st.Terminal, st.Org, st.Queue.Pending, st.Queue.Committed, st.Queue.Rejected, st.SessionKeyExpires.Format(time.RFC3339))
	return nil
}

func terminalSimulate(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := getConfig(c)
	var s *demo.Stack
	var err error
	if c.String("url") == "" {
		s, err = demo.StartStack(ctx, demo.StackConfig{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL, Database: "sim"})
	} else {
		s, err = demo.AttachStack(ctx, demo.AttachConfig{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL,
			URL: c.String("url"), CAFile: caFile(c)})
	}
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := demo.Simulate(ctx, s, demo.SimConfig{Org: c.Int64("organizer"), Terminals: c.Int("terminals"), Taps: c.Int("taps"),
		CardsPerTerminal: c.Int("cards-per-terminal"), RestartEvery: c.Int("restart-every"), Dir: filepath.Join(cfg.DataDir, "sim"), Out: c.App.ErrWriter})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, rep)
	}
	fmt.Fprintf(c.App.Writer, "%d terminals, %d cards: %d taps at %.0f taps/s, %d restarts; upload lag p50 %.0f ms, p95 %.0f ms, max %.0f ms; %d recorded by the ledger (%d expected), %d cards differ\n",
		rep.Terminals, rep.Cards, rep.Taps, rep.TapsPerSecond, rep.Restarts, rep.Lag.P50, rep.Lag.P95, rep.Lag.Max, rep.Recorded, rep.Taps+rep.CrashCommitted, rep.Mismatched)
	if rep.Recorded != rep.Taps+rep.CrashCommitted || rep.Mismatched != 0 {
		return cli.Exit("the ledger does not match the taps", 1)
	}
	return nil
}
