package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Lost and stolen cards (issue 21): `loopcard ledger block` (HQ, on the
// database), `loopcard ledger replacement-hold`, `loopcard ledger
// replacements settle`; at a store, `loopcard store block` and `loopcard
// store replace`.

func ledgerBlockCommand() *cli.Command {
	return &cli.Command{
		Name: "block",
		Usage: "block a lost or stolen card: it goes on the organizer's blocklist, which terminals take with their next " +
			"session key or upload and check offline; 'loopcard ledger unblock' takes it off",
		Flags:  []cli.Flag{organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}, reasonFlag, &cli.StringFlag{Name: "card", Required: true, Usage: "card id (hex)"}},
		Action: ledgerBlock,
	}
}

func ledgerBlock(c *cli.Context) error {
	card, err := terminaltx.ParseCardHex(c.String("card"))
	if err != nil {
		return fmt.Errorf("--card: want the card id in hex")
	}
	return withLedger(c, func(l *ledger.Ledger) error {
		v, err := l.BlockCard(c.Context, c.Int64("organizer"), card, ledger.BlockByHQ, cliActor(), c.String("reason"))
		again := errors.Is(err, ledger.ErrExists)
		switch {
		case again:
		case errors.Is(err, ledger.ErrConflict):
			return fmt.Errorf("%w: a refunded or replaced card is on the blocklist already, nothing was changed", err)
		case errors.Is(err, ledger.ErrNotFound):
			return fmt.Errorf("no card %s of organizer %d", terminaltx.CardHex(card), c.Int64("organizer"))
		case errors.Is(err, ledger.ErrInvalid):
			return fmt.Errorf("--reason: 1 to 500 characters of printable text")
		case err != nil:
			return err
		}
		if c.Bool("json") {
			return printJSON(c, map[string]any{"card": terminaltx.CardHex(card), "status": "blocked", "blocklist": v, "again": again})
		}
		if again {
			fmt.Fprintf(c.App.Writer, "card %s was blocked already (blocklist version %d)\n", terminaltx.CardHex(card), v)
			return nil
		}
		fmt.Fprintf(c.App.Writer, "card %s blocked: on the blocklist from version %d; replace it at a store with 'loopcard store replace --old %s'\n",
			terminaltx.CardHex(card), v, terminaltx.CardHex(card))
		return nil
	})
}

func ledgerReplacementHoldCommand() *cli.Command {
	return &cli.Command{
		Name: "replacement-hold",
		Usage: "set how much of a replaced card's balance waits until the terminals synced past its block: " +
			"the larger of --cents and --percent of the balance",
		Flags: []cli.Flag{organizerFlag,
			&cli.Int64Flag{Name: "cents", Required: true, Usage: "hold at least this many cents"},
			&cli.IntFlag{Name: "percent", Usage: "hold at least this percentage of the balance (0 to 100)"}},
		Action: func(c *cli.Context) error {
			return withLedger(c, func(l *ledger.Ledger) error {
				if err := l.SetReplacementHold(c.Context, c.Int64("organizer"), c.Int64("cents"), c.Int("percent")); err != nil {
					if errors.Is(err, ledger.ErrInvalid) {
						return errors.New("--cents 0..2147483647 and --percent 0..100")
					}
					return err
				}
				fmt.Fprintf(c.App.Writer, "replacement hold: %s or %d%% of the balance, whichever is more\n", cents(c.Int64("cents")), c.Int("percent"))
				return nil
			})
		},
	}
}

func ledgerSettleReplacementsCommand() *cli.Command {
	return &cli.Command{
		Name: "settle-replacements",
		Usage: "move the holds of replaced cards to their new cards once every terminal synced past the block or --window passed " +
			"(the server does it after uploads too)",
		Flags: []cli.Flag{organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.DurationFlag{Name: "window", Value: ledger.DefaultReplacementWindow, Usage: "move a hold after this long even if a terminal has not synced"}},
		Action: func(c *cli.Context) error {
			return withLedger(c, func(l *ledger.Ledger) error {
				rs, err := l.SettleReplacements(c.Context, c.Int64("organizer"), c.Duration("window"))
				if err != nil {
					return err
				}
				type row struct {
					Old  string `json:"old"`
					New  string `json:"new"`
					Rest int64  `json:"rest"`
					Load string `json:"load,omitempty"`
				}
				out := []row{}
				for _, r := range rs {
					x := row{Old: terminaltx.CardHex(r.Old), New: terminaltx.CardHex(r.New), Rest: r.Rest}
					if r.Rest > 0 {
						x.Load = r.RestLoad.String()
					}
					out = append(out, x)
				}
				if c.Bool("json") {
					return printJSON(c, out)
				}
				for _, r := range out {
					fmt.Fprintf(c.App.Writer, "card %s -> %s: %s follows as a pending load\n", r.Old, r.New, cents(r.Rest))
				}
				fmt.Fprintf(c.App.Writer, "%d replacements settled\n", len(out))
				return nil
			})
		},
	}
}

func storeBlockCommand() *cli.Command {
	return &cli.Command{
		Name:  "block",
		Usage: "at the store's desk: block a lost or stolen card (no reader needed); terminals refuse it once they synced",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "card", Required: true, Usage: "card id (hex)"},
			reasonFlag,
			&cli.StringFlag{Name: "store", Required: true, Usage: "store id", EnvVars: []string{"LOOPCARD_STORE"}},
			organizerFlag, hiddenState(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		}, storeAPIFlags()...),
		Action: storeBlock,
	}
}

func storeBlock(c *cli.Context) error {
	card, err := terminaltx.ParseCardHex(c.String("card"))
	if err != nil {
		return fmt.Errorf("--card: want the card id in hex, as printed on the card's label or read by 'loopcard store balance'")
	}
	cfg, err := storeAPIConfig(c)
	if err != nil {
		return err
	}
	r, err := storeclient.Block(c.Context, cfg, card, c.String("reason"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, r)
	}
	fmt.Fprintf(c.App.Writer, "card %s blocked (blocklist version %d); give the holder a new card with 'loopcard store replace --old %s'\n",
		r.Card, r.Blocklist, r.Card)
	return nil
}

func storeReplaceCommand() *cli.Command {
	return &cli.Command{
		Name: "replace",
		Usage: "at the store: the new card presented to --reader takes the balance of the lost or stolen card --old, " +
			"less the organizer's hold, which follows as a second load once the terminals synced past the block",
		Flags: storeClientFlags(
			&cli.StringFlag{Name: "old", Required: true, Usage: "the lost or stolen card's id (hex)"},
			&cli.StringFlag{Name: "new", Usage: "the new card's id (hex): the card presented must be this one"},
			&cli.StringFlag{Name: "reason", Value: "lost", Usage: "why (1 to 500 characters), recorded with it"},
		),
		Action: storeReplace,
	}
}

func storeReplace(c *cli.Context) error {
	old, err := terminaltx.ParseCardHex(c.String("old"))
	if err != nil {
		return fmt.Errorf("--old: want the lost card's id in hex")
	}
	var want []byte
	if c.String("new") != "" {
		if want, err = terminaltx.ParseCardHex(c.String("new")); err != nil {
			return fmt.Errorf("--new: want the new card's id in hex")
		}
	}
	sc, card, done, err := openStoreClient(c)
	if err != nil {
		return err
	}
	defer done()
	if want != nil {
		uid, err := card.UID()
		if err != nil {
			return err
		}
		if terminaltx.CardHex(uid) != terminaltx.CardHex(want) {
			return fmt.Errorf("the card presented is %s, not --new %s: nothing was changed", terminaltx.CardHex(uid), terminaltx.CardHex(want))
		}
	}
	res, err := sc.Replace(c.Context, card, old, c.String("reason"))
	if err != nil {
		printSettled(c, res.Settled)
		return err
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"replacement": res.Replacement, "load": moneyJSON(res)})
	}
	printSettled(c, res.Settled)
	if rr := res.Replacement; rr != nil {
		fmt.Fprintf(c.App.Writer, "card %s replaced by card %s: balance %s, %s written now, %s held until the terminals synced past the block\n",
			terminaltx.CardHex(old), res.Request.Card, cents(rr.Balance), cents(rr.Amount), cents(rr.Hold))
	} else { // answered before a restart: the journal kept the load only
		fmt.Fprintf(c.App.Writer, "card %s replaced by card %s\n", terminaltx.CardHex(old), res.Request.Card)
	}
	if res.Load != nil && res.Load.Write != nil {
		fmt.Fprintf(c.App.Writer, "written onto the card: sequence %d, balance %s -> %s\n", res.Load.Write.Seq, cents(res.Load.Write.Before), cents(res.Load.Write.After))
	}
	return nil
}
