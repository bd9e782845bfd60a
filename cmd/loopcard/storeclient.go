package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
)

// storeAPIFlags are the flags of a store talking to the API with its
// store token.
func storeAPIFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "token-file", Usage: "file holding the store's token (default: LOOPCARD_STORE_TOKEN)"},
		&cli.StringFlag{Name: "url", Value: "https://127.0.0.1:8443", Usage: "the API's base URL", EnvVars: []string{"LOOPCARD_URL"}},
		&cli.StringFlag{Name: "ca", Usage: "PEM file of the CA the API's certificate chains to (default: DATA_DIR/tls/ca.pem)", EnvVars: []string{"LOOPCARD_CA"}},
	}
}

// storeClientFlags are the flags of the store client's card commands.
func storeClientFlags(extra ...cli.Flag) []cli.Flag {
	fs := append([]cli.Flag{
		&cli.StringFlag{Name: "reader", Required: true, Usage: "PC/SC reader name, index or part of its name"},
		&cli.StringFlag{Name: "store", Required: true, Usage: "store id", EnvVars: []string{"LOOPCARD_STORE"}},
		&cli.StringFlag{Name: "state", Usage: "the store client's state directory (key-agreement key, journal)", EnvVars: []string{"LOOPCARD_STORE_STATE"}},
		organizerFlag,
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
	}, extra...)
	return append(fs, storeAPIFlags()...)
}

// storeToken reads the store's token from --token-file or
// LOOPCARD_STORE_TOKEN ("" when neither is given).
func storeToken(c *cli.Context) (string, error) {
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(os.Getenv("LOOPCARD_STORE_TOKEN")), nil
}

// storeAPIConfig is the store client's configuration from the flags. The
// HTTP client trusting --ca is made by the terminal's terminalConfig,
// which also wants a --state: commands without a state directory (handover
// through the API) define it hidden, and it is set to "-" here.
func storeAPIConfig(c *cli.Context) (storeclient.Config, error) {
	tok, err := storeToken(c)
	if err != nil {
		return storeclient.Config{}, err
	}
	if tok == "" {
		return storeclient.Config{}, errors.New("no store token: give --token-file or set LOOPCARD_STORE_TOKEN (HQ issues it with 'loopcard token issue --role store --store STORE')")
	}
	state := c.String("state")
	if state == "" {
		if err := c.Set("state", "-"); err != nil {
			return storeclient.Config{}, err
		}
	}
	tc, err := terminalConfig(c)
	if err != nil {
		return storeclient.Config{}, err
	}
	return storeclient.Config{StateDir: state, URL: tc.URL, HTTP: tc.HTTP, Org: c.Int64("organizer"), Store: c.String("store"),
		Token: tok, Logger: logger(c)}, nil
}

func storeSellCommand() *cli.Command {
	return &cli.Command{
		Name: "sell",
		Usage: "at the store: sell the card presented to --reader for cash: a deposit and credit written onto the card; " +
			"with --key-file also record card_sold in the custody log",
		Flags: storeClientFlags(
			&cli.Int64Flag{Name: "deposit", Usage: "refundable deposit in cents"},
			&cli.Int64Flag{Name: "credit", Usage: "credit in cents, written onto the card"},
			&cli.StringFlag{Name: "key-file", Usage: "the store's key file (made by 'loopcard store keygen'): sign card_sold for the custody log"},
		),
		Action: func(c *cli.Context) error { return storeMoney(c, storeclient.KindSale) },
	}
}

func storeTopUpCommand() *cli.Command {
	return &cli.Command{
		Name:   "topup",
		Usage:  "at the store: load --amount cents of cash onto the card presented to --reader",
		Flags:  storeClientFlags(&cli.Int64Flag{Name: "amount", Required: true, Usage: "amount in cents"}),
		Action: func(c *cli.Context) error { return storeMoney(c, storeclient.KindTopUp) },
	}
}

func storeVoucherCommand() *cli.Command {
	return &cli.Command{
		Name: "voucher",
		Usage: "at the store: redeem a voucher for the card presented to --reader and write its value onto the card; " +
			"the code is read from standard input (not a flag: flags show in the process list)",
		Flags:  storeClientFlags(),
		Action: storeVoucher,
	}
}

func storeVoucher(c *cli.Context) error {
	line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
	if err != nil && line == "" {
		return errors.New("type the voucher code on standard input")
	}
	code := strings.TrimSpace(line)
	sc, card, done, err := openStoreClient(c)
	if err != nil {
		return err
	}
	defer done()
	res, err := sc.RedeemVoucher(c.Context, card, code)
	if err != nil {
		printSettled(c, res.Settled)
		return err
	}
	if c.Bool("json") {
		return printJSON(c, moneyJSON(res))
	}
	printSettled(c, res.Settled)
	fmt.Fprintf(c.App.Writer, "voucher of %s redeemed for card %s (load %s)\n", cents(res.Request.Amount), res.Request.Card, res.Request.Load)
	if res.Load != nil && res.Load.Write != nil {
		fmt.Fprintf(c.App.Writer, "written onto the card: sequence %d, balance %s -> %s\n", res.Load.Write.Seq, cents(res.Load.Write.Before), cents(res.Load.Write.After))
	}
	return nil
}

func storeCorrectCommand() *cli.Command {
	return &cli.Command{
		Name:  "correct",
		Usage: "at the store: correct a posted payment (charged back to its merchant, a load of its card at the next write)",
		Flags: append(storeAPIFlags(), organizerFlag, hiddenState(),
			&cli.StringFlag{Name: "store", Required: true, Usage: "store id", EnvVars: []string{"LOOPCARD_STORE"}},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "payment", Required: true, Usage: "the payment's transaction id"},
			&cli.Int64Flag{Name: "amount", Required: true, Usage: "amount to give back, in cents"},
			&cli.StringFlag{Name: "reason", Required: true, Usage: "why (1 to 500 characters)"}),
		Action: storeCorrect,
	}
}

func storeCorrect(c *cli.Context) error {
	cfg, err := storeAPIConfig(c)
	if err != nil {
		return err
	}
	cr, err := storeclient.Correct(c.Context, cfg, c.String("payment"), c.Int64("amount"), c.String("reason"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, cr)
	}
	if cr.Status == "posted" {
		fmt.Fprintf(c.App.Writer, "correction %s of %s posted: the card gets it at its next write\n", cr.ID, cents(cr.Amount))
	} else {
		fmt.Fprintf(c.App.Writer, "correction %s of %s awaits HQ's approval (above the organizer's threshold)\n", cr.ID, cents(cr.Amount))
	}
	return nil
}

func storeBalanceCommand() *cli.Command {
	return &cli.Command{
		Name:   "balance",
		Usage:  "at the store: read the balance of the card presented to --reader, and the ledger's balance and pending loads",
		Flags:  storeClientFlags(),
		Action: storeBalance,
	}
}

// openStoreClient opens the store client and waits for a card on --reader.
func openStoreClient(c *cli.Context) (*storeclient.Client, terminal.Card, func(), error) {
	if c.NArg() > 0 {
		return nil, nil, nil, fmt.Errorf("%s takes no arguments", c.Command.Name)
	}
	if c.String("state") == "" {
		return nil, nil, nil, errors.New("--state is required: the store client's state directory (or set LOOPCARD_STORE_STATE)")
	}
	cfg, err := storeAPIConfig(c)
	if err != nil {
		return nil, nil, nil, err
	}
	sc, err := storeclient.Open(c.Context, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := pcsc.Open(c.String("reader"))
	if err != nil {
		sc.Close()
		return nil, nil, nil, err
	}
	fmt.Fprintf(c.App.ErrWriter, "store %s on %s: present a card\n", cfg.Store, r.Name())
	card, err := r.WaitForCard(c.Context)
	if err != nil {
		r.Close()
		sc.Close()
		return nil, nil, nil, err
	}
	return sc, card, func() { r.Close(); sc.Close() }, nil
}

func cents(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// storeMoneyJSON is the --json form of a sale or top-up.
type storeMoneyJSON struct {
	Kind    string              `json:"kind"`
	ID      string              `json:"id"`
	Card    string              `json:"card"`
	Deposit int64               `json:"deposit,omitempty"`
	Amount  int64               `json:"amount,omitempty"`
	Load    string              `json:"load,omitempty"`
	Write   *terminal.CardWrite `json:"write,omitempty"`
	Number  string              `json:"number,omitempty"`
	Custody *int64              `json:"custody_entry,omitempty"`
	Settled []storeMoneyJSON    `json:"settled,omitempty"`
}

func moneyJSON(r storeclient.Result) storeMoneyJSON {
	out := storeMoneyJSON{Kind: r.Request.Kind, ID: r.ID, Card: r.Request.Card, Deposit: r.Request.Deposit, Amount: r.Request.Amount, Load: r.Request.Load}
	if r.Load != nil {
		out.Write = r.Load.Write
	}
	for _, s := range r.Settled {
		out.Settled = append(out.Settled, moneyJSON(s))
	}
	return out
}

func printSettled(c *cli.Context, rs []storeclient.Result) {
	for _, s := range rs {
		fmt.Fprintf(c.App.Writer, "settled an earlier %s of %s (idempotency key %s)\n", s.Request.Kind, cents(s.Request.Amount), s.Request.Key)
	}
}

func storeMoney(c *cli.Context, kind string) error {
	var key *handover.Signer
	if kind == storeclient.KindSale {
		if c.Int64("deposit") < 0 || c.Int64("credit") < 0 || c.Int64("deposit")+c.Int64("credit") == 0 {
			return errors.New("give --deposit and/or --credit in cents (not negative, not both zero)")
		}
		if p := c.String("key-file"); p != "" {
			k, err := handover.OpenKeyFile(p)
			if err != nil {
				return err
			}
			key = k
		}
	} else if c.Int64("amount") <= 0 {
		return errors.New("--amount must be a positive number of cents")
	}
	sc, card, done, err := openStoreClient(c)
	if err != nil {
		return err
	}
	defer done()
	var res storeclient.Result
	if kind == storeclient.KindSale {
		res, err = sc.Sell(c.Context, card, c.Int64("deposit"), c.Int64("credit"))
	} else {
		res, err = sc.TopUp(c.Context, card, c.Int64("amount"))
	}
	if err != nil {
		printSettled(c, res.Settled)
		return err
	}
	out := moneyJSON(res)
	if key != nil {
		b, err := sc.Balance(c.Context, card)
		if err != nil {
			return fmt.Errorf("sale %s recorded, but the card's number was not read for the custody log: %w; "+
				"record it with 'loopcard handover card sold NUMBER --store %s --key-file FILE --token-file FILE'", res.ID, err, c.String("store"))
		}
		id, err := personalize.ParseCardID(b.Number)
		if err != nil {
			return err
		}
		out.Number = b.Number
		a, err := storeclient.AppendCardEvents(c.Context, sc.Config(), key, []handover.CardEvent{{Type: handover.TypeCardSold, Card: id, Store: c.String("store")}})
		if err != nil {
			return fmt.Errorf("sale %s recorded, but card_sold was not appended to the custody log: %w; "+
				"record it with 'loopcard handover card sold %s --store %s --key-file FILE --token-file FILE'", res.ID, err, b.Number, c.String("store"))
		}
		out.Custody = &a.First
	}
	if c.Bool("json") {
		return printJSON(c, out)
	}
	printSettled(c, res.Settled)
	switch kind {
	case storeclient.KindSale:
		fmt.Fprintf(c.App.Writer, "sold card %s: deposit %s, credit %s (sale %s)\n", res.Request.Card, cents(res.Request.Deposit), cents(res.Request.Amount), res.ID)
	default:
		fmt.Fprintf(c.App.Writer, "topped up card %s with %s (top-up %s)\n", res.Request.Card, cents(res.Request.Amount), res.ID)
	}
	if res.Load != nil && res.Load.Write != nil {
		fmt.Fprintf(c.App.Writer, "written onto the card: sequence %d, balance %s -> %s\n", res.Load.Write.Seq, cents(res.Load.Write.Before), cents(res.Load.Write.After))
	}
	if out.Custody != nil {
		fmt.Fprintf(c.App.Writer, "card %s sold in the custody log: entry %d\n", out.Number, *out.Custody)
	}
	return nil
}

func storeBalance(c *cli.Context) error {
	sc, card, done, err := openStoreClient(c)
	if err != nil {
		return err
	}
	defer done()
	b, err := sc.Balance(c.Context, card)
	if err != nil {
		printSettled(c, b.Settled)
		return err
	}
	if c.Bool("json") {
		return printJSON(c, b)
	}
	printSettled(c, b.Settled)
	fmt.Fprintf(c.App.Writer, "card %s (%s), event %s\n", b.Number, b.Card, b.Event)
	fmt.Fprintf(c.App.Writer, "on the card: %s (sequence %d)\n", cents(b.OnCard), b.Seq)
	fmt.Fprintf(c.App.Writer, "ledger: %s, pending %s (%d loads)\n", cents(b.Ledger), cents(b.Pending), len(b.Loads))
	if b.OnCard != b.Ledger {
		fmt.Fprintf(c.App.Writer, "the card and the ledger differ: present the card at the store again to settle open requests, or ask HQ to check its alerts\n")
	}
	return nil
}
