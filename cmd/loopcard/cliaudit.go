package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api"
)

// auditedCommands are the commands that change HQ's state directly in the
// database or the HSM, bypassing the API: each run leaves a record in the
// audit log the API's auditors read (GET /v1/audit/records), under the
// command's --organizer (0, the platform, where it has none).
var auditedCommands = map[string]bool{
	"token issue": true, "token revoke": true,
	"ledger init": true, "ledger event": true, "ledger merchant": true, "ledger store": true,
	"ledger close-day": true, "ledger payout": true, "ledger breakage": true,
	"terminal register": true, "batch create": true,
	"handover issue": true, "handover send": true,
	"ledger correct": true, "ledger approve-correction": true, "ledger correction-threshold": true, "ledger vouchers": true,
}

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
		err := action(c)
		rec := api.AuditRecord{Org: c.Int64("organizer"), Actor: "cli:" + operator(c), Action: "cli " + name,
			Detail: flagSummary(c), Failed: err != nil}
		if aerr := writeCLIAudit(c, rec); aerr != nil {
			if err != nil {
				return err
			}
			return fmt.Errorf("%s was done, but its audit record was not written (%v): note who ran it and why in the operations log", name, aerr)
		}
		return err
	}
}

func writeCLIAudit(c *cli.Context, rec api.AuditRecord) error {
	st, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Context), 30*time.Second)
	defer cancel()
	_, err = api.WriteAudit(ctx, st.Pool, rec, time.Now())
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
// without secrets.
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
		parts = append(parts, fmt.Sprintf("%s=%v", name, c.Value(name)))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
