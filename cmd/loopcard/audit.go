package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "export the handover log for auditors, and verify an export offline",
		Subcommands: []*cli.Command{
			{
				Name:  "export",
				Usage: "write the handover log, its checkpoints, proofs and keys to a new directory (docs/audit-export.md)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Required: true, Usage: "new or empty directory"},
					organizerFlag,
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: auditExport,
			},
			{
				Name: "hq-key",
				Usage: "print HQ's verifier key (NAME+HASH+KEY) of the organizer's custody log, for auditors to pin " +
					"once and give to 'audit verify --hq-key' (HQ, with the HSM)",
				Flags:  []cli.Flag{organizerFlag},
				Action: auditHQKey,
			},
			{
				Name:      "verify",
				Usage:     "verify an export offline: signatures, checkpoints, inclusion, signers, counts",
				ArgsUsage: "DIR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "since", Usage: "a checkpoint file you verified before: the export must extend it"},
					&cli.StringFlag{Name: "hq-key", Usage: "HQ's verifier key you trust (NAME+HASH+KEY), or a file holding it"},
					&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				},
				Action: auditVerify,
			},
			{
				Name: "records",
				Usage: "(platform operator) print the platform's audit records, organizer 0: requests refused before any credential " +
					"named an organizer, and the HSM's commands; read from the database, and audited (an organizer's auditors read theirs with GET /v1/audit/records)",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "platform", Usage: "read organizer 0's records (required: the only records this command reads)"},
					&cli.Int64Flag{Name: "after", Usage: "print only the records after this record id (the last id printed before)"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: auditRecords,
			},
		},
	}
}

func auditRecords(c *cli.Context) error {
	if c.NArg() > 0 || !c.Bool("platform") || c.Int64("after") < 0 {
		return fmt.Errorf("usage: loopcard audit records --platform [--after ID] [--json] (an organizer's auditors read its records with GET /v1/audit/records)")
	}
	st, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := api.AuditRecords(c.Context, st.Pool, 0, c.Int64("after"))
	if err != nil {
		return err
	}
	more := len(recs) == api.AuditRecordsPage
	if c.Bool("json") {
		return printJSON(c, map[string]any{"records": recs, "more": more})
	}
	if len(recs) == 0 {
		fmt.Fprintln(c.App.Writer, "no platform audit records")
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tACTOR\tACTION\tREMOTE\tOUTCOME\tSTATUS\tDETAIL")
	for _, a := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.ID, a.At.UTC().Format("2006-01-02 15:04:05Z"),
			a.Actor, a.Action, a.Remote, a.Outcome, a.Status, strings.ReplaceAll(a.Detail, "\t", " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(c.App.Writer, "more: loopcard audit records --platform --after %d\n", recs[len(recs)-1].ID)
	}
	return nil
}

func auditExport(c *cli.Context) (err error) {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard audit export --out DIR [--json]")
	}
	org := c.Int64("organizer")
	s, err := openLog(c)
	if err != nil {
		return err
	}
	defer s.close()
	sum, err := s.log.Export(c.Context, c.String("out"))
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	logger(c).Info("audit.export", slog.Int64("org", org), slog.String("dir", c.String("out")), slog.Int64("entries", sum.Entries), slog.String("outcome", outcome))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, sum)
	}
	fmt.Fprintf(c.App.Writer, "exported %d entries, %d checkpoints, %d consistency proofs, %d store keys to %s\n",
		sum.Entries, sum.Checkpoints, sum.Proofs, sum.StoreKeys, sum.Dir)
	return nil
}

func auditVerify(c *cli.Context) error {
	const usage = "usage: loopcard audit verify DIR [--since CHECKPOINT] [--hq-key KEY] [--json]"
	if c.NArg() != 1 {
		return errors.New(usage)
	}
	dir := c.Args().First()
	since, hqKey, asJSON := c.String("since"), c.String("hq-key"), c.Bool("json")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a directory: give the directory 'loopcard audit export' wrote", dir)
	}
	var opts audit.Options
	if p := since; p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		opts.Since = b
	}
	if k := hqKey; k != "" {
		if _, err := handover.ParseVkey(k); err != nil {
			b, ferr := os.ReadFile(k)
			if ferr != nil {
				return fmt.Errorf("--hq-key: neither a verifier key nor a readable file: %w", err)
			}
			k = strings.TrimSpace(string(b))
		}
		opts.HQKey = k
	}
	rep, err := audit.Verify(os.DirFS(dir), opts)
	var fail *audit.Failure
	if err != nil && !errors.As(err, &fail) {
		return err
	}
	if asJSON {
		if perr := printJSON(c, rep); perr != nil {
			return perr
		}
		if fail != nil {
			return cli.Exit("", 1)
		}
		return nil
	}
	w := c.App.Writer
	for _, s := range rep.Checked {
		fmt.Fprintf(w, "ok    %s\n", s)
	}
	if fail != nil {
		fmt.Fprintf(w, "FAIL  %s\n", fail)
		return cli.Exit("audit verify: the export does not verify: "+fail.Error(), 1)
	}
	for _, b := range rep.Batches {
		var stores []string
		var atStores int64
		for st, n := range b.AtStores {
			stores = append(stores, fmt.Sprintf("%s %d", st, n))
			atStores += n
		}
		slices.Sort(stores)
		fmt.Fprintf(w, "batch %d: issued %d = at HQ %d + in transit %d + at stores %d (%s) + sold %d + returned %d + voided %d + destroyed %d + missing %d\n",
			b.Batch, b.Issued, b.AtHQ, b.InTransit, atStores, strings.Join(stores, ", "), b.Sold, b.Returned, b.Voided, b.Destroyed, b.Missing)
	}
	for _, h := range rep.OpenHandovers {
		fmt.Fprintf(w, "open handover: %d cards of batch %d to %s (entry %d) not received\n", h.Count, h.Batch, h.Store, h.Index)
	}
	for _, h := range rep.Discrepancies {
		fmt.Fprintf(w, "discrepancy: %d cards of batch %d handed to %s (entry %d), %d counted on receipt (entry %d)\n", h.Count, h.Batch, h.Store, h.Index, h.Counted, h.Received)
	}
	if !rep.HQKeyPinned {
		fmt.Fprintf(w, "note: HQ's key was taken from the export; give --hq-key to check who signed\n")
	}
	fmt.Fprintf(w, "verified: %d entries, checkpoint size %d, root %s\n", rep.Entries, rep.Size, rep.Root)
	return nil
}

func auditHQKey(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard audit hq-key [--organizer N]")
	}
	st, err := openStack(c, partHSM)
	if err != nil {
		return err
	}
	defer st.Close()
	h := st.HSM
	hq, err := hqSigner(c, h, c.Int64("organizer"))
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, hq.PublicKey().Vkey())
	return nil
}
