package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/urfave/cli/v2"
)

// defaultSystemID is the AN10922 system identifier `keys diversify` uses
// when --system-id is not given: "LOOPCARD", so that M = UID(7) || AID(3) ||
// SystemID(8) is 18 bytes, inside the 16..31 the HSM computes exactly.
var defaultSystemID = []byte("LOOPCARD")

func keysCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return &cli.Command{
		Name:  "keys",
		Usage: "manage the HSM key hierarchy: init, list, import, rotate, diversify",
		Subcommands: []*cli.Command{
			{
				Name:   "init",
				Usage:  "create every key of the hierarchy that is missing",
				Flags:  []cli.Flag{jsonFlag},
				Action: keysInit,
			},
			{
				Name:   "list",
				Usage:  "list keys: label, type, version, KCV, created, usages",
				Flags:  []cli.Flag{jsonFlag},
				Action: keysList,
			},
			{
				Name:      "import",
				Usage:     "import a key from two or more XOR components (key ceremony)",
				ArgsUsage: "LABEL --component FILE --component FILE [...] [--new-version]",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "component", Usage: "file holding one component in hex (repeat, 2 or more)"},
					&cli.BoolFlag{Name: "new-version", Usage: "the key exists: import the components as its next version (a rotation by ceremony)"},
					jsonFlag,
				},
				Action: keysImport,
			},
			{
				Name:      "rotate",
				Usage:     "generate the next version of a key; old versions stay usable (hq-sign: only with --force, see docs/audit-export.md)",
				ArgsUsage: "LABEL",
				Flags: []cli.Flag{jsonFlag,
					&cli.BoolFlag{Name: "force", Usage: "rotate hq-sign although handover logs signed by it no longer verify afterwards"}},
				Action: keysRotate,
			},
			{
				Name:      "diversify",
				Usage:     "print the KCV of a card's AN10922 diversified key (never the key)",
				ArgsUsage: "LABEL --uid HEX [--aid HEX] [--system-id HEX]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "uid", Usage: "card UID, 7 bytes in hex"},
					&cli.StringFlag{Name: "aid", Value: "000000", Usage: "application id, 3 bytes in hex (000000: PICC level)"},
					&cli.StringFlag{Name: "system-id", Value: strings.ToUpper(hex.EncodeToString(defaultSystemID)), Usage: "system identifier in hex, 6 to 21 bytes"},
					jsonFlag,
				},
				Action: keysDiversify,
			},
		},
	}
}

// labelArg returns the single LABEL argument, or a usage error.
func labelArg(c *cli.Context, usage string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("usage: loopcard keys %s %s", c.Command.Name, usage)
	}
	return c.Args().First(), nil
}

// noArgs refuses arguments to a subcommand that takes none.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard keys %s [--json] (it takes no arguments)", c.Command.Name)
	}
	return nil
}

func keysInit(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	st, err := openStack(c, partHSM)
	if err != nil {
		return err
	}
	defer st.Close()
	h := st.HSM
	created, err := h.Init(c.Context)
	if err != nil {
		return err
	}
	list, err := h.List(c.Context)
	if err != nil {
		// The keys were created: say which, not that init failed.
		list = nil
		for _, l := range created {
			list = append(list, keys.KeyInfo{Label: l.String(), Name: l.Name, Version: l.Version, Usages: []string{},
				KCVError: err.Error() + ": run \"loopcard keys list\""})
		}
	}
	isNew := map[string]bool{}
	for _, l := range created {
		isNew[l.String()] = true
	}
	newInfos := []keys.KeyInfo{}
	for _, k := range list {
		if isNew[k.Label] {
			newInfos = append(newInfos, k)
		}
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"created": newInfos})
	}
	if len(newInfos) == 0 {
		fmt.Fprintln(c.App.Writer, "every key exists: nothing created")
		return nil
	}
	for _, k := range newInfos {
		fmt.Fprintf(c.App.Writer, "created %s %s KCV %s\n", k.Label, k.Type, kcvText(k))
		warnKCV(c, k)
	}
	return nil
}

// kcvText is the KCV column: "-" for a key that has none (a wrap-only
// key), "unknown" for one whose KCV could not be computed.
func kcvText(k keys.KeyInfo) string {
	switch {
	case k.KCVError != "":
		return "unknown"
	case k.KCV == "":
		return "-"
	}
	return k.KCV
}

func keysList(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	st, err := openStack(c, partHSM)
	if err != nil {
		return err
	}
	defer st.Close()
	h := st.HSM
	list, err := h.List(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if list == nil {
			list = []keys.KeyInfo{}
		}
		return printJSON(c, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(c.App.Writer, "no keys: run \"loopcard keys init\" or import them")
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LABEL\tTYPE\tVERSION\tKCV\tCREATED\tUSAGES")
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", k.Label, k.Type, k.Version, kcvText(k),
			k.Created.Format("2006-01-02 15:04:05Z"), strings.Join(k.Usages, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, k := range list {
		warnKCV(c, k)
	}
	return nil
}

func keysImport(c *cli.Context) error {
	name, err := labelArg(c, "LABEL --component FILE --component FILE [...]")
	if err != nil {
		return err
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("import takes a key name such as app-debit, not %q: the next version is chosen for you", name)
	}
	spec, err := keys.LookupSpec(name)
	if err != nil {
		return err
	}
	if !spec.Importable() {
		return fmt.Errorf("%s is a key pair and cannot be imported: create it with \"loopcard keys init\"", name)
	}
	files := c.StringSlice("component")
	if len(files) < 2 {
		return fmt.Errorf("a key is imported from 2 or more components: give --component FILE for each")
	}
	// Components are read into memory only, checked, and cleared; the
	// token is not touched unless every one is valid.
	var comps []keys.Component
	defer func() {
		for _, cp := range comps {
			cp.Destroy()
		}
	}()
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("component %d: cannot read %s: %w", i+1, f, errors.Unwrap(err))
		}
		cp, err := keys.ParseComponent(b)
		clear(b)
		if err != nil {
			return fmt.Errorf("component %d (%s): %w", i+1, f, err)
		}
		comps = append(comps, cp)
		if cp.Len() != spec.Size() {
			return fmt.Errorf("component %d (%s) is %d bytes; %s needs %d bytes (%d hex digits)",
				i+1, f, cp.Len(), name, spec.Size(), 2*spec.Size())
		}
	}
	st, err := openStack(c, partHSM)
	if err != nil {
		return err
	}
	defer st.Close()
	h := st.HSM
	imp := h.ImportFirst
	if c.Bool("new-version") {
		imp = h.Import
	}
	res, err := imp(c.Context, name, comps)
	if errors.Is(err, keys.ErrKeyExists) {
		return fmt.Errorf("%w in the HSM: to import the components as its next version, run the same command with --new-version ('loopcard keys list' shows the versions)", err)
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		type comp struct {
			File string `json:"file"`
			KCV  string `json:"kcv"`
		}
		out := struct {
			Label      string `json:"label"`
			Components []comp `json:"components"`
			KCV        string `json:"kcv"`
		}{Label: res.Label.String(), KCV: res.KCV}
		for i, k := range res.ComponentKCVs {
			out.Components = append(out.Components, comp{File: files[i], KCV: k})
		}
		return printJSON(c, out)
	}
	for i, k := range res.ComponentKCVs {
		fmt.Fprintf(c.App.Writer, "component %d (%s) KCV %s\n", i+1, files[i], k)
	}
	fmt.Fprintf(c.App.Writer, "imported %s KCV %s\n", res.Label, res.KCV)
	return nil
}

// errHQSignRotation explains why hq-sign is not rotated without --force.
var errHQSignRotation = errors.New("hq-sign is not rotated: it signs every handover log's checkpoints and HQ entries, " +
	"and a log is verified with one HQ key, so after a rotation 'loopcard audit verify' fails on its first checkpoint; " +
	"rotate hq-sign with --force only before the first handover entry (see docs/audit-export.md, HQ key rotation)")

func keysRotate(c *cli.Context) error {
	name, err := labelArg(c, "LABEL")
	if err != nil {
		return err
	}
	if _, err := keys.LookupSpec(name); err != nil {
		return err
	}
	if name == keys.HQSign && !c.Bool("force") {
		return errHQSignRotation
	}
	st, err := openStack(c, partHSM)
	if err != nil {
		return err
	}
	defer st.Close()
	h := st.HSM
	l, err := h.Rotate(c.Context, name)
	if err != nil {
		return err
	}
	// The rotation worked: describe the new version only. Listing every key
	// here (as before issue 17) failed the command whenever another key's
	// KCV could not be computed, after the new version had been created.
	k, err := h.Describe(c.Context, l)
	if err != nil {
		k = keys.KeyInfo{Label: l.String(), Name: l.Name, Version: l.Version, Usages: []string{},
			KCVError: err.Error() + ": run \"loopcard keys list\""}
	}
	warnKCV(c, k)
	if c.Bool("json") {
		return printJSON(c, k)
	}
	fmt.Fprintf(c.App.Writer, "created %s %s KCV %s\n", k.Label, k.Type, kcvText(k))
	return nil
}

// warnKCV tells the operator, on stderr, that a key's KCV could not be
// computed and why.
func warnKCV(c *cli.Context, k keys.KeyInfo) {
	if k.KCVError != "" {
		fmt.Fprintf(c.App.ErrWriter, "loopcard: the KCV of %s cannot be computed: %s\n", k.Label, k.KCVError)
	}
}

func keysDiversify(c *cli.Context) error {
	arg, err := labelArg(c, "LABEL --uid HEX [--aid HEX] [--system-id HEX]")
	if err != nil {
		return err
	}
	label, err := keys.ParseLabel(arg)
	if err != nil {
		return err
	}
	hexFlag := func(name string) ([]byte, error) {
		v := c.String(name)
		if v == "" {
			return nil, fmt.Errorf("--%s is required", name)
		}
		b, err := hex.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("--%s must be hex digits, such as 04782E21801D80", name)
		}
		return b, nil
	}
	uid, err := hexFlag("uid")
	if err != nil {
		return err
	}
	aid, err := hexFlag("aid")
	if err != nil {
		return err
	}
	sys, err := hexFlag("system-id")
	if err != nil {
		return err
	}
	m, err := keyderiv.DiversificationInput(uid, aid, sys)
	if err != nil {
		return err
	}
	st, err := openStack(c, partHSM)
	if err != nil {
		return err
	}
	defer st.Close()
	h := st.HSM
	key, used, err := h.Diversify(c.Context, label, m)
	if err != nil {
		return err
	}
	defer key.Destroy()
	if c.Bool("json") {
		return printJSON(c, map[string]string{"label": used.String(), "uid": strings.ToUpper(hex.EncodeToString(uid)), "kcv": key.KCV()})
	}
	fmt.Fprintf(c.App.Writer, "%s UID %X KCV %s\n", used, uid, key.KCV())
	return nil
}
