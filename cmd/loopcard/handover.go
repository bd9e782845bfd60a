package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/stack"
	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/handoverdb"
)

func handoverCommand() *cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	batchFlag := &cli.Int64Flag{Name: "batch", Required: true, Usage: "batch number"}
	storeFlag := &cli.StringFlag{Name: "store", Required: true, Usage: "store id"}
	return &cli.Command{
		Name:  "handover",
		Usage: "the signed custody log: issue batches, hand them to stores, receipts, card events",
		Subcommands: []*cli.Command{
			{
				Name:   "issue",
				Usage:  "record a complete batch as issued (count and Merkle root of its card numbers), signed by HQ",
				Flags:  []cli.Flag{batchFlag, organizerFlag, jsonFlag},
				Action: handoverIssue,
			},
			{
				Name:  "send",
				Usage: "record that HQ hands cards of a batch to a store, signed by HQ",
				Flags: []cli.Flag{batchFlag, storeFlag,
					&cli.Int64Flag{Name: "count", Usage: "cards handed over (default: the whole batch)"},
					&cli.StringFlag{Name: "first", Usage: "the first card (such as 1-00001) of the run of --count cards handed over in slot order: " +
						"the custody log then holds them at the store, and no other store sells them"},
					organizerFlag, jsonFlag},
				Action: handoverSend,
			},
			{
				Name: "receive",
				Usage: "record the cards a store counted on receipt, signed with the store's key, and count them into the store's stock; " +
					"with a store token (--token-file or LOOPCARD_STORE_TOKEN) through the API, without HQ's database or HSM",
				Flags: append([]cli.Flag{batchFlag, storeFlag,
					&cli.Int64Flag{Name: "count", Required: true, Usage: "cards the store counted"},
					&cli.StringFlag{Name: "key-file", Usage: "the store's key file (0600), made by 'loopcard store keygen' or 'store enrol'"},
					hsmStoreFlag("sign with the store's key in its own token"),
					organizerFlag, jsonFlag, hiddenState()}, storeAPIFlags()...),
				Action: handoverReceive,
			},
			{
				Name: "card",
				Usage: "record card events: several cards are sealed with one signature; a store's events (" + strings.Join(storeCardEvents(), ", ") + ") " +
					"with a store token (--token-file or LOOPCARD_STORE_TOKEN) go through the API, without HQ's database or HSM",
				Subcommands: cardCommands(),
			},
		},
	}
}

// cardCommands are the subcommands of `handover card`, one per card event
// of the custody log's table (handover.Kinds).
func cardCommands() []*cli.Command {
	var out []*cli.Command
	for _, k := range handover.Kinds() {
		if k.CLI == "" {
			continue
		}
		store := "store where it happens (none: at HQ)"
		if k.Requires&handover.FieldStore != 0 {
			store = "store where it happens (required)"
		}
		keyFile := "sign with this store key file (or --hsm-store)"
		if k.Signers&handover.SignedByHQ != 0 {
			keyFile = "sign with this store key file; without it or --hsm-store HQ signs"
		}
		out = append(out, &cli.Command{
			Name:      k.CLI,
			Usage:     k.Help,
			ArgsUsage: "CARD...",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "store", Usage: store},
				&cli.StringFlag{Name: "key-file", Usage: keyFile},
				hsmStoreFlag("sign with the store's key in its own token"),
				&cli.StringFlag{Name: "note", Usage: "short reason, no personal data"},
				organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}, hiddenState(),
			}, storeAPIFlags()...),
			Action: func(c *cli.Context) error { return handoverCards(c, k) },
		})
	}
	return out
}

// storeCardEvents names the card events a store records through the API.
func storeCardEvents() []string {
	var out []string
	for _, k := range handover.Kinds() {
		if k.CLI != "" && k.StoreRoute == handover.RouteCardEvents {
			out = append(out, k.CLI)
		}
	}
	return out
}

// hqSigner returns hq-sign of the open HSM as the log's HQ signer.
func hqSigner(c *cli.Context, h *keys.HSM, org int64) (*handover.Signer, error) {
	s, err := h.Signer(c.Context, keys.Label{Name: "hq-sign"})
	if err != nil {
		if errors.Is(err, keys.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: run 'loopcard keys init' first", err)
		}
		return nil, err
	}
	return handover.NewSigner(handover.DefaultOrigin(org), s)
}

// logSession is an open log with the installation it lives in.
type logSession struct {
	log *handoverdb.Log
	st  *stack.Stack
}

// close closes the log's installation.
func (s *logSession) close() { s.st.Close() }

// openLog opens the database, the HSM and the organizer's log.
func openLog(c *cli.Context) (*logSession, error) {
	org := c.Int64("organizer")
	st, err := openStack(c, partHSM)
	if err != nil {
		return nil, err
	}
	hq, err := hqSigner(c, st.HSM, org)
	if err == nil {
		err = openParts(c, st, partDatabase)
	}
	var l *handoverdb.Log
	if err == nil {
		l, err = handoverdb.Open(c.Context, st.Pool, handoverdb.Config{Org: org, HQ: hq, Logger: logger(c)})
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return &logSession{log: l, st: st}, nil
}

// appendedJSON is the --json form of an append.
type appendedJSON struct {
	First      int64  `json:"first"`
	Entries    int    `json:"entries"`
	Size       int64  `json:"size"`
	Root       string `json:"root"`
	Checkpoint string `json:"checkpoint"`
	Again      bool   `json:"already_recorded,omitempty"`
}

func printAppended(c *cli.Context, what string, n int, a handoverdb.Appended) error {
	if c.Bool("json") {
		return printJSON(c, appendedJSON{First: a.First, Entries: n, Size: a.Checkpoint.Size, Root: a.Checkpoint.Root.String(), Checkpoint: string(a.Note)})
	}
	if n == 1 {
		fmt.Fprintf(c.App.Writer, "%s: entry %d; log size %d, root %s\n", what, a.First, a.Checkpoint.Size, a.Checkpoint.Root)
	} else {
		fmt.Fprintf(c.App.Writer, "%s: entries %d to %d; log size %d, root %s\n", what, a.First, a.First+int64(n)-1, a.Checkpoint.Size, a.Checkpoint.Root)
	}
	return nil
}

func handoverIssue(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard handover issue --batch ID [--json]")
	}
	s, err := openLog(c)
	if err != nil {
		return err
	}
	defer s.close()
	a, err := s.log.IssueFromStore(c.Context, s.st.Batches, c.Int64("batch"))
	if err != nil {
		return err
	}
	return printAppended(c, fmt.Sprintf("batch %d issued", c.Int64("batch")), 1, a)
}

func handoverSend(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard handover send --batch ID --store STORE [--count N [--first CARD]] [--json]")
	}
	s, err := openLog(c)
	if err != nil {
		return err
	}
	defer s.close()
	if err := checkStore(c.Context, s.st.Ledger, s.log.Org(), c.String("store")); err != nil {
		return err
	}
	no, count := c.Int64("batch"), c.Int64("count")
	b, err := checkBatch(c.Context, s.st.Batches, s.log.Org(), no)
	if err != nil {
		return err
	}
	if !c.IsSet("count") {
		count = int64(b.Count)
	}
	first := c.String("first")
	if first != "" {
		if id, err := handover.ParseCardNumber(first); err != nil || id.Batch() != no {
			return fmt.Errorf("--first: want a card number of batch %d, such as %d-00001", no, no)
		}
	}
	a, err := s.log.HandOverRun(c.Context, no, c.String("store"), count, first)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%d cards of batch %d handed to %s", count, no, c.String("store"))
	if first != "" {
		what += ", from " + first
	}
	return printAppended(c, what, 1, a)
}

// hiddenState lets the handover commands that may go through the API use
// the store client's configuration (storeAPIConfig); they keep no state.
func hiddenState() cli.Flag { return &cli.StringFlag{Name: "state", Hidden: true} }

// printAPIAppended prints an append made through the API.
func printAPIAppended(c *cli.Context, what string, n int, a apitype.AppendResponse, asJSON bool) error {
	if asJSON {
		return printJSON(c, appendedJSON{First: a.First, Entries: n, Size: a.Size, Again: a.Again})
	}
	if a.Again {
		fmt.Fprintf(c.App.Writer, "%s: recorded before (the log has these signed bytes already); nothing appended\n", what)
		return nil
	}
	if n == 1 {
		fmt.Fprintf(c.App.Writer, "%s: entry %d; log size %d (through the API)\n", what, a.First, a.Size)
	} else {
		fmt.Fprintf(c.App.Writer, "%s: entries %d to %d; log size %d (through the API)\n", what, a.First, a.First+int64(n)-1, a.Size)
	}
	return nil
}

func handoverReceive(c *cli.Context) error {
	if c.NArg() > 0 || (c.String("key-file") == "") == (c.String("hsm-store") == "") {
		return fmt.Errorf("usage: loopcard handover receive --batch ID --store STORE --count N (--key-file FILE | --hsm-store URI) [--token-file FILE] [--json]")
	}
	var key *handover.Signer
	if c.String("key-file") != "" { // a bad file fails before anything opens
		k, err := handover.OpenKeyFile(c.String("key-file"))
		if err != nil {
			return err
		}
		key = k
	}
	what := fmt.Sprintf("store %s counted %d cards of batch %d", c.String("store"), c.Int64("count"), c.Int64("batch"))
	tok, err := storeToken(c)
	if err != nil {
		return err
	}
	if tok != "" {
		// At the store: signed here, appended (and counted into stock) by the API.
		cfg, err := storeAPIConfig(c)
		if err != nil {
			return err
		}
		if key == nil {
			k, close, err := openStoreToken(c, c.String("hsm-store"), cfg.Org, cfg.Store, false)
			if err != nil {
				return err
			}
			defer close()
			key = k
		}
		a, err := storeclient.AppendReceipt(c.Context, cfg, key, c.Int64("batch"), c.Int64("count"))
		if err != nil {
			return err
		}
		return printAPIAppended(c, what, 1, a, c.Bool("json"))
	}
	s, err := openLog(c)
	if err != nil {
		return err
	}
	defer s.close()
	if err := checkStore(c.Context, s.st.Ledger, s.log.Org(), c.String("store")); err != nil {
		return err
	}
	if key == nil {
		// After openLog: the embedded HSM sets SOFTHSM2_CONF before the
		// module is first initialised.
		k, close, err := openStoreToken(c, c.String("hsm-store"), s.log.Org(), c.String("store"), false)
		if err != nil {
			return err
		}
		defer close()
		key = k
	}
	e, err := handover.NewReceipt(key, s.log.Org(), c.Int64("batch"), c.String("store"), c.Int64("count"), s.log.Now())
	if err != nil {
		return err
	}
	// The API's path: the receipt, then the store's stock in the ledger.
	a, err := api.AppendReceipts(c.Context, s.log, s.st.Ledger, e)
	if err != nil {
		return err
	}
	return printAppended(c, what, 1, a)
}

func handoverCards(c *cli.Context, k handover.Kind) error {
	usage := fmt.Sprintf("usage: loopcard handover card %s CARD... [--store STORE] [--key-file FILE | --hsm-store URI] [--note TEXT] [--json]", c.Command.Name)
	store, keyFile, hsmStore, note, asJSON := c.String("store"), c.String("key-file"), c.String("hsm-store"), c.String("note"), c.Bool("json")
	cards := c.Args().Slice()
	if len(cards) == 0 {
		return errors.New(usage)
	}
	if store == "" && k.Requires&handover.FieldStore != 0 {
		return fmt.Errorf("--store is required: the store that %s the cards; %s", c.Command.Name, usage)
	}
	var evs []handover.CardEvent
	for _, a := range cards {
		id, err := personalize.ParseCardID(a)
		if err != nil {
			return err
		}
		evs = append(evs, handover.CardEvent{Type: k.Type, Card: id, Store: store, Note: note})
	}
	if keyFile != "" && hsmStore != "" {
		return fmt.Errorf("give --key-file or --hsm-store, not both; %s", usage)
	}
	var key *handover.Signer
	if p := keyFile; p != "" {
		k, err := handover.OpenKeyFile(p)
		if err != nil {
			return err
		}
		key = k
	}
	tok, err := storeToken(c)
	if err != nil {
		return err
	}
	if tok != "" {
		return storeCardEventsAPI(c, key, hsmStore, evs, asJSON)
	}
	s, err := openLog(c)
	if err != nil {
		return err
	}
	defer s.close()
	if store != "" {
		if err := checkStore(c.Context, s.st.Ledger, s.log.Org(), store); err != nil {
			return err
		}
	}
	if hsmStore != "" {
		// After openLog: the embedded HSM sets SOFTHSM2_CONF before the
		// module is first initialised.
		k, close, err := openStoreToken(c, hsmStore, s.log.Org(), store, false)
		if err != nil {
			return err
		}
		defer close()
		key = k
	}
	if key == nil {
		key = s.log.HQ()
	}
	a, err := s.log.RecordCards(c.Context, key, evs...)
	if err != nil {
		return err
	}
	n := len(evs)
	if n > 1 {
		n++ // the seal
	}
	if asJSON {
		return printJSON(c, appendedJSON{First: a.First, Entries: n, Size: a.Checkpoint.Size, Root: a.Checkpoint.Root.String(), Checkpoint: string(a.Note)})
	}
	return printAppended(c, fmt.Sprintf("%d cards %s", len(evs), c.Command.Name), n, a)
}

// storeCardEventsAPI signs a store's card events with its key here and
// appends them through the API (POST /v1/stores/{store}/card-events).
func storeCardEventsAPI(c *cli.Context, key *handover.Signer, hsmStore string, evs []handover.CardEvent, asJSON bool) error {
	if evs[0].Store == "" {
		return errors.New("--store is required: through the API a store signs its own card events")
	}
	cfg, err := storeAPIConfig(c)
	if err != nil {
		return err
	}
	if key == nil {
		if hsmStore == "" {
			return errors.New("give the store's key: --key-file FILE or --hsm-store URI (through the API only a store signs)")
		}
		k, close, err := openStoreToken(c, hsmStore, cfg.Org, cfg.Store, false)
		if err != nil {
			return err
		}
		defer close()
		key = k
	}
	a, err := storeclient.AppendCardEvents(c.Context, cfg, key, evs)
	if err != nil {
		return err
	}
	n := len(evs)
	if n > 1 {
		n++ // the seal
	}
	return printAPIAppended(c, fmt.Sprintf("%d cards %s", len(evs), c.Command.Name), n, a, asJSON)
}
