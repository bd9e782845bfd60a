package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/personalize/handover"
)

func storeCommand() *cli.Command {
	return &cli.Command{
		Name:  "store",
		Usage: "stores of the handover log",
		Subcommands: []*cli.Command{
			{
				Name: "keygen",
				Usage: "at the store: create the store's Ed25519 key in a new 0600 file and print its public key, " +
					"for HQ to enrol with 'loopcard store enrol --public-key' (no database or HSM needed)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "store", Required: true, Usage: "store id"},
					&cli.StringFlag{Name: "key-file", Required: true, Usage: "new file for the key (mode 0600)"},
					organizerFlag,
				},
				Action: storeKeygen,
			},
			{
				Name: "enrol",
				Usage: "give a store its Ed25519 signing key and record the public key in the handover log, signed by HQ: " +
					"--key-file creates the key in a new 0600 file; --public-key enrols a key the store made elsewhere",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "store", Required: true, Usage: "store id"},
					&cli.StringFlag{Name: "key-file", Usage: "create the store's key in this new file (mode 0600)"},
					&cli.StringFlag{Name: "public-key", Usage: "enrol this signed-note verifier key (NAME+HASH+KEY), or the file holding it, made by 'loopcard store keygen'"},
					organizerFlag,
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: storeEnrol,
			},
		},
	}
}

func storeEnrol(c *cli.Context) (err error) {
	if c.NArg() > 0 || (c.String("key-file") == "") == (c.String("public-key") == "") {
		return fmt.Errorf("usage: loopcard store enrol --store STORE (--key-file FILE | --public-key VKEY) [--json]")
	}
	org, store := c.Int64("organizer"), c.String("store")
	defer func() {
		outcome := "ok"
		if err != nil {
			outcome = "failed"
		}
		logger(c).Info("store.enrol", slog.Int64("org", org), slog.String("store", store), slog.String("outcome", outcome))
	}()
	var pub handover.PublicKey
	if v := c.String("public-key"); v != "" {
		if pub, err = handover.ParseVkey(v); err != nil {
			b, ferr := os.ReadFile(v)
			if ferr != nil {
				return fmt.Errorf("--public-key: neither a verifier key nor a readable file: %w", err)
			}
			if pub, err = handover.ParseVkey(string(b)); err != nil {
				return fmt.Errorf("--public-key %s: %w", v, err)
			}
		}
	}
	// Open the log before creating a key file, so that a failure leaves
	// no key behind.
	s, err := openLog(c)
	if err != nil {
		return err
	}
	defer s.close()
	if p := c.String("key-file"); p != "" {
		if pub, err = handover.GenerateKeyFile(p, handover.StoreKeyName(org, store)); err != nil {
			return err
		}
	}
	a, err := s.log.EnrolStore(c.Context, store, pub)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"store": store, "key_id": pub.ID(), "public_key": pub.Vkey(), "entry": a.First, "size": a.Checkpoint.Size})
	}
	fmt.Fprintf(c.App.Writer, "store %s enrolled: key %s (entry %d)\npublic key: %s\n", store, pub.ID(), a.First, pub.Vkey())
	return nil
}

func storeKeygen(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("usage: loopcard store keygen --store STORE --key-file FILE")
	}
	pub, err := handover.GenerateKeyFile(c.String("key-file"), handover.StoreKeyName(c.Int64("organizer"), c.String("store")))
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, pub.Vkey())
	return nil
}
