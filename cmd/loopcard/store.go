package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/personalize/handover"
)

// hsmStoreFlag names the store's own PKCS#11 token, the alternative to a
// key file wherever a store signs.
func hsmStoreFlag(usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: "hsm-store", Usage: usage +
		": PKCS#11 URI (RFC 7512) of the store's own token; the key is the object labelled " +
		"loopcard-orgN-store-STORE unless the URI names another with object= " +
		"(with SoftHSM2, the token must be in the same SOFTHSM2_CONF as HQ's when a command uses both)"}
}

// storeKeyLabel is the label of a store's key in its token: the URI's
// object= attribute, or the store's key name.
func storeKeyLabel(uri string, org int64, store string) (string, error) {
	u, err := keys.ParseURI(uri)
	if err != nil {
		return "", fmt.Errorf("--hsm-store: %w", err)
	}
	if u.Object != "" {
		return u.Object, nil
	}
	return handover.StoreKeyName(org, store), nil
}

// openStoreToken opens the store's token named by --hsm-store and the key
// pair in it: generated when create is set, else the existing one. close
// releases the token.
func openStoreToken(c *cli.Context, uri string, org int64, store string, create bool) (s *handover.Signer, close func(), err error) {
	if store == "" {
		return nil, nil, errors.New("--hsm-store needs --store: the store whose key signs")
	}
	label, err := storeKeyLabel(uri, org, store)
	if err != nil {
		return nil, nil, err
	}
	h, err := keys.Open(uri, keys.Options{Logger: logger(c)})
	if err != nil {
		return nil, nil, fmt.Errorf("--hsm-store: %w", err)
	}
	var ks *keys.Signer
	if create {
		ks, err = h.GenerateSigningKey(c.Context, label)
		if errors.Is(err, keys.ErrKeyExists) {
			err = fmt.Errorf("%w: the store's token already holds it; enrol its public key (loopcard store keygen prints it only when it creates the key)", err)
		}
	} else {
		ks, err = h.SigningKey(c.Context, label)
		if errors.Is(err, keys.ErrKeyNotFound) {
			err = fmt.Errorf("%w in the store's token: create it with 'loopcard store keygen --store %s --hsm-store URI'", err, store)
		}
	}
	if err == nil {
		s, err = handover.NewSigner(handover.StoreKeyName(org, store), ks)
	}
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return s, func() { h.Close() }, nil
}

func storeCommand() *cli.Command {
	return &cli.Command{
		Name:  "store",
		Usage: "stores: their keys in the handover log, and the store client (sell, top up, balance)",
		Subcommands: []*cli.Command{
			{
				Name: "keygen",
				Usage: "at the store: create the store's Ed25519 key in a new 0600 file or in the store's own token, and print its public key, " +
					"for HQ to enrol with 'loopcard store enrol --public-key' (no database or HQ HSM needed)",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "store", Required: true, Usage: "store id"},
					&cli.StringFlag{Name: "key-file", Usage: "new file for the key (mode 0600)"},
					hsmStoreFlag("create the key, non-extractable, in this token"),
					organizerFlag,
				},
				Action: storeKeygen,
			},
			{
				Name: "enrol",
				Usage: "give a store its Ed25519 signing key and record the public key in the handover log, signed by HQ: " +
					"--key-file creates the key in a new 0600 file, --hsm-store in the store's token; --public-key enrols a key the store made elsewhere",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "store", Required: true, Usage: "store id"},
					&cli.StringFlag{Name: "key-file", Usage: "create the store's key in this new file (mode 0600)"},
					hsmStoreFlag("create the store's key, non-extractable, in this token"),
					&cli.StringFlag{Name: "public-key", Usage: "enrol this signed-note verifier key (NAME+HASH+KEY), or the file holding it, made by 'loopcard store keygen'"},
					organizerFlag,
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				},
				Action: storeEnrol,
			},
			storeSellCommand(),
			storeTopUpCommand(),
			storeVoucherCommand(),
			storeCorrectCommand(),
			storeBalanceCommand(),
			storeBlockCommand(),
			storeReplaceCommand(),
			storeUICommand(),
		},
	}
}

func storeEnrol(c *cli.Context) (err error) {
	given := 0
	for _, f := range []string{"key-file", "hsm-store", "public-key"} {
		if c.String(f) != "" {
			given++
		}
	}
	if c.NArg() > 0 || given != 1 {
		return fmt.Errorf("usage: loopcard store enrol --store STORE (--key-file FILE | --hsm-store URI | --public-key VKEY) [--json]")
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
	// The log is append-only: an unknown store would stay in it for good.
	if err := checkStore(c.Context, s.st.Ledger, org, store); err != nil {
		return err
	}
	if p := c.String("key-file"); p != "" {
		if pub, err = handover.GenerateKeyFile(p, handover.StoreKeyName(org, store)); err != nil {
			return err
		}
	}
	if uri := c.String("hsm-store"); uri != "" {
		k, close, err := openStoreToken(c, uri, org, store, true)
		if err != nil {
			return err
		}
		close()
		pub = k.PublicKey()
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
	org, store, keyFile, uri := c.Int64("organizer"), c.String("store"), c.String("key-file"), c.String("hsm-store")
	if c.NArg() > 0 || (keyFile == "") == (uri == "") {
		return fmt.Errorf("usage: loopcard store keygen --store STORE (--key-file FILE | --hsm-store URI)")
	}
	var pub handover.PublicKey
	if keyFile != "" {
		var err error
		if pub, err = handover.GenerateKeyFile(keyFile, handover.StoreKeyName(org, store)); err != nil {
			return err
		}
	} else {
		k, close, err := openStoreToken(c, uri, org, store, true)
		if err != nil {
			return err
		}
		close()
		pub = k.PublicKey()
	}
	fmt.Fprintln(c.App.Writer, pub.Vkey())
	return nil
}
