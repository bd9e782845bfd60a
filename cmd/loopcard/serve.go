package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/cardpage/checkout"
	"github.com/loopcard/loopcard/api/tlsca"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/paytest"
	"github.com/loopcard/loopcard/ledger/payment/stripepay"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the HTTPS API (TLS 1.3) until SIGINT or SIGTERM",
		Description: "Without --tls-cert, a local CA and a server certificate for localhost and 127.0.0.1\n" +
			"are made under DATA_DIR/tls on first use; clients trust DATA_DIR/tls/ca.pem.\n" +
			"With --test-payments, the local test payment provider serves its pages on its own address\n" +
			"(printed) and sends each payment as a signed webhook to this server's /v1/payments/webhook.\n" +
			"With --stripe-key-file and --stripe-webhook-secret-file, online top-ups go through Stripe Checkout\n" +
			"with --payment-methods; point a Stripe webhook endpoint at /v1/payments/webhook with the events\n" +
			"checkout.session.*, payment_intent.*, charge.refunded and charge.dispute.created.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8443", Usage: "address to listen on", EnvVars: []string{"LOOPCARD_LISTEN"}},
			&cli.StringFlag{Name: "tls-cert", Usage: "server certificate (PEM); default: the local CA's"},
			&cli.StringFlag{Name: "tls-key", Usage: "server key (PEM), with --tls-cert"},
			&cli.StringFlag{Name: "client-ca", Usage: "CA (PEM) of terminal client certificates; default: the local CA"},
			&cli.StringSliceFlag{Name: "host", Usage: "extra host name of the local server certificate (repeatable)"},
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "how long in-flight requests may finish at shutdown"},
			&cli.Float64Flag{Name: "rate-ip", Usage: "requests per second per IP address, an IPv6 /64 as one (0: default 200, negative: no limit)"},
			&cli.Float64Flag{Name: "rate-client", Usage: "requests per second per client (0: default 50, negative: no limit)"},
			&cli.Float64Flag{Name: "rate-anonymous", Usage: "requests per second of all anonymous requests together (card pages, card lookups, webhook, claims); more are refused with 429 before any database work (0: default 500, negative: no budget)"},
			&cli.IntFlag{Name: "burst-anonymous", Usage: "burst of the anonymous budget (0: twice --rate-anonymous)"},
			&cli.Float64Flag{Name: "rate-failed-credentials", Usage: "staff tokens and terminal signatures per second that may fail; past it, a credential that did not authenticate in the last 10 minutes is refused with 429 before its lookup (0: default 10, negative: no budget)"},
			&cli.IntFlag{Name: "burst-failed-credentials", Usage: "burst of the failed-credentials budget (0: 10 times --rate-failed-credentials)"},
			&cli.IntFlag{Name: "max-conns-per-ip", Usage: "connections open at once from one IP address (an IPv6 /64); more are closed when accepted (0: default 256, negative: no cap)"},
			&cli.IntFlag{Name: "max-conns", Usage: "connections open at once in total (0: default 4096, negative: no cap)"},
			&cli.BoolFlag{Name: "test-payments", Usage: "run the local test payment provider (no money moves) for online top-ups; local CA only"},
			&cli.StringFlag{Name: "test-payments-listen", Value: "127.0.0.1:0", Usage: "address of the test payment provider's pages, with --test-payments"},
			&cli.StringFlag{Name: "stripe-key-file", Usage: "file holding the Stripe secret API key (sk_...): online top-ups through Stripe"},
			&cli.StringSliceFlag{Name: "stripe-webhook-secret-file", Usage: "file holding the Stripe webhook signing secret (whsec_...); repeat while Stripe rolls it"},
			&cli.StringFlag{Name: "payment-methods", Value: strings.Join(stripepay.Methods, ","), Usage: "payment methods offered at Stripe Checkout, of " + strings.Join(stripepay.Methods, ", ")},
			&cli.StringFlag{Name: "stripe-api-url", Usage: "Stripe API address (default Stripe's; stripe-mock in tests)", Hidden: true},
			&cli.DurationFlag{Name: "processing-ttl", Value: api.DefaultProcessingTTL, Usage: "how long a payment may stay processing before it is abandoned"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return cli.Exit("serve takes no arguments", 2)
			}
			return serve(c)
		},
	}
}

func serve(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := getConfig(c)
	log := logger(c)

	if c.Bool("test-payments") && (c.String("tls-cert") != "" || c.String("tls-key") != "") {
		return cli.Exit("--test-payments runs with the local CA only: leave out --tls-cert", 2)
	}
	var stripe *stripepay.Provider
	if c.String("stripe-key-file") != "" {
		if c.Bool("test-payments") {
			return cli.Exit("choose one of --test-payments and --stripe-key-file", 2)
		}
		var err error
		if stripe, err = stripeProvider(c); err != nil {
			return err
		}
	}
	tc, localCA, err := serverTLS(c, cfg.DataDir)
	if err != nil {
		return err
	}
	st, err := openStack(c, partHSM|partDatabase)
	if err != nil {
		return err
	}
	defer st.Close()
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	apiCfg := api.Config{
		Logger: log,
		Limits: api.Limits{PerIP: c.Float64("rate-ip"), PerClient: c.Float64("rate-client"),
			Anonymous: c.Float64("rate-anonymous"), AnonymousBurst: c.Int("burst-anonymous"),
			FailedCredentials: c.Float64("rate-failed-credentials"), FailedCredentialsBurst: c.Int("burst-failed-credentials"),
			MaxConnsPerAddr: c.Int("max-conns-per-ip"), MaxConns: c.Int("max-conns")},
	}
	if stripe != nil {
		apiCfg.Payments = &api.Payments{Provider: "stripe", Webhooks: stripe, TopUps: stripe, AutoTopUps: stripe, Origin: "https://checkout.stripe.com",
			ProcessingTTL: c.Duration("processing-ttl")}
		fmt.Fprintf(c.App.ErrWriter, "loopcard: online top-ups through Stripe (%s)\n", c.String("payment-methods"))
	}
	if c.Bool("test-payments") {
		tp, err := startTestPayments(ctx, c.String("test-payments-listen"), ln.Addr(), tc, localCA, log)
		if err != nil {
			return err
		}
		defer tp.stop()
		apiCfg.Payments = tp.payments
		fmt.Fprintf(c.App.ErrWriter, "loopcard: test payment provider (no money moves) at %s\n", tp.payments.Origin)
	}
	// Without hq-sign (keys not initialised) the custody routes answer
	// 503 and everything else works.
	if err := st.NewServer(ctx, apiCfg); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "loopcard: serving https://%s\n", ln.Addr())
	return st.Server.Serve(ctx, ln, tc, c.Duration("grace"))
}

// stripeProvider reads the Stripe keys from their files.
func stripeProvider(c *cli.Context) (*stripepay.Provider, error) {
	key, err := readKeyFile(c.String("stripe-key-file"), "sk_")
	if err != nil {
		return nil, err
	}
	cfg := stripepay.Config{Key: key, URL: c.String("stripe-api-url")}
	if m := c.String("payment-methods"); m != "" {
		cfg.Methods = strings.Split(m, ",")
	}
	files := c.StringSlice("stripe-webhook-secret-file")
	for _, f := range files {
		s, err := readKeyFile(f, "whsec_")
		if err != nil {
			return nil, err
		}
		cfg.WebhookSecrets = append(cfg.WebhookSecrets, s)
	}
	if len(files) == 0 && c.Command.Name == "serve" {
		return nil, cli.Exit("--stripe-key-file needs --stripe-webhook-secret-file (the endpoint's signing secret, whsec_...)", 2)
	}
	if len(cfg.WebhookSecrets) == 0 {
		cfg.WebhookSecrets = []stripepay.Key{stripepay.NewKey("whsec_unused")} // refunds only
	}
	return stripepay.New(cfg)
}

// readKeyFile reads a key from a file that only its owner may read; the
// key must start with prefix. Errors never show the key.
func readKeyFile(path, prefix string) (stripepay.Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stripepay.Key{}, fmt.Errorf("key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return stripepay.Key{}, fmt.Errorf("key file %s is readable by others: chmod 600 %s", path, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return stripepay.Key{}, fmt.Errorf("key file: %w", err)
	}
	defer clear(b)
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, prefix) && !strings.HasPrefix(s, strings.Replace(prefix, "sk_", "rk_", 1)) {
		return stripepay.Key{}, fmt.Errorf("key file %s does not hold a %s... key", path, prefix)
	}
	return stripepay.NewKey(s), nil
}

// testPayments is the local test payment provider of --test-payments.
type testPayments struct {
	payments *api.Payments
	stop     func()
}

// startTestPayments serves the test provider's pages (package checkout)
// over HTTPS on listen, with the API's certificate, and sends each payment
// as a webhook signed with a secret made for this run (package paytest) to
// the API at apiAddr, trusting the local CA.
func startTestPayments(ctx context.Context, listen string, apiAddr net.Addr, tc *tls.Config, ca *x509.CertPool, log *slog.Logger) (*testPayments, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := payment.NewSecret(raw)
	clear(raw)
	port := apiAddr.(*net.TCPAddr).Port
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS13}}
	payer := &paytest.Provider{Secret: secret, URL: fmt.Sprintf("https://127.0.0.1:%d/v1/payments/webhook", port),
		Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	notify := func(ctx context.Context, ev payment.Event) error {
		status, err := payer.Deliver(ctx, ev)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("test payments: webhook answered %d", status)
		}
		return nil
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("test payments: listen: %w", err)
	}
	origin := fmt.Sprintf("https://127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port)
	prov := checkout.New(origin+"/checkout/", notify, log)
	mux := http.NewServeMux()
	mux.Handle("/checkout/", prov)
	ptc := tc.Clone()
	ptc.ClientAuth, ptc.ClientCAs = tls.NoClientCert, nil
	hs := &http.Server{Handler: mux, TLSConfig: ptc, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("test payments: serve", "err", err)
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		<-done
		tr.CloseIdleConnections()
	}
	return &testPayments{
		payments: &api.Payments{Provider: "paytest", Secrets: []payment.Secret{secret}, TopUps: prov, AutoTopUps: prov, Origin: origin},
		stop:     stop,
	}, nil
}

// serverTLS loads --tls-cert/--tls-key, or the local CA's server
// certificate, made on first use and announced with the CA's path; it
// returns the local CA's pool too (nil with --tls-cert).
func serverTLS(c *cli.Context, dataDir string) (*tls.Config, *x509.CertPool, error) {
	var clientCAs *x509.CertPool
	if path := c.String("client-ca"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("client CA: %w", err)
		}
		clientCAs = x509.NewCertPool()
		if !clientCAs.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("client CA %s holds no PEM certificate", path)
		}
	}
	if certFile := c.String("tls-cert"); certFile != "" || c.String("tls-key") != "" {
		cert, err := tls.LoadX509KeyPair(certFile, c.String("tls-key"))
		if err != nil {
			return nil, nil, fmt.Errorf("TLS certificate: %w (give both --tls-cert and --tls-key)", err)
		}
		return api.TLSConfig(cert, clientCAs), nil, nil
	}
	dir := filepath.Join(dataDir, "tls")
	ca, created, err := tlsca.Ensure(dir, c.StringSlice("host"))
	if err != nil {
		return nil, nil, err
	}
	if created {
		fmt.Fprintf(c.App.ErrWriter, "loopcard: no --tls-cert given: made a local CA and server certificate; clients trust %s\n",
			filepath.Join(dir, tlsca.CAFile))
	} else {
		fmt.Fprintf(c.App.ErrWriter, "loopcard: local CA: %s\n", filepath.Join(dir, tlsca.CAFile))
	}
	cert, err := ca.ServerCertificate()
	if err != nil {
		return nil, nil, err
	}
	if clientCAs == nil {
		clientCAs = ca.Pool()
	}
	return api.TLSConfig(cert, clientCAs), ca.Pool(), nil
}
