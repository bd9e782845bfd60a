package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/labels"
	"github.com/loopcard/loopcard/personalize/qrpin"
	"github.com/loopcard/loopcard/personalize/reader"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
	"github.com/loopcard/loopcard/personalize/station"
)

func personalizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "personalize",
		Usage: "run the personalization station for a batch and write its QR+PIN labels",
		Description: "Each card presented is recognised, personalized with its own keys, read back, recorded\n" +
			"and registered in the ledger under the batch's event; a card torn away is finished when presented\n" +
			"again, and a restart resumes the batch (and registers any card a crash left out).\n" +
			"The label files hold the PINs in clear: they are written with mode 0600; destroy them once printed.",
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "batch", Required: true, Usage: "batch id"},
			&cli.StringFlag{Name: "reader", Required: true, Usage: `PC/SC reader name, index or part of its name, or "virtual" for in-process blank cards (with --cards)`},
			&cli.StringFlag{Name: "cards", Usage: "with --reader virtual: keep each card as a vcard state file UID.json in this `DIR`, for 'loopcard vcard --state FILE' (holds the card keys: tests and demos only)"},
			&cli.StringFlag{Name: "labels", Usage: "write the labels to this PDF"},
			&cli.StringFlag{Name: "sheet", Value: "a4", Usage: `PDF layout: "a4" (10 labels per A4 page, cut marks) or "card" (one card-sized page per card)`},
			&cli.StringFlag{Name: "csv", Usage: "write the labels to this CSV for card printers"},
			&cli.StringFlag{Name: "public-url", Value: qrpin.DefaultPublicURL, Usage: "base URL of the cards' QR codes", EnvVars: []string{"LOOPCARD_PUBLIC_URL"}},
			organizerFlag,
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per card, then a summary"},
		},
		Action: personalizeAction,
	}
}

// spoolPath is where the station appends each card's label before it
// records the card: the CSV itself when one is asked for.
func spoolPath(pdf, csv string) string {
	if csv != "" {
		return csv
	}
	return strings.TrimSuffix(pdf, filepath.Ext(pdf)) + ".spool.csv"
}

func personalizeAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard personalize --batch ID (--reader NAME | --reader virtual --cards DIR) [--labels FILE.pdf] [--csv FILE.csv]")
	}
	pdfPath, csvPath := c.String("labels"), c.String("csv")
	if pdfPath == "" && csvPath == "" {
		return errors.New("name --labels FILE.pdf or --csv FILE.csv: the PINs are printed there and stored nowhere else")
	}
	virtual, cardsDir := c.String("reader") == "virtual", c.String("cards")
	if virtual && cardsDir == "" {
		return errors.New("--reader virtual needs --cards DIR: without it the virtual cards are lost when the station stops and can never be tapped")
	}
	if !virtual && cardsDir != "" {
		return errors.New("--cards is for --reader virtual: real cards keep themselves")
	}
	if cardsDir != "" {
		if err := os.MkdirAll(cardsDir, 0o700); err != nil {
			return fmt.Errorf("--cards: %w", err)
		}
	}
	sheet, err := labels.ParseSheet(c.String("sheet"))
	if err != nil {
		return err
	}
	publicURL := c.String("public-url")
	if err := qrpin.CheckPublicURL(publicURL); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logger(c)

	inst, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer inst.Close()
	store := inst.Batches
	org, no := c.Int64("organizer"), c.Int64("batch")
	b, err := store.Get(ctx, org, no)
	if err != nil {
		return err
	}
	if err := openParts(c, inst, partHSM); err != nil {
		return err
	}
	hsm := inst.HSM

	spPath := spoolPath(pdfPath, csvPath)
	if b.Status == batch.StatusComplete {
		if _, err := os.Stat(spPath); err != nil {
			return fmt.Errorf("batch %d is complete and its labels were written when it was finished; the PINs exist nowhere else and cannot be printed again", b.No)
		}
	}
	spool, spooled, err := labels.OpenSpool(spPath, publicURL)
	if err != nil {
		return err
	}
	defer spool.Close()
	if len(spooled) > 0 {
		log.Info("resuming with the labels already spooled", "file", spPath, "labels", len(spooled))
	}

	var r reader.Reader
	blank := &station.BlankCards{Dir: cardsDir}
	if virtual {
		r = blank
	} else {
		pr, err := pcsc.Open(c.String("reader"))
		if err != nil {
			return err
		}
		r = pr
	}
	defer r.Close()

	st, err := station.New(ctx, station.Config{Batch: b, PublicURL: publicURL, HSM: hsm, Batches: store, Spool: spool,
		Ledger: inst.Ledger, Logger: log})
	if err != nil {
		return hintUnknown(err)
	}
	defer st.Close()

	out := c.App.Writer
	asJSON := c.Bool("json")
	prog := newProgress(c.App.ErrWriter, r.Name() != "virtual")
	if b.Done < b.Count {
		prog.prompt(b.Done, b.Count)
	}
	runErr := st.Run(ctx, r, func(ev station.Event) {
		if asJSON {
			line, _ := json.Marshal(struct {
				Type string `json:"type"`
				station.Event
			}{"card", ev})
			fmt.Fprintf(out, "%s\n", line)
		}
		prog.card(ev)
	})
	prog.end()
	cardFiles := blank.Files()
	if len(cardFiles) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "loopcard: %d virtual cards kept in %s (one UID.json each); put one into a vpcd slot with 'loopcard vcard --state %s --port PORT'\n",
			len(cardFiles), cardsDir, cardFiles[0])
	}

	b, err = store.Get(context.WithoutCancel(ctx), org, no)
	if err != nil {
		return err
	}
	summary := struct {
		Type   string   `json:"type"`
		Batch  int64    `json:"batch"`
		Done   int      `json:"done"`
		Count  int      `json:"count"`
		Status string   `json:"status"`
		Files  []string `json:"files,omitempty"`
		// CardFiles are the state files of the virtual cards of this run.
		CardFiles []string `json:"card_files,omitempty"`
		// The time shares of this run, in milliseconds per card.
		MSPerCard     float64 `json:"ms_per_card"`
		HSMMSPerCard  float64 `json:"hsm_ms_per_card"`
		CardMSPerCard float64 `json:"card_ms_per_card"`
		DBMSPerCard   float64 `json:"db_ms_per_card"`
	}{Type: "summary", Batch: b.No, Done: b.Done, Count: b.Count, Status: b.Status, CardFiles: cardFiles}
	if t := st.Times(); t.Cards > 0 {
		per := func(d float64) float64 { return d / float64(t.Cards) / 1e6 }
		summary.MSPerCard, summary.HSMMSPerCard = per(float64(t.Total)), per(float64(t.HSM))
		summary.CardMSPerCard, summary.DBMSPerCard = per(float64(t.Card)), per(float64(t.DB))
	}
	if runErr != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(c.App.ErrWriter, "loopcard: stopped with %d of %d cards done; run the same command again to resume\n", b.Done, b.Count)
		}
		if asJSON {
			_ = printJSON(c, summary)
		}
		return runErr
	}
	if b.Status == batch.StatusComplete {
		files, err := writePrintFiles(c, store, b, spool, pdfPath, csvPath, spPath, publicURL, sheet)
		if err != nil {
			return err
		}
		summary.Files = files
	}
	if asJSON {
		return printJSON(c, summary)
	}
	fmt.Fprintf(out, "batch %d: %d of %d cards done\n", b.No, b.Done, b.Count)
	return nil
}

// writePrintFiles writes the PDF and CSV from the spool, one label per
// recorded card, and removes a spool that is not itself the CSV.
func writePrintFiles(c *cli.Context, store *batch.Batches, b batch.Batch, spool *labels.Spool, pdfPath, csvPath, spPath, publicURL string, sheet labels.Sheet) ([]string, error) {
	hashes, err := store.TokenHashes(c.Context, b.OrgID, b.No)
	if err != nil {
		return nil, err
	}
	spooled, err := spool.Labels()
	if err != nil {
		return nil, err
	}
	ls, err := station.PrintLabels(spooled, hashes)
	if err != nil {
		return nil, err
	}
	var files []string
	if pdfPath != "" {
		if err := labels.WritePDF(pdfPath, ls, publicURL, sheet); err != nil {
			return nil, err
		}
		files = append(files, pdfPath)
	}
	if csvPath != "" {
		if err := labels.WriteCSV(csvPath, ls, publicURL); err != nil {
			return nil, err
		}
		files = append(files, csvPath)
	}
	if spPath != csvPath {
		if err := os.Remove(spPath); err != nil {
			return nil, fmt.Errorf("remove the label spool: %w", err)
		}
	}
	for _, f := range files {
		fmt.Fprintf(c.App.ErrWriter, "loopcard: wrote %s: %d labels with the PINs in clear (mode 0600); print it, then destroy it\n", f, len(ls))
	}
	logger(c).Info("label files written", "batch", b.No, "labels", len(ls), "files", files)
	return files, nil
}

// progress shows the station's progress on the terminal: a bar redrawn in
// place on a terminal, one line per card otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	pcsc   bool
	failed int
}

func newProgress(w io.Writer, pcsc bool) *progress {
	p := &progress{w: w, pcsc: pcsc}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) prompt(done, count int) {
	if p.pcsc {
		fmt.Fprintf(p.w, "present card %d of %d\n", done+1, count)
	}
}

func (p *progress) card(ev station.Event) {
	name := ev.Number
	if name == "" {
		name = "with UID " + ev.UIDHex
	}
	what := string(ev.Outcome)
	if ev.Err != nil {
		p.failed++
		what = "not finished: " + ev.Error
	}
	if p.tty {
		const width = 30
		n := width * ev.Done / max(ev.Count, 1)
		fmt.Fprintf(p.w, "\r\033[K[%s%s] %d/%d %s %s", strings.Repeat("#", n), strings.Repeat(".", width-n), ev.Done, ev.Count, name, what)
		if ev.Err != nil {
			fmt.Fprintln(p.w)
		}
	} else {
		fmt.Fprintf(p.w, "%d/%d card %s %s\n", ev.Done, ev.Count, name, what)
	}
	if p.pcsc && ev.Done < ev.Count {
		if p.tty {
			fmt.Fprintln(p.w)
		}
		fmt.Fprintf(p.w, "remove the card, then present card %d of %d\n", ev.Done+1, ev.Count)
	}
}

func (p *progress) end() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
