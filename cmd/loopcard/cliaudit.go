package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/stack"
	"github.com/loopcard/loopcard/ledger/pgcluster"
)

// auditedCommands are the commands that change HQ's state directly in the
// database or the HSM, bypassing the API: each run leaves a record in the
// audit log the API's auditors read (GET /v1/audit/records), under the
// command's --organizer (0, the platform, where it has none).
var auditedCommands = map[string]bool{
	"token issue": true, "token revoke": true, "staff add": true, "staff disable": true,
	"ledger init": true, "ledger event": true, "ledger merchant": true, "ledger store": true,
	"ledger close-day": true, "ledger payout": true, "ledger breakage": true,
	"terminal register": true, "batch create": true,
	"handover issue": true, "handover send": true,
	"keys init": true, "keys import": true, "keys rotate": true,
	"store enrol": true, "audit records": true,
	"ledger block": true, "ledger replacement-hold": true, "ledger settle-replacements": true,
	"ledger correct": true, "ledger approve-correction": true, "ledger correction-threshold": true, "ledger vouchers": true,
	"menu set":            true,
	"ledger business-day": true,
}

// hsmCommands change the HSM and nothing else. A key ceremony may run
// where no PostgreSQL is installed: without --database-url and without
// PostgreSQL, the command runs and says on stderr that it is in no audit
// log. Otherwise the audit log is opened before the HSM is touched, and a
// log that cannot be opened refuses the command with nothing changed.
var hsmCommands = map[string]bool{"keys init": true, "keys import": true, "keys rotate": true}

// auditCommands wraps the action of every command of auditedCommands.
func auditCommands(cmds []*cli.Command, prefix string) {
	for _, cmd := range cmds {
		name := strings.TrimSpace(prefix + " " + cmd.Name)
		if auditedCommands[name] && cmd.Action != nil {
			cmd.Action = audited(name, cmd.Action)
		}
		auditCommands(cmd.Subcommands, name)
	}
}

// audited runs action and records who ran it, what and how it ended.
// An action that succeeded but could not be recorded fails: the operator
// is told to record it by hand.
func audited(name string, action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		var log *stack.Stack
		if hsmCommands[name] {
			var err error
			if log, err = openAuditLog(c, name); err != nil {
				return err
			}
			if log != nil {
				defer log.Close()
			}
		}
		err := action(c)
		rec := api.AuditRecord{Org: c.Int64("organizer"), Actor: "cli:" + operator(c), Action: "cli " + name,
			Detail: flagSummary(c), Failed: err != nil}
		var aerr error
		switch {
		case log != nil:
			aerr = writeAudit(c, log, rec)
		case hsmCommands[name]:
			outcome := "ok"
			if err != nil {
				outcome = "failed"
			}
			fmt.Fprintf(c.App.ErrWriter, "loopcard: %s (%s) by %s is in no audit log (no database): note it in the ceremony's record\n", name, outcome, operator(c))
		default:
			aerr = writeCLIAudit(c, rec)
		}
		if aerr != nil {
			if err != nil {
				return err
			}
			return fmt.Errorf("%s was done, but its audit record was not written (%v): note who ran it and why in the operations log", name, aerr)
		}
		return err
	}
}

// openAuditLog opens the database of the audit log for an HSM command
// (hsmCommands) before it runs. It returns nil and no error where there
// is no database at all: no --database-url and no PostgreSQL installed
// for the embedded one.
func openAuditLog(c *cli.Context, name string) (*stack.Stack, error) {
	st, err := openStack(c, partDatabase)
	if err == nil {
		return st, nil
	}
	if getConfig(c).DatabaseURL == "" && errors.Is(err, pgcluster.ErrNotInstalled) {
		return nil, nil
	}
	return nil, fmt.Errorf("%s: nothing was changed: its audit record goes to the database, which cannot be opened (%w); "+
		"fix the database (--database-url, or the embedded one under --data-dir) and run it again", name, err)
}

func writeCLIAudit(c *cli.Context, rec api.AuditRecord) error {
	st, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	return writeAudit(c, st, rec)
}

func writeAudit(c *cli.Context, st *stack.Stack, rec api.AuditRecord) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), 30*time.Second)
	defer cancel()
	_, err := api.WriteAudit(ctx, st.Pool, rec, time.Now())
	return err
}

// operator is who runs the command: --operator, else $USER.
func operator(c *cli.Context) string {
	if o := c.String("operator"); o != "" {
		return o
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// secretFlag marks flags whose value is never recorded.
func secretFlag(name string) bool {
	for _, s := range []string{"pin", "token", "secret", "password", "iban", "key"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// flagSummary lists the command's flags that were given, as name=value,
// without secrets, then its arguments (a key's label).
func flagSummary(c *cli.Context) string {
	var parts []string
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if name == "json" || !c.IsSet(name) {
			continue
		}
		if secretFlag(name) {
			parts = append(parts, name+"=(not recorded)")
			continue
		}
		if _, ok := f.(*cli.StringSliceFlag); ok {
			parts = append(parts, name+"="+strings.Join(c.StringSlice(name), ","))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", name, c.Value(name)))
	}
	sort.Strings(parts)
	if c.NArg() > 0 {
		parts = append(parts, "args="+strings.Join(c.Args().Slice(), " "))
	}
	return strings.Join(parts, " ")
}
