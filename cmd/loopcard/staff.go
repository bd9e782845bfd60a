package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api"
)

// staffCommand manages the named staff accounts that sign in to the HQ
// console (/console/). API staff tokens ('loopcard token') stay for
// machines.
func staffCommand() *cli.Command {
	orgFlag := &cli.Int64Flag{Name: "organizer", Aliases: []string{"org"}, Value: 1, Usage: "organizer id", EnvVars: []string{"LOOPCARD_ORGANIZER"}}
	return &cli.Command{
		Name:  "staff",
		Usage: "staff accounts of the HQ console",
		Subcommands: []*cli.Command{{
			Name:      "add",
			Usage:     "add a staff account; its password is read from --password-file or the first line of stdin; an hq account's TOTP secret is shown once",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				orgFlag,
				&cli.StringFlag{Name: "name", Required: true, Usage: "the account's name (a-z 0-9 . _ -)"},
				&cli.StringFlag{Name: "role", Required: true, Usage: "hq, store or auditor"},
				&cli.StringFlag{Name: "store", Usage: "the store of a store account"},
				&cli.StringFlag{Name: "password-file", Usage: "file whose first line is the password (at least 12 bytes); default stdin"},
				&cli.BoolFlag{Name: "totp", Usage: "give a store or auditor account a TOTP second factor too (hq always has one)"},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return cli.Exit("staff add takes no arguments", 2)
				}
				pw, err := readPasswordLine(c)
				if err != nil {
					return cli.Exit(err.Error(), 2)
				}
				defer clear(pw)
				req := api.NewStaff{Org: c.Int64("organizer"), Name: c.String("name"), Role: api.Role(c.String("role")),
					Store: c.String("store"), Password: pw, TOTP: c.Bool("totp")}
				if err := req.Validate(); err != nil {
					return cli.Exit(strings.TrimPrefix(err.Error(), "api: "), 2)
				}
				st, err := openStack(c, partHSM|partDatabase)
				if err != nil {
					return err
				}
				defer st.Close()
				if err := st.Ledger.CheckOrganizer(c.Context, req.Org); err != nil {
					return hintUnknown(err)
				}
				if req.Store != "" {
					if err := st.Ledger.CheckStore(c.Context, req.Org, req.Store); err != nil {
						return hintUnknown(err)
					}
				}
				enr, err := api.AddStaff(c.Context, st.Pool, st.HSM, req, time.Now())
				if errors.Is(err, api.ErrStaffExists) {
					return cli.Exit(err.Error(), 1)
				}
				if err != nil {
					return err
				}
				if c.Bool("json") {
					out := map[string]any{"organizer": req.Org, "name": req.Name, "role": req.Role, "store": req.Store}
					if enr.TOTPSecret != "" {
						out["totp_secret"], out["totp_uri"] = enr.TOTPSecret, enr.TOTPURI
					}
					return printJSON(c, out)
				}
				if enr.TOTPURI != "" {
					fmt.Fprintln(c.App.Writer, enr.TOTPURI)
					fmt.Fprintf(c.App.ErrWriter, "loopcard: staff %s added; add the line above (secret %s) to an authenticator app now: it is shown only once\n",
						req.Name, enr.TOTPSecret)
					return nil
				}
				fmt.Fprintf(c.App.ErrWriter, "loopcard: staff %s added; sign in at /console/login\n", req.Name)
				return nil
			},
		}, {
			Name:      "list",
			Usage:     "list the organizer's staff accounts (never a password or secret)",
			ArgsUsage: " ",
			Flags:     []cli.Flag{orgFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: func(c *cli.Context) error {
				st, err := openStack(c, partDatabase)
				if err != nil {
					return err
				}
				defer st.Close()
				as, err := api.ListStaff(c.Context, st.Pool, c.Int64("organizer"))
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c, map[string]any{"staff": as})
				}
				for _, a := range as {
					state := "active"
					switch {
					case a.DisabledAt != nil:
						state = "disabled " + a.DisabledAt.UTC().Format(time.RFC3339)
					case a.LockedUntil != nil && a.LockedUntil.After(time.Now()):
						state = "waiting until " + a.LockedUntil.UTC().Format(time.RFC3339)
					}
					totp := "password"
					if a.TOTP {
						totp = "password+totp"
					}
					fmt.Fprintf(c.App.Writer, "%-20s  %-7s  %-12s  %-13s  %s\n", a.Name, a.Role, a.Store, totp, state)
				}
				return nil
			},
		}, {
			Name:      "disable",
			Usage:     "disable a staff account and end its sessions at once",
			ArgsUsage: " ",
			Flags: []cli.Flag{orgFlag, &cli.StringFlag{Name: "name", Required: true, Usage: "the account's name"},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
			Action: func(c *cli.Context) error {
				st, err := openStack(c, partDatabase)
				if err != nil {
					return err
				}
				defer st.Close()
				name := c.String("name")
				if err := api.DisableStaff(c.Context, st.Pool, c.Int64("organizer"), name, time.Now()); err != nil {
					if errors.Is(err, api.ErrNoStaff) {
						return cli.Exit(strings.TrimPrefix(err.Error(), "api: "), 1)
					}
					return err
				}
				if c.Bool("json") {
					return printJSON(c, map[string]any{"name": name, "status": "disabled"})
				}
				fmt.Fprintf(c.App.ErrWriter, "loopcard: staff %s disabled; its sessions have ended\n", name)
				return nil
			},
		}},
	}
}

// readPasswordLine reads the first line of --password-file, or of stdin.
func readPasswordLine(c *cli.Context) ([]byte, error) {
	var r io.Reader = c.App.Reader
	if f := c.String("password-file"); f != "" {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("cannot read the password file: %w", err)
		}
		defer fh.Close()
		r = fh
	}
	if r == nil {
		r = os.Stdin
	}
	line, err := bufio.NewReader(io.LimitReader(r, 2048)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("cannot read the password: %w", err)
	}
	line = []byte(strings.TrimRight(string(line), "\r\n"))
	if len(line) == 0 {
		return nil, errors.New("no password: give --password-file or the password on stdin")
	}
	return line, nil
}
