package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
)

// organizerFlag names the organizer whose batches a command works on.
var organizerFlag = &cli.Int64Flag{
	Name:    "organizer",
	Value:   1,
	Usage:   "organizer id",
	EnvVars: []string{"LOOPCARD_ORGANIZER"},
}

func batchCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return &cli.Command{
		Name:  "batch",
		Usage: "card batches: create, list, show",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create a batch of cards for an event and print its id",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "event", Required: true, Usage: "event id (letters, digits, '.', '_', '-')"},
					&cli.IntFlag{Name: "count", Required: true, Usage: "number of cards"},
					&cli.StringFlag{Name: "layout", Usage: "JSON file with the card layout, over the defaults"},
					organizerFlag, jsonFlag,
				},
				Action: batchCreate,
			},
			{
				Name:   "list",
				Usage:  "list the organizer's batches, newest first",
				Flags:  []cli.Flag{organizerFlag, jsonFlag},
				Action: batchList,
			},
			{
				Name:      "show",
				Usage:     "show a batch and its cards",
				ArgsUsage: "BATCH",
				Flags:     []cli.Flag{organizerFlag, jsonFlag},
				Action:    batchShow,
			},
		},
	}
}

func batchCreate(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard batch create --event EVENT --count N [--layout FILE] [--json]")
	}
	layout := personalize.DefaultLayout()
	if p := c.String("layout"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		if layout, err = personalize.ParseLayout(b); err != nil {
			return fmt.Errorf("layout %s: %w", p, err)
		}
	}
	org, event, count := c.Int64("organizer"), c.String("event"), c.Int("count")
	if err := batch.CheckNew(org, event, count, layout); err != nil {
		return err
	}
	st, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	// The station registers each card in the ledger under the batch's
	// event: the ledger must know it before the batch exists.
	if err := checkEvent(c.Context, st.Ledger, org, event); err != nil {
		return err
	}
	b, err := st.Batches.Create(c.Context, org, event, count, layout)
	if err != nil {
		return err
	}
	logger(c).Info("batch created", "organizer", b.OrgID, "batch", b.No, "event", b.Event, "count", b.Count)
	if c.Bool("json") {
		return printJSON(c, b)
	}
	fmt.Fprintln(c.App.Writer, b.No)
	return nil
}

func batchList(c *cli.Context) error {
	st, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	store := st.Batches
	bs, err := store.List(c.Context, c.Int64("organizer"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if bs == nil {
			bs = []batch.Batch{}
		}
		return printJSON(c, bs)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "BATCH\tEVENT\tCOUNT\tDONE\tSTATUS\tCREATED")
	for _, b := range bs {
		fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%s\t%s\n", b.No, b.Event, b.Count, b.Done, b.Status, b.CreatedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

func batchShow(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("usage: loopcard batch show BATCH [--json]")
	}
	no, err := batch.ParseNo(c.Args().First())
	if err != nil {
		return err
	}
	st, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	store := st.Batches
	org := c.Int64("organizer")
	b, err := store.Get(c.Context, org, no)
	if err != nil {
		return err
	}
	cards, err := store.Cards(c.Context, org, no)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if cards == nil {
			cards = []batch.Card{}
		}
		return printJSON(c, struct {
			batch.Batch
			Cards []batch.Card `json:"cards"`
		}{b, cards})
	}
	out := c.App.Writer
	fmt.Fprintf(out, "batch %d of organizer %d: event %s, %d cards, %d done, %d reserved, %s\n",
		b.No, b.OrgID, b.Event, b.Count, b.Done, b.Reserved, b.Status)
	fmt.Fprintf(out, "layout: AID %s, system id %s, balance limit %d\n", b.Layout.AID, b.Layout.SystemID, b.Layout.Balance.Upper)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CARD\tUID\tSTATUS\tDONE")
	for _, cd := range cards {
		doneAt := "-"
		if cd.DoneAt != nil {
			doneAt = cd.DoneAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%X\t%s\t%s\n", cd.Number, []byte(cd.UID), cd.Status, doneAt)
	}
	return w.Flush()
}
