package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/menu"
)

// Menus (issue 19): `loopcard menu set --merchant M FILE` sets a
// merchant's next menu version from a JSON or CSV file (audited, with the
// operator); `loopcard menu show --merchant M [--json]` prints the current
// one. Terminals fetch their merchant's menu with their session key.

func menuCommand() *cli.Command {
	merchantFlag := &cli.StringFlag{Name: "merchant", Required: true, Usage: "merchant id"}
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return &cli.Command{
		Name:  "menu",
		Usage: "the products a merchant's terminals sell: prices, VAT rates, categories, deposit items",
		Subcommands: []*cli.Command{
			{
				Name: "set",
				Usage: "set the merchant's menu from a JSON file ({\"products\": [...]}) or a CSV file (header " +
					"id,name,price,vat_rate_bp,category,age_restricted,deposit; prices in cents, 2100 is 21 % VAT): a new version",
				ArgsUsage: "FILE",
				Flags:     []cli.Flag{organizerFlag, merchantFlag, jsonFlag},
				Action:    menuSet,
			},
			{
				Name:   "show",
				Usage:  "print the merchant's current menu",
				Flags:  []cli.Flag{organizerFlag, merchantFlag, jsonFlag},
				Action: menuShow,
			},
		},
	}
}

func menuSet(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("menu set takes one FILE (JSON or CSV)", 2)
	}
	f, err := os.Open(c.Args().First())
	if err != nil {
		return fmt.Errorf("menu file: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, menu.MaxFileSize+1))
	f.Close()
	if err != nil {
		return fmt.Errorf("menu file: %w", err)
	}
	ps, err := menu.Parse(b)
	if err != nil {
		return fmt.Errorf("%w: nothing was changed; fix the file and run menu set again", err)
	}
	st, err := openStack(c, partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	org, merchant := c.Int64("organizer"), c.String("merchant")
	m, err := st.Ledger.SetMenu(c.Context, org, merchant, ps, "cli:"+operator(c))
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("no merchant %s of organizer %d: add it with loopcard ledger merchant", merchant, org)
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, m)
	}
	fmt.Fprintf(c.App.Writer, "menu of %s is version %d with %d products; terminals fetch it with their next session key or menu sync\n",
		merchant, m.Version, len(m.Products))
	return nil
}

func menuShow(c *cli.Context) error {
	org, merchant := c.Int64("organizer"), c.String("merchant")
	return withLedger(c, func(l *ledger.Ledger) error {
		m, err := l.Menu(c.Context, org, merchant)
		if errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("merchant %s of organizer %d has no menu: set one with loopcard menu set --merchant %s FILE", merchant, org, merchant)
		}
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c, m)
		}
		fmt.Fprintf(c.App.Writer, "menu of %s, version %d\n", m.Merchant, m.Version)
		tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "id\tname\tprice\tVAT %\tcategory\tflags\t")
		for _, p := range m.Products {
			flags := ""
			if p.AgeRestricted {
				flags += "18+ "
			}
			if p.Deposit {
				flags += "deposit"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", p.ID, p.Name, money(p.Price), money(int64(p.VATRateBP)), p.Category, flags)
		}
		return tw.Flush()
	})
}
