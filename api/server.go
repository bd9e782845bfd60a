package api

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/loopcard/loopcard/api/internal/connlimit"
	"github.com/loopcard/loopcard/api/internal/metrics"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize/batch"
)

// HSM is what the API asks of the HSM (keys.HSM satisfies it).
type HSM interface {
	EventDebitKey(ctx context.Context, l keys.Label, org int64, event string) (keyderiv.AESKey, keys.Label, error)
	Diversify(ctx context.Context, l keys.Label, m []byte) (keyderiv.AESKey, keys.Label, error)
	VerifyPIN(ctx context.Context, cardID []byte, p keys.PIN, want keys.PVV) error
	Seal(ctx context.Context, plaintext, aad []byte) (*keys.Envelope, error)
	Unseal(ctx context.Context, env *keys.Envelope, aad []byte) ([]byte, error)
	EmailMAC(ctx context.Context, msg []byte) (version int, mac []byte, err error)
}

// Limits bound what one client may ask of the server.
type Limits struct {
	// MaxBody is the largest request body in bytes; 0 means 64 KiB.
	MaxBody int64
	// MaxBatchBody is the largest terminal batch upload; 0 means 4 MiB.
	MaxBatchBody int64
	// MaxAnonymousBody is the largest body of a request without
	// credentials (enrolment, login, the payment webhook); 0 means 8 KiB.
	// No body is read before its sender is authenticated.
	MaxAnonymousBody int64
	// PerIP and PerClient are sustained requests per second, with bursts
	// of twice as many; 0 means 200 per IP and 50 per client, negative
	// means no limit. PerIP counts an IPv6 address by its /64 network.
	PerIP, PerClient float64
	// Anonymous is the budget of all anonymous requests together, in
	// requests per second with bursts of AnonymousBurst: requests without
	// a staff token or a terminal's signature (card pages, card token and
	// PIN lookups, the payment webhook, claims, logins, enrolments). Once
	// it is spent they are refused with 429 before any database work or
	// body read, while staff, stores, terminals and /healthz go on. 0
	// means 500/s, negative means no budget; AnonymousBurst 0 means twice
	// the rate.
	Anonymous      float64
	AnonymousBurst int
	// FailedCredentials is the budget of staff tokens and terminal
	// signatures that fail (unknown, revoked, expired, a bad signature),
	// in failures per second with bursts of FailedCredentialsBurst. A
	// failure takes a token; for 10 minutes after, a credential from the
	// failure's address, and every credential while the budget is spent,
	// takes one before it is looked up, unless it authenticated in that
	// time (a terminal: from the same address), and is refused with 429
	// when none is left. 0 means 10/s, negative means no budget;
	// FailedCredentialsBurst 0 means 10 times the rate.
	FailedCredentials      float64
	FailedCredentialsBurst int
	// RequestTimeout bounds the work on one request; 0 means 10 s.
	RequestTimeout time.Duration
	// SignatureMaxAge is how old a terminal's signature may be; 0 means 60 s.
	SignatureMaxAge time.Duration
	// SessionKeyTTL is how long a terminal session key is valid; 0 means 12 h.
	SessionKeyTTL time.Duration
	// CreditKeyTTL is how long a per-card credit key is valid; 0 means 60 s.
	CreditKeyTTL time.Duration
	// PasswordMemory (KiB) and PasswordTime are the argon2id cost of
	// profile passwords; 0 means 19 MiB and 2 passes (OWASP).
	PasswordMemory, PasswordTime uint32
	// PINFailureAlert is how many cards with a PIN failure from one client
	// within 10 minutes raise an alert; 0 means 5.
	PINFailureAlert int
	// MaxConnsPerAddr and MaxConns cap the connections Serve holds open
	// at once from one IP address and in total: a connection over a cap
	// is closed as soon as it is accepted. 0 means 256 and 4096,
	// negative means no cap.
	MaxConnsPerAddr, MaxConns int
	// ReplacementWindow is how long a replaced card's hold waits for the
	// terminals to sync past its block before the rest moves to the new
	// card anyway; 0 means ledger.DefaultReplacementWindow.
	ReplacementWindow time.Duration
}

func (l *Limits) defaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxBody, 64<<10)
	def(&l.MaxBatchBody, 4<<20)
	def(&l.MaxAnonymousBody, 8<<10)
	if l.PerIP == 0 {
		l.PerIP = 200
	}
	if l.PerClient == 0 {
		l.PerClient = 50
	}
	if l.Anonymous == 0 {
		l.Anonymous = 500
	}
	if l.AnonymousBurst <= 0 {
		l.AnonymousBurst = max(1, int(math.Ceil(2*l.Anonymous)))
	}
	if l.FailedCredentials == 0 {
		l.FailedCredentials = 10
	}
	if l.FailedCredentialsBurst <= 0 {
		l.FailedCredentialsBurst = max(1, int(math.Ceil(10*l.FailedCredentials)))
	}
	durDef := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	durDef(&l.RequestTimeout, 10*time.Second)
	durDef(&l.SignatureMaxAge, 60*time.Second)
	durDef(&l.SessionKeyTTL, 12*time.Hour)
	durDef(&l.CreditKeyTTL, 60*time.Second)
	durDef(&l.ReplacementWindow, ledger.DefaultReplacementWindow)
	if l.PasswordMemory == 0 {
		l.PasswordMemory = 19 * 1024
	}
	if l.PasswordTime == 0 {
		l.PasswordTime = 2
	}
	if l.PINFailureAlert == 0 {
		l.PINFailureAlert = 5
	}
	if l.MaxConnsPerAddr == 0 {
		l.MaxConnsPerAddr = 256
	}
	if l.MaxConns == 0 {
		l.MaxConns = 4096
	}
}

// Config is what a Server needs.
type Config struct {
	Ledger  *ledger.Ledger
	Batches *batch.Batches
	// Pool is the database of the API's own api_* tables and of the
	// custody log (handoverdb); nil means the ledger's pool. The API runs
	// SQL on no other table: it asks Ledger and Batches.
	Pool *pgxpool.Pool
	HSM  HSM
	// HQSign is hq-sign (Ed25519), which signs the custody log's
	// checkpoints and HQ's entries; nil leaves the custody routes
	// answering 503.
	HQSign crypto.Signer
	// Logger receives access logs, errors and alerts; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Limits Limits
	// RollUpEvery is how often Serve rolls up the dashboard's totals
	// (ledger.RollUp); 0 means ledger.DefaultRollUpEvery, a negative value
	// never (the figures stay exact; the dashboard adds more rows).
	RollUpEvery time.Duration
	// Payments are online top-ups through a payment provider; nil means
	// none (the card pages say so, the webhook route answers 404).
	Payments *Payments
}

// Payments configures online top-ups: the card pages start them with
// TopUps, the provider announces each payment as a signed webhook
// (package payment) to POST /v1/payments/webhook, and the ledger records it
// as a pending load once per event id.
type Payments struct {
	// Provider is the provider's name in the ledger (a-z 0-9 . _ -).
	Provider string
	// Secrets verify the webhooks' signatures; more than one while the
	// provider rotates its secret. At least one is required.
	Secrets []payment.Secret
	// Tolerance is how far a webhook's timestamp may be from now; 0 means
	// payment.DefaultTolerance.
	Tolerance time.Duration
	// TopUps starts a top-up on the provider's page (checkout.Provider,
	// the local test provider, is one); nil: the pages offer no top-up,
	// webhooks are still received.
	TopUps TopUpStarter
	// Webhooks reads a provider's own signed deliveries (stripepay.Provider
	// reads Stripe's); nil means the Loopcard scheme of package payment,
	// verified with Secrets.
	Webhooks WebhookParser
	// ProcessingTTL is how long a payment may stay processing before it is
	// abandoned (ledger.ExpireProcessing); 0 means DefaultProcessingTTL.
	ProcessingTTL time.Duration
	// AutoTopUps saves cardholders' payment methods and charges them
	// off-session (stripepay.Provider, or the local test provider); nil:
	// no auto top-up.
	AutoTopUps AutoTopUpProvider
	// AutoTopUpWait bounds how long a tap that triggered an auto top-up
	// waits for the provider's answer before it answers without the load
	// (which the next online tap writes); 0 means DefaultAutoTopUpWait,
	// negative never waits.
	AutoTopUpWait time.Duration
	// Origin is where the provider's pages are ("https://pay.example"),
	// which the card pages' forms may post to; empty when they are on
	// this server.
	Origin string
}

// WebhookParser verifies a provider's webhook delivery and translates its
// event. Its errors wrap payment.ErrNoSignature, payment.ErrTimestamp,
// payment.ErrSignature or payment.ErrEvent.
type WebhookParser interface {
	Parse(h http.Header, body []byte, now time.Time) (payment.Event, error)
}

// AutoTopUpProvider saves a card's payment method at the provider (its
// page, returning the customer it is saved for) and charges it
// off-session. Charge's errors mean no answer: the charge is sent again,
// with the same id, at a later tap.
type AutoTopUpProvider interface {
	SaveMethod(ctx context.Context, org int64, card, customer, returnURL string) (page, customerOut string, err error)
	Charge(ctx context.Context, c payment.Charge) (payment.ChargeResult, error)
}

// DefaultAutoTopUpWait is how long a tap waits for an auto top-up's
// charge: a card charge answers within a second or two.
const DefaultAutoTopUpWait = 3 * time.Second

// DefaultProcessingTTL is how long a payment may stay processing: the
// provider's checkout lasts at most a day, and a method that confirms
// later does within two.
const DefaultProcessingTTL = 72 * time.Hour

func (p *Payments) validate() error {
	if !terminaltx.ValidID(p.Provider) {
		return fmt.Errorf("api: payments: provider name %q (a-z 0-9 . _ -)", p.Provider)
	}
	if len(p.Secrets) == 0 && p.Webhooks == nil {
		return errors.New("api: payments: a webhook secret is required")
	}
	if p.Tolerance < 0 || p.ProcessingTTL < 0 {
		return errors.New("api: payments: negative tolerance")
	}
	return nil
}

// Server is the API. Create it with New; it is an http.Handler.
type Server struct {
	ledger  *ledger.Ledger
	batches *batch.Batches
	pool    *pgxpool.Pool
	hsm     HSM
	hqSign  crypto.Signer
	log     *slog.Logger
	now     func() time.Time
	// rollUpEvery: Config.RollUpEvery.
	rollUpEvery time.Duration
	limits      Limits
	metrics     *metrics.Registry
	ipLimit     *limiter
	clLimit     *limiter
	// anonymous is the budget of all anonymous requests; nil: none.
	anonymous *rate.Limiter
	// creds remembers failed and recently good credentials, and budgets
	// failures (admission).
	creds   *credGuard
	pinWarn *pinWatch
	cards   cardCache
	// payments is nil without online top-ups.
	payments *Payments
	// charges are the auto top-up charges running past their tap.
	charges sync.WaitGroup

	dummyOnce sync.Once
	dummy     string

	blocklist blocklists

	alertMu sync.Mutex
	alerted map[string]time.Time
	mux     *http.ServeMux
	handler http.Handler
	routes  []route

	dbState // the database's role and last write, for /healthz (failover.go)
}

// New returns a Server. Ledger, Batches and HSM are required.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil || cfg.Batches == nil || cfg.HSM == nil {
		return nil, errors.New("api: Ledger, Batches and HSM are required")
	}
	if cfg.Payments != nil {
		if err := cfg.Payments.validate(); err != nil {
			return nil, err
		}
	}
	s := &Server{
		ledger:      cfg.Ledger,
		batches:     cfg.Batches,
		pool:        cfg.Pool,
		hsm:         cfg.HSM,
		hqSign:      cfg.HQSign,
		log:         cfg.Logger,
		now:         cfg.Now,
		rollUpEvery: cfg.RollUpEvery,
		limits:      cfg.Limits,
		alerted:     map[string]time.Time{},
	}
	if cfg.Payments != nil {
		p := *cfg.Payments
		p.Secrets = slices.Clone(p.Secrets)
		s.payments = &p
	}
	if s.pool == nil {
		s.pool = cfg.Ledger.Pool()
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limits.defaults()
	s.ipLimit = newLimiter(s.limits.PerIP, s.now)
	s.clLimit = newLimiter(s.limits.PerClient, s.now)
	if s.limits.Anonymous > 0 {
		s.anonymous = rate.NewLimiter(rate.Limit(s.limits.Anonymous), s.limits.AnonymousBurst)
	}
	s.creds = newCredGuard(s.now)
	if s.limits.FailedCredentials > 0 {
		s.creds.budget = rate.NewLimiter(rate.Limit(s.limits.FailedCredentials), s.limits.FailedCredentialsBurst)
	}
	s.pinWarn = newPINWatch(s.limits.PINFailureAlert, 10*time.Minute)
	s.routes = s.table()
	patterns := []string{cardPageRoute, consoleRoute}
	for _, rt := range s.routes {
		patterns = append(patterns, rt.pattern())
	}
	s.metrics = metrics.New(patterns...)
	s.mux = http.NewServeMux()
	for i := range s.routes {
		rt := &s.routes[i]
		s.mux.Handle(rt.pattern(), s.chain(rt))
	}
	s.mux.Handle("/", s.chain(&route{method: "", path: "/", roles: roles(RolePublic), h: func(*call) error {
		return errNotFound
	}}))
	s.handler = s.outer(s.mux)
	h, err := s.withCardPages(s.handler)
	if err != nil {
		return nil, err
	}
	if h, err = s.withConsole(h); err != nil {
		return nil, err
	}
	s.handler = h
	return s, nil
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// TLSConfig is the server side of TLS 1.3 for cert; clientCAs, when not
// nil, verifies the client certificates terminals may present.
func TLSConfig(cert tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c
}

// HTTP/2 limits of HTTPServer: streams open at once on one connection, and
// the flow-control windows, which bound what a client may have sent that
// the server has not read yet.
const (
	h2MaxStreams        = 100
	h2MaxRecvBufPerConn = 1 << 20
	h2MaxRecvBufPerReq  = 256 << 10
)

// HTTPServer returns the http.Server of the API with a timeout on every
// stage of a request (the TLS handshake included: it gets the shortest,
// ReadHeaderTimeout), and HTTP/2 stream and buffer limits. IdleTimeout
// closes idle HTTP/1.1 and HTTP/2 connections alike. The connection caps
// of Limits are Serve's, on its listener (Listener).
func (s *Server) HTTPServer(tc *tls.Config) *http.Server {
	return &http.Server{
		Handler:           s,
		TLSConfig:         tc,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          h2MaxStreams,
			MaxReceiveBufferPerConnection: h2MaxRecvBufPerConn,
			MaxReceiveBufferPerStream:     h2MaxRecvBufPerReq,
			PingTimeout:                   15 * time.Second,
			WriteByteTimeout:              30 * time.Second,
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Listener wraps ln with the connection caps of Limits (MaxConnsPerAddr,
// MaxConns): a connection over a cap is closed as soon as it is accepted,
// and counted in the metrics by the cap it reached.
func (s *Server) Listener(ln net.Listener) net.Listener {
	l := connlimit.New(ln, s.limits.MaxConnsPerAddr, s.limits.MaxConns)
	l.OnRefuse = func(why connlimit.Reason) { s.metrics.ConnRefused(string(why)) }
	return l
}

// Serve serves HTTPS on ln with tc (TLS 1.3 is enforced) until ctx ends,
// then shuts down gracefully: it stops accepting, lets requests in flight
// finish for up to grace, and returns. The connection caps of Limits hold
// on ln (Listener).
func (s *Server) Serve(ctx context.Context, ln net.Listener, tc *tls.Config, grace time.Duration) error {
	tc = tc.Clone()
	tc.MinVersion = tls.VersionTLS13
	// Profiles of before email-mac (or of an older version of it) are
	// found once MACed again; without the key, claims and logins fail
	// until `loopcard keys init`, and everything else works.
	if _, err := s.RehashEmails(ctx); errors.Is(err, keys.ErrKeyNotFound) {
		s.log.Warn("no email-mac in the HSM: cardholder claims and logins fail until `loopcard keys init`", "err", err)
	} else if err != nil {
		s.log.Error("api: profiles' emails not MACed again: older profiles are not found until serve restarts", "err", err)
	}
	ln = s.Listener(ln)
	hs := s.HTTPServer(tc)
	stopJanitor := s.startJanitor(ctx)
	defer stopJanitor()
	stopRollUp := s.startRollUp(ctx)
	defer stopRollUp()
	errc := make(chan error, 1)
	go func() { errc <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("api: shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	s.charges.Wait()
	if err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	return nil
}

// startRollUp rolls up the dashboard's totals every Config.RollUpEvery
// (see ledger.RollUp): the console's dashboard then adds only the last
// seconds' rows to them.
func (s *Server) startRollUp(ctx context.Context) func() {
	every := s.rollUpEvery
	if every < 0 {
		return func() {}
	}
	if every == 0 {
		every = ledger.DefaultRollUpEvery
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ledger.RollUpEvery(ctx, every, s.log)
	}()
	return func() { cancel(); <-done }
}

// startJanitor deletes expired nonces and checkouts once a minute, and
// abandons the payments that stayed processing past Payments.ProcessingTTL.
func (s *Server) startJanitor(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := s.pool.Exec(ctx, `DELETE FROM api_nonces WHERE expires_at < $1`, s.now()); err != nil && ctx.Err() == nil {
					s.log.Warn("api: nonce cleanup", "err", err)
				}
				if _, err := s.pool.Exec(ctx, `DELETE FROM api_checkouts WHERE expires_at < $1`, s.now()); err != nil && ctx.Err() == nil {
					s.log.Warn("api: checkout cleanup", "err", err)
				}
				if p := s.payments; p != nil {
					ttl := p.ProcessingTTL
					if ttl == 0 {
						ttl = DefaultProcessingTTL
					}
					if n, err := s.ledger.ExpireProcessing(ctx, ttl); err != nil && ctx.Err() == nil {
						s.log.Warn("api: expire processing payments", "err", err)
					} else if n > 0 {
						s.log.Info("api: payments never confirmed, abandoned", "count", n)
					}
				}
				// A staff session is kept a day after it could last have
				// been used, then removed.
				if _, err := s.pool.Exec(ctx, `DELETE FROM api_staff_sessions WHERE expires_at < $1 OR last_seen_at < $2`,
					s.now().Add(-24*time.Hour), s.now().Add(-24*time.Hour-StaffIdle)); err != nil && ctx.Err() == nil {
					s.log.Warn("api: staff session cleanup", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
