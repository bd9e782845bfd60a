package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionFlag is the flag urfave/cli reads last on the line to complete
// it (EnableBashCompletion).
const completionFlag = "--generate-bash-completion"

// flagsFirst returns args with the flags given after the arguments of the
// command they name moved in front of those arguments, so that
// `loopcard batch show 1 --json` reads as `loopcard batch show --json 1`:
// urfave/cli/v2 stops reading flags at a command's first argument, and the
// CLI's usage lines put flags after the arguments (`audit verify DIR
// --hq-key KEY`, `handover card sold CARD... --store STORE`). It is the
// CLI's one way to take flags after arguments; every command's flags are
// then parsed, checked and reported by urfave/cli.
//
// A flag takes the next word as its value unless it is a bool flag or is
// written --name=value; a word that is not a flag of the command is moved
// as a flag, for urfave/cli to refuse, and so is a last flag that lacks its
// value. Everything after "--" stays an argument. The line is left as it is unless it names a command without
// subcommands.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	words := args[1:]
	completing := words[len(words)-1] == completionFlag
	if completing {
		words = words[:len(words)-1]
	}
	out := []string{args[0]}
	flags, subs := app.Flags, app.Commands
	var cmd *cli.Command
	i := 0
	for i < len(words) {
		w := words[i]
		if w == "--" {
			return args
		}
		if isFlag(w) {
			n := 1
			if takesValue(flags, w) && i+1 < len(words) {
				n = 2
			}
			out = append(out, words[i:i+n]...)
			i += n
			continue
		}
		next := findCommand(subs, w)
		if next == nil {
			break
		}
		out = append(out, w)
		i++
		cmd, flags, subs = next, next.Flags, next.Subcommands
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	var fl, pos []string
	dashes := false
	for j := i; j < len(words); j++ {
		w := words[j]
		switch {
		case w == "--":
			dashes = true
			pos = append(pos, words[j+1:]...)
			j = len(words)
		case isFlag(w):
			fl = append(fl, w)
			if takesValue(flags, w) {
				if j+1 == len(words) {
					// No value: last, for urfave/cli to say so (the
					// arguments do not matter then).
					return append(out, fl...)
				}
				j++
				fl = append(fl, words[j])
			}
		default:
			pos = append(pos, w)
		}
	}
	out = append(out, fl...)
	if dashes {
		out = append(out, "--")
	}
	out = append(out, pos...)
	if completing {
		out = append(out, completionFlag)
	}
	return out
}

// isFlag reports whether w is written as a flag ("-" alone is an argument,
// standard input).
func isFlag(w string) bool { return len(w) > 1 && w[0] == '-' }

// takesValue reports whether flag word w is a flag of flags that reads the
// next word as its value.
func takesValue(flags []cli.Flag, w string) bool {
	name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
	if hasValue {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				v, ok := f.(interface{ TakesValue() bool })
				return ok && v.TakesValue()
			}
		}
	}
	return false
}

// findCommand returns the command of cmds named or aliased name, or nil.
func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// usageErrors makes the flag errors of every command below cmds one line
// in the CLI's style, with the command's usage: "unknown flag --colour:
// usage: loopcard keys import LABEL ...", in place of urfave/cli's
// "Incorrect Usage" and help text.
func usageErrors(path string, cmds []*cli.Command) {
	for _, c := range cmds {
		line := path + " " + c.Name
		usageErrors(line, c.Subcommands)
		if c.ArgsUsage != "" && strings.TrimSpace(c.ArgsUsage) != "" {
			line += " " + c.ArgsUsage
		}
		if c.OnUsageError == nil {
			c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
				return fmt.Errorf("%w: usage: %s", flagError(err), line)
			}
		}
	}
}

// flagError rewrites the flag package's errors in the CLI's words.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return errors.New("unknown flag --" + strings.TrimLeft(name, "-"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Errorf("flag --%s needs a value", strings.TrimLeft(name, "-"))
	}
	return err
}
