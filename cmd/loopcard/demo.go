package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/demo"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a whole event on embedded defaults and print what happens",
		Description: "Key ceremony in the HSM, a batch of virtual cards personalized with labels, handover to two stores,\n" +
			"cards sold with cash, terminals paying offline and uploading late with duplicates, a cloned card caught,\n" +
			"day close per store, the audit export verified offline. Outputs go to DATA_DIR/demo (replaced on every run).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "cards", Value: 20, Usage: "cards in the batch (at least 6)"},
			&cli.IntFlag{Name: "taps", Value: 30, Usage: "offline payments per terminal"},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the demo's choices (0: a new one)"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON on stdout (the commentary goes to stderr)"},
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
	s, err := demo.Run(ctx, demo.Config{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL,
		Cards: c.Int("cards"), TapsPerTerminal: c.Int("taps"), Seed: c.Uint64("seed"), Out: out})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, s)
	}
	return s.WriteText(c.App.Writer)
}
