package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/stack"
	"github.com/loopcard/loopcard/cmd/internal/runbook"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a whole event with Loopcard's own commands, as docs/run-an-event.md does, and print each one",
		Description: "Each step is a loopcard command in its own process, printed as it runs: a private pcscd with a\n" +
			"vpcd reader, the key ceremony, the API, organizer and event, a batch personalized card by card through the\n" +
			"reader, the handover to two stores, cards sold with cash written onto them by the store client, two terminals\n" +
			"paying, a cloned card caught, an online top-up through the card page written at the next tap, a refund paid\n" +
			"out in a SEPA file, the day closed at each store, the audit export verified, and every card read back and\n" +
			"compared with the ledger. Everything goes to DATA_DIR/demo (replaced on every run), which has its own\n" +
			"embedded HSM token and database unless --hsm or --database-url are given. It needs the machine's pcscd stopped.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "cards", Value: 10, Usage: "cards in the batch (at least 6)"},
			&cli.IntFlag{Name: "taps", Value: 4, Usage: "payments each of the two terminals takes"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the demo's choices (0: a new one)"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON on stdout (the commentary goes to stderr)"},
			// The end-to-end test insists on the browser step.
			&cli.BoolFlag{Name: "require-browser", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit("demo takes no arguments", 2)
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, c)
		},
	}
}

func runDemo(ctx context.Context, c *cli.Context) error {
	cfg := getConfig(c)
	out := c.App.Writer
	if c.Bool("json") {
		out = c.App.ErrWriter
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: the loopcard binary: %w", err)
	}
	if err := stack.PrepareDataDir(cfg.DataDir); err != nil {
		return err
	}
	dir := filepath.Join(cfg.DataDir, "demo")
	// The commands' own logs go to a file beside the outputs.
	logPath := filepath.Join(cfg.DataDir, "demo-commands.log")
	logw, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer logw.Close()
	s, err := runbook.Run(ctx, runbook.Config{Exe: exe, DataDir: dir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL,
		Cards: c.Int("cards"), Taps: c.Int("taps"), Seed: c.Uint64("seed"), Out: out, Log: logw, RequireBrowser: c.Bool("require-browser")})
	if s != nil {
		s.Files["commands_log"] = logPath
	}
	if err != nil {
		return fmt.Errorf("demo: %w (the commands' logs are in %s)", err, logPath)
	}
	if c.Bool("json") {
		return printJSON(c, s)
	}
	return s.WriteText(c.App.Writer)
}
