package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "staff tokens of the API",
		Subcommands: []*cli.Command{{
			Name:      "issue",
			Usage:     "issue a short-lived staff token (shown once, stored only hashed)",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				// --org is the name it had first.
				&cli.Int64Flag{Name: "organizer", Aliases: []string{"org"}, Value: 1, Usage: "organizer id", EnvVars: []string{"LOOPCARD_ORGANIZER"}},
				&cli.StringFlag{Name: "role", Required: true, Usage: "hq, store or auditor"},
				&cli.StringFlag{Name: "store", Usage: "the store of a store token"},
				&cli.DurationFlag{Name: "ttl", Value: 8 * time.Hour, Usage: "lifetime, at most " + api.MaxTokenTTL.String()},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return cli.Exit("token issue takes no arguments", 2)
				}
				req := api.TokenRequest{Org: c.Int64("organizer"), Role: api.Role(c.String("role")), Store: c.String("store"), TTL: c.Duration("ttl")}
				if err := req.Validate(); err != nil {
					return cli.Exit(err.Error(), 2)
				}
				st, err := openStack(c, partDatabase)
				if err != nil {
					return err
				}
				defer st.Close()
				l := st.Ledger
				if err := l.CheckOrganizer(c.Context, req.Org); err != nil {
					return hintUnknown(err)
				}
				if req.Store != "" {
					if err := l.CheckStore(c.Context, req.Org, req.Store); err != nil {
						return hintUnknown(err)
					}
				}
				tok, err := api.IssueToken(c.Context, st.Pool, req, time.Now())
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c, map[string]any{"token": tok.Reveal(), "id": tok.ID, "expires_at": tok.Expires.UTC()})
				}
				fmt.Fprintln(c.App.Writer, tok.Reveal())
				fmt.Fprintf(c.App.ErrWriter, "loopcard: token %s expires %s; it is shown only now\n", tok.ID, tok.Expires.UTC().Format(time.RFC3339))
				return nil
			},
		}, {
			Name:      "list",
			Usage:     "list the organizer's staff tokens: id, role, store, expiry, revocation (never the token)",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.Int64Flag{Name: "organizer", Aliases: []string{"org"}, Value: 1, Usage: "organizer id", EnvVars: []string{"LOOPCARD_ORGANIZER"}},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			},
			Action: func(c *cli.Context) error {
				st, err := openStack(c, partDatabase)
				if err != nil {
					return err
				}
				defer st.Close()
				ts, err := api.ListTokens(c.Context, st.Pool, c.Int64("organizer"))
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c, map[string]any{"tokens": ts})
				}
				for _, t := range ts {
					state := "expires " + t.ExpiresAt.UTC().Format(time.RFC3339)
					if t.RevokedAt != nil {
						state = "revoked " + t.RevokedAt.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(c.App.Writer, "%s  %-7s  %-12s  %s\n", t.ID, t.Role, t.Store, state)
				}
				return nil
			},
		}, {
			Name:      "revoke",
			Usage:     "revoke a staff token at once (its id from 'loopcard token list' or 'token issue')",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.Int64Flag{Name: "organizer", Aliases: []string{"org"}, Value: 1, Usage: "organizer id", EnvVars: []string{"LOOPCARD_ORGANIZER"}},
				&cli.StringFlag{Name: "id", Required: true, Usage: "the token's id (16 hex digits)"},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			},
			Action: func(c *cli.Context) error {
				st, err := openStack(c, partDatabase)
				if err != nil {
					return err
				}
				defer st.Close()
				id := c.String("id")
				if err := api.RevokeToken(c.Context, st.Pool, c.Int64("organizer"), id, time.Now()); err != nil {
					if errors.Is(err, api.ErrNoToken) {
						return cli.Exit(err.Error()+": see 'loopcard token list'", 1)
					}
					return err
				}
				if c.Bool("json") {
					return printJSON(c, map[string]any{"id": id, "status": "revoked"})
				}
				fmt.Fprintf(c.App.ErrWriter, "loopcard: token %s revoked; requests with it are refused from now on\n", id)
				return nil
			},
		}},
	}
}
