package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/personalize/reader/pcscd"
)

func readerCommand() *cli.Command {
	return &cli.Command{
		Name:  "reader",
		Usage: "a virtual PC/SC reader for trying Loopcard without hardware",
		Subcommands: []*cli.Command{{
			Name:      "serve",
			Usage:     "run a private pcscd with one vpcd reader slot until SIGINT or SIGTERM",
			UsageText: "loopcard reader serve --port PORT --dir DIR [--json]",
			Description: `Starts pcscd (Debian package pcscd) with the vpcd driver (vsmartcard-vpcd)
listening on PORT for a virtual card, and its own socket in DIR, so that it
does not need root's /run/pcscd. Every PC/SC program that should see the
reader needs PCSCLITE_CSOCK_NAME=DIR/pcscd.comm in its environment; a card
goes in with 'loopcard vcard --port PORT --state FILE' and comes out when
that command stops. vpcd also takes PORT+1 for a second, empty slot.

Only one pcscd can run on a machine (each writes /run/pcscd/pcscd.pid):
stop the system's pcscd first. DIR is removed when the reader stops.`,
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "port", Required: true, Usage: "TCP `PORT` on which vpcd waits for the card (PORT+1 must be free too)"},
				&cli.StringFlag{Name: "dir", Required: true, Usage: "`DIR` for pcscd's socket, configuration and log (removed at the end)"},
				&cli.BoolFlag{Name: "json", Usage: "print the reader's socket, port and name as JSON"},
			},
			Action: readerServe,
		}},
	}
}

// readerInfo is what a program needs to use the private reader.
type readerInfo struct {
	Socket string `json:"pcsclite_csock_name"`
	Port   int    `json:"port"`
	Reader string `json:"reader"`
	PID    int    `json:"pid"`
}

func readerServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("reader: unexpected argument %q", c.Args().First()), 2)
	}
	port := c.Int("port")
	if port < 1 || port > 65534 {
		return cli.Exit(fmt.Sprintf("reader: --port %d: vpcd needs PORT and PORT+1 (1-65535)", port), 2)
	}
	if err := os.MkdirAll(c.String("dir"), 0o755); err != nil {
		return cli.Exit(fmt.Sprintf("reader: --dir: %v", err), 1)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := pcscd.Start(pcscd.Options{Dir: c.String("dir"), Port: port,
		Logf: func(f string, a ...any) { fmt.Fprintf(c.App.ErrWriter, f+"\n", a...) }})
	if err != nil {
		return cli.Exit(fmt.Sprintf("reader: %v", err), 1)
	}
	info := readerInfo{Socket: s.Socket, Port: s.Port, Reader: s.Reader, PID: os.Getpid()}
	if c.Bool("json") {
		err = printJSON(c, info)
	} else {
		_, err = fmt.Fprintf(c.App.Writer, "reader %q ready; pcscd log: %s/pcscd.log\n"+
			"for every PC/SC program:  export PCSCLITE_CSOCK_NAME=%s\n"+
			"present a card:           loopcard vcard --port %d --state CARD.json\n"+
			"stop with Ctrl-C\n", info.Reader, s.Dir, info.Socket, info.Port)
	}
	if err != nil {
		s.Stop()
		return err
	}
	<-ctx.Done()
	if err := s.Stop(); err != nil {
		return cli.Exit(fmt.Sprintf("reader: %v", err), 1)
	}
	return nil
}
