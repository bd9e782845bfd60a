// Command loopcard is the Loopcard command line: key ceremony, card
// personalization, ledger, API server and audit, all in one binary.
//
// The command is thin: it parses flags, wires the library packages together
// and prints. Every subcommand that prints something a machine may read has a
// --json form.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code, so that tests
// and testscript can drive the CLI in-process.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.Run(flagsFirst(app, args)); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != 0 {
			if msg := err.Error(); msg != "" {
				fmt.Fprintf(stderr, "loopcard: %s\n", msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintf(stderr, "loopcard: %s\n", err)
		return 1
	}
	return 0
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "loopcard",
		Usage:     "closed-loop cashless payments on MIFARE DESFire cards",
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by run, in the CLI's own style.
		ExitErrHandler:       func(*cli.Context, error) {},
		EnableBashCompletion: true,
		Flags:                globalFlags(),
		Before: func(c *cli.Context) error {
			cfg, err := configFromContext(c)
			if err != nil {
				return err
			}
			c.App.Metadata = map[string]any{configKey: cfg}
			return nil
		},
		Commands: commands(),
	}
	usageErrors(app.Name, app.Commands)
	auditCommands(app.Commands, "")
	return app
}

// commands lists every subcommand; each lives in a file of its own name.
func commands() []*cli.Command {
	return []*cli.Command{
		versionCommand(),
		keysCommand(),
		batchCommand(),
		personalizeCommand(),
		vcardCommand(),
		readerCommand(),
		serveCommand(),
		tokenCommand(),
		staffCommand(),
		terminalCommand(),
		demoCommand(),
		handoverCommand(),
		storeCommand(),
		auditCommand(),
		ledgerCommand(),
		menuCommand(),
		reportCommand(),
		backupCommand(),
		restoreCommand(),
		dbCommand(),
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(c.App.Writer, version())
			return nil
		},
	}
}

// logger returns the CLI's structured logger: text on stderr, never secrets.
func logger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
