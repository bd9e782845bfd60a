package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/personalize/vcard"
	"github.com/loopcard/loopcard/personalize/vpcd"
)

// vcardRetry is how often `loopcard vcard` tries to reach vpcd again after it
// went away (pcscd restarted).
const vcardRetry = 500 * time.Millisecond

func vcardCommand() *cli.Command {
	return &cli.Command{
		Name:      "vcard",
		Usage:     "put a virtual DESFire card into a vpcd reader slot",
		UsageText: "loopcard vcard --port PORT [--host 127.0.0.1] [--uid HEX] [--state FILE] [--random-uid] [--trace FILE]",
		Description: `Runs the virtual MIFARE DESFire EV2 card and connects it to the vpcd PC/SC
driver (Debian package vsmartcard-vpcd), which listens on PORT: pcscd and
every PC/SC application then see the card in that reader slot. The card
stays in the slot until SIGINT or SIGTERM, and comes back when vpcd restarts.

--state keeps the card between runs in FILE, card keys included in clear:
for tests and demos only.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "port", Usage: "TCP `PORT` on which vpcd listens (DEVICENAME /dev/null:PORT in its reader.conf)", Required: true},
			&cli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "`HOST` where vpcd runs"},
			&cli.StringFlag{Name: "uid", Usage: "card UID, 14 `HEX` digits starting with 04 (7 bytes); default: random"},
			&cli.StringFlag{Name: "state", Usage: "`FILE` that keeps the card between runs (holds its keys: tests and demos only)"},
			&cli.BoolFlag{Name: "random-uid", Usage: "answer anticollision with a fresh random UID at every power-on"},
			&cli.StringFlag{Name: "trace", Usage: "append a transcript of every APDU and random byte to `FILE`, for replay as a test vector (shows card data: tests only)"},
		},
		Action: runVcard,
	}
}

func runVcard(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("vcard: unexpected argument %q", c.Args().First()), 2)
	}
	port := c.Int("port")
	if port < 1 || port > 65535 {
		return cli.Exit(fmt.Sprintf("vcard: --port %d is not a TCP port (1-65535)", port), 2)
	}
	uid, err := parseUID(c.String("uid"))
	if err != nil {
		return cli.Exit(fmt.Sprintf("vcard: --uid: %v", err), 2)
	}
	log := logger(c)
	opts := vcard.Options{
		UID:       uid,
		RandomUID: c.Bool("random-uid"),
		StatePath: c.String("state"),
		Logger:    log,
	}
	if p := c.String("trace"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return cli.Exit(fmt.Sprintf("vcard: --trace: %v", err), 1)
		}
		defer f.Close()
		opts.Trace = f
	}
	card, err := vcard.New(opts)
	if errors.Is(err, vcard.ErrState) {
		return cli.Exit(fmt.Sprintf("vcard: %v (delete the file to start from a blank card)", err), 1)
	}
	if err != nil {
		return cli.Exit(fmt.Sprintf("vcard: %v", err), 1)
	}
	addr := net.JoinHostPort(c.String("host"), strconv.Itoa(port))
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("virtual card ready", "uid", strings.ToUpper(hex.EncodeToString(card.UID())), "vpcd", addr)
	if err := vpcd.Serve(ctx, addr, card, vcardRetry, log); err != nil {
		return cli.Exit(fmt.Sprintf("vcard: %v", err), 1)
	}
	log.Info("virtual card stopped")
	return nil
}

// parseUID reads a 7-byte UID; empty means random. vcard.New checks the
// rest (NXP's 04 first).
func parseUID(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != 7 || b[0] != 0x04 {
		return nil, fmt.Errorf("want 14 hex digits starting with 04 (a 7-byte NXP UID), got %q", s)
	}
	return b, nil
}
