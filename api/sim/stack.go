package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/stack"
	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/api/tlsca"
)

// StackConfig says where the parts of a Stack come from.
type StackConfig struct {
	// DataDir holds the embedded HSM token and database, the CA file and
	// the outputs.
	DataDir string
	// HSMURI is a PKCS#11 URI; empty: the embedded SoftHSM2 token under
	// DataDir.
	HSMURI string
	// DatabaseURL is a PostgreSQL URL; empty: a private PostgreSQL under
	// DataDir, with a fresh database "demo" on every start.
	DatabaseURL string
	// Database is the name of the fresh database made in the embedded
	// cluster; empty means "demo".
	Database string
	// Listen is the API's address; empty: 127.0.0.1 on a free port.
	Listen string
	// Payments enables online top-ups' webhooks (nil: none).
	Payments *api.Payments
	Logger   *slog.Logger
}

// Stack is a whole Loopcard installation in one process: the HSM, the
// ledger on PostgreSQL and the HTTPS API served on loopback. The parts
// (HSM, Pool, Ledger, Batches, Server) are those of package api/stack.
type Stack struct {
	*stack.Stack
	// URL is the API's base URL; CAFile the PEM file clients trust.
	URL    string
	CAFile string
	CAs    *x509.CertPool
	// HTTP is a client that trusts the API.
	HTTP *http.Client
	log  *slog.Logger

	mu      sync.Mutex
	closers []func() error
	tls     *tls.Config
	stop    func() error // stops serving (graceful)
	dataDir string
	stores  map[string]*storeclient.Client
}

func (s *Stack) onClose(f func() error) {
	s.mu.Lock()
	s.closers = append(s.closers, f)
	s.mu.Unlock()
}

// Close stops everything StartStack or AttachStack started, in reverse
// order.
func (s *Stack) Close() error {
	s.mu.Lock()
	cs := s.closers
	s.closers = nil
	s.mu.Unlock()
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		errs = append(errs, cs[i]())
	}
	if s.Stack != nil {
		errs = append(errs, s.Stack.Close())
	}
	return errors.Join(errs...)
}

// open opens the HSM and creates the key hierarchy where missing, then
// opens the database (package api/stack), and makes a client trusting cas.
func (s *Stack) open(ctx context.Context, cfg stack.Config, cas *x509.CertPool) error {
	s.Stack = stack.New(cfg)
	if err := s.OpenHSM(); err != nil {
		return err
	}
	if _, err := s.HSM.Init(ctx); err != nil {
		return fmt.Errorf("sim: key ceremony: %w", err)
	}
	if err := s.OpenDatabase(ctx); err != nil {
		return err
	}
	s.CAs = cas
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cas, MinVersion: tls.VersionTLS13}, MaxIdleConnsPerHost: 64}
	s.onClose(func() error { tr.CloseIdleConnections(); return nil })
	s.HTTP = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return nil
}

// StartStack opens the HSM and creates the key hierarchy where missing,
// opens (or starts) PostgreSQL and migrates it, and serves the API on
// loopback with a certificate of the local CA under DataDir/tls (api/tlsca).
func StartStack(ctx context.Context, cfg StackConfig) (_ *Stack, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Database == "" {
		cfg.Database = "demo"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("sim: data directory: %w", err)
	}
	s := &Stack{log: cfg.Logger, dataDir: cfg.DataDir}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	ca, _, err := tlsca.Ensure(filepath.Join(cfg.DataDir, "tls"), nil)
	if err != nil {
		return nil, err
	}
	s.CAFile = filepath.Join(ca.Dir, tlsca.CAFile)
	cert, err := ca.ServerCertificate()
	if err != nil {
		return nil, err
	}
	pool := ca.Pool()
	if err := s.open(ctx, stack.Config{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL,
		Database: cfg.Database, FreshDatabase: true, Logger: cfg.Logger}, pool); err != nil {
		return nil, err
	}
	if err := s.NewServer(ctx, api.Config{Limits: api.Limits{PerIP: -1, PerClient: -1, Anonymous: -1}, Payments: cfg.Payments}); err != nil {
		return nil, err
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("sim: listen: %w", err)
	}
	s.tls = api.TLSConfig(cert, nil)
	s.serve(ctx, ln)
	s.onClose(func() error { return s.stopServing() })
	// Closed first: the server's graceful shutdown waits for the client's
	// idle HTTP/2 connections.
	s.onClose(func() error { s.HTTP.Transport.(*http.Transport).CloseIdleConnections(); return nil })
	s.URL = "https://" + ln.Addr().String()
	return s, nil
}

// StaffToken issues a staff token (HQ, a store's, or an auditor's).
func (s *Stack) StaffToken(ctx context.Context, org int64, role api.Role, store string) (string, error) {
	tok, err := api.IssueToken(ctx, s.Pool, api.TokenRequest{Org: org, Role: role, Store: store, TTL: 2 * time.Hour}, time.Now())
	if err != nil {
		return "", err
	}
	return tok.Reveal(), nil
}

// TerminalConfig is the terminal.Config of a terminal of this stack.
func (s *Stack) TerminalConfig(dir, event, merchant string) terminal.Config {
	return terminal.Config{StateDir: dir, URL: s.URL, HTTP: s.HTTP, Event: event, Merchant: merchant, Logger: s.log}
}

// AddTerminal registers terminal id of cfg's merchant and event through
// the HQ API (with hqToken) and enrols it into dir, then opens it and
// fetches its session key.
func (s *Stack) AddTerminal(ctx context.Context, hqToken string, org int64, id string, cfg terminal.Config) (*terminal.Terminal, error) {
	tok, err := CreateTerminal(ctx, s.HTTP, s.URL, hqToken, id, cfg.Merchant, cfg.Event)
	if err != nil {
		return nil, err
	}
	if err := terminal.Enrol(ctx, cfg, org, id, tok); err != nil {
		return nil, err
	}
	t, err := terminal.Open(cfg)
	if err != nil {
		return nil, err
	}
	if err := t.RenewSessionKey(ctx); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// AttachConfig names a running installation: the HSM and database that
// `loopcard serve` uses, and the API's URL and CA file.
type AttachConfig struct {
	DataDir     string
	HSMURI      string // empty: the embedded SoftHSM2 token under DataDir
	DatabaseURL string // empty: the embedded cluster under DataDir, database "loopcard"
	URL         string
	CAFile      string
	Logger      *slog.Logger
}

// AttachStack opens the HSM and the database of a running server at URL
// (for set-up that has no API: organizer, event, card batches) and a client
// that trusts CAFile. Server is nil.
func AttachStack(ctx context.Context, cfg AttachConfig) (_ *Stack, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stack{log: cfg.Logger, URL: strings.TrimSuffix(cfg.URL, "/"), CAFile: cfg.CAFile, dataDir: cfg.DataDir}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("sim: CA file: %w", err)
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("sim: %s holds no PEM certificate", cfg.CAFile)
	}
	if err := s.open(ctx, stack.Config{DataDir: cfg.DataDir, HSMURI: cfg.HSMURI, DatabaseURL: cfg.DatabaseURL, Logger: cfg.Logger}, cas); err != nil {
		return nil, err
	}
	return s, nil
}

// serve serves the API on ln until stopServing.
func (s *Stack) serve(ctx context.Context, ln net.Listener) {
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	srv := s.Server
	go func() { done <- srv.Serve(sctx, ln, s.tls, 5*time.Second) }()
	s.mu.Lock()
	s.stop = func() error { stop(); return <-done }
	s.mu.Unlock()
}

func (s *Stack) stopServing() error {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop == nil {
		return nil
	}
	return stop()
}

// RestartServer stops serving the API (gracefully: requests in flight are
// answered), makes a new api.Server with cfg on the stack's HSM and
// database, and serves it on the same address: what clients see while a
// new binary is rolled over the API (an upgrade during the event). It is
// for StartStack's stacks only.
func (s *Stack) RestartServer(ctx context.Context, cfg api.Config) error {
	if err := s.stopServing(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sim: stop serving: %w", err)
	}
	if err := s.NewServer(ctx, cfg); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(s.URL, "https://"))
	if err != nil {
		return fmt.Errorf("sim: listen again: %w", err)
	}
	s.serve(ctx, ln)
	return nil
}
