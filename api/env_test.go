package api_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/cardpage/checkout"
	"github.com/loopcard/loopcard/api/httpsig"
	"github.com/loopcard/loopcard/api/tlsca"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/paytest"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/softhsm"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const org = 1

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	templateOnce sync.Once
	templateErr  error
	databases    atomic.Int64
)

// newDatabase returns the URL of a fresh database for t, copied from a
// template migrated once per test binary: migrating takes seconds, copying
// a fraction of one. It is dropped when t ends.
func newDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	cl := pgtest.Cluster(t)
	templateOnce.Do(func() {
		templateErr = func() error {
			admin, err := pgxpool.New(ctx, cl.URL("postgres"))
			if err != nil {
				return err
			}
			defer admin.Close()
			if _, err := admin.Exec(ctx, `CREATE DATABASE api_template`); err != nil {
				return err
			}
			pool, err := pgxpool.New(ctx, cl.URL("api_template"))
			if err != nil {
				return err
			}
			defer pool.Close()
			return ledger.Migrate(ctx, pool)
		}()
	})
	require.NoError(t, templateErr)
	name := fmt.Sprintf("api_test_%d", databases.Add(1))
	admin, err := pgxpool.New(ctx, cl.URL("postgres"))
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE api_template`)
	require.NoError(t, err)
	t.Cleanup(func() {
		admin, err := pgxpool.New(ctx, cl.URL("postgres"))
		require.NoError(t, err)
		defer admin.Close()
		_, err = admin.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`)
		require.NoError(t, err)
	})
	return cl.URL(name)
}

// env is a running API over real HTTPS, PostgreSQL and SoftHSM2.
type env struct {
	t      *testing.T
	url    string
	client *http.Client
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
	// consoleTerms are consoleEvent's terminals.
	consoleTerms []*terminal
	hsm          *keys.HSM
	srv          *api.Server
	clock        *clock
	logs         *logBuffer
	ca           *tlsca.CA
	cards        []testCard
	batch        int64 // the batch of the cards
	// tokens by role name: hq, store (store-a), store-b, auditor.
	tokens map[string]string
	// shutdown stops the server gracefully and returns Serve's error.
	shutdown func() error
	// payer is the test payment provider delivering signed webhooks to
	// the API; checkout its pages, served by provider on their own origin.
	payer    *paytest.Provider
	checkout *checkout.Provider
	provider *httptest.Server
}

// testCard is a personalized card with its secrets, as printed on its label.
type testCard struct {
	uid   []byte
	token string // base64url QR token
	pin   string
}

func (c testCard) hex() string { return terminaltx.CardHex(c.uid) }

type envOptions struct {
	limits api.Limits
	cards  int
	// payments replaces the test payment provider (Stripe on stripe-mock).
	payments *api.Payments
	// noRollUp keeps Serve from rolling up the dashboard's totals, for
	// tests that count the pool's acquisitions.
	noRollUp bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	uri := softhsm.NewTestToken(t)
	h, err := keys.Open(uri, keys.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	_, err = h.Init(ctx)
	require.NoError(t, err)

	pool, err := pgxpool.New(ctx, newDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	clk := &clock{t: time.Now().Truncate(time.Second)}
	l := ledger.New(pool, ledger.Options{Now: clk.Now, Sealer: h})
	bs := batch.NewBatches(pool)

	logs := &logBuffer{}
	if o.limits.PerIP == 0 {
		o.limits.PerIP = -1
	}
	if o.limits.PerClient == 0 {
		o.limits.PerClient = -1
	}
	if o.limits.Anonymous == 0 {
		o.limits.Anonymous = -1
	}
	if o.limits.FailedCredentials == 0 {
		o.limits.FailedCredentials = -1
	}
	// argon2id at its production cost takes seconds under the race
	// detector; the tests check the scheme, not the cost.
	o.limits.PasswordMemory, o.limits.PasswordTime = 256, 1
	hq, err := h.Signer(ctx, keys.Label{Name: keys.HQSign})
	require.NoError(t, err)

	// The test payment provider: its pages on their own origin, its
	// webhooks signed with a secret the API knows, sent to the API.
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	paySecret := payment.NewSecret(raw[:])
	var payer atomic.Pointer[paytest.Provider] // set when the API's address is known
	var co atomic.Pointer[checkout.Provider]
	provider := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { co.Load().ServeHTTP(w, r) }))
	t.Cleanup(provider.Close)
	co.Store(checkout.New(provider.URL+"/checkout/", func(ctx context.Context, ev payment.Event) error {
		status, err := payer.Load().Deliver(ctx, ev)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("webhook answered %d", status)
		}
		return nil
	}, nil))

	payments := &api.Payments{Provider: "paytest", Secrets: []payment.Secret{paySecret}, TopUps: co.Load(), AutoTopUps: co.Load(), Origin: provider.URL}
	if o.payments != nil {
		payments = o.payments
	}
	rollUp := time.Duration(0)
	if o.noRollUp {
		rollUp = -1
	}
	srv, err := api.New(api.Config{Ledger: l, Batches: bs, HSM: h, HQSign: hq, Now: clk.Now, Limits: o.limits, RollUpEvery: rollUp,
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Payments: payments})
	require.NoError(t, err)

	ca, _, err := tlsca.Ensure(t.TempDir(), nil)
	require.NoError(t, err)
	cert, err := ca.ServerCertificate()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln, api.TLSConfig(cert, ca.Pool()), 5*time.Second) }()
	var once sync.Once
	var serveErr error
	shutdown := func() error {
		once.Do(func() { stop(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { require.NoError(t, shutdown()) })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}}
	t.Cleanup(tr.CloseIdleConnections)

	e := &env{t: t, url: "https://" + ln.Addr().String(), client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		pool: pool, ledger: l, hsm: h, srv: srv, clock: clk, logs: logs, ca: ca, tokens: map[string]string{}, shutdown: shutdown,
		checkout: co.Load(), provider: provider}
	e.payer = &paytest.Provider{Secret: paySecret, Now: clk.Now, URL: e.url + "/v1/payments/webhook", Client: e.client}
	payer.Store(e.payer)
	e.seed(o.cards)
	return e
}

// seed makes organizer 1 with an event, a merchant, two stores, staff
// tokens and personalized cards registered in the ledger with 10.00 each.
func (e *env) seed(n int) {
	t, ctx := e.t, context.Background()
	require.NoError(t, e.ledger.CreateOrganizer(ctx, org, "Fest Org"))
	require.NoError(t, e.ledger.AddEvent(ctx, org, "fest", "Fest", time.Time{}))
	require.NoError(t, e.ledger.AddMerchant(ctx, org, "bar", "Bar"))
	for _, s := range []string{"store-a", "store-b"} {
		require.NoError(t, e.ledger.AddStore(ctx, org, s, s))
	}
	for name, req := range map[string]api.TokenRequest{
		"hq":      {Org: org, Role: api.RoleHQ, TTL: time.Hour},
		"store":   {Org: org, Role: api.RoleStore, Store: "store-a", TTL: time.Hour},
		"store-b": {Org: org, Role: api.RoleStore, Store: "store-b", TTL: time.Hour},
		"auditor": {Org: org, Role: api.RoleAuditor, TTL: time.Hour},
	} {
		tok, err := api.IssueToken(ctx, e.pool, req, e.clock.Now())
		require.NoError(t, err)
		e.tokens[name] = tok.Reveal()
	}
	if n == 0 {
		n = 3
	}
	bs := batch.NewBatches(e.pool)
	b, err := bs.Create(ctx, org, "fest", n, personalize.DefaultLayout())
	require.NoError(t, err)
	e.batch = b.No
	var uids [][]byte
	for i := 0; i < n; i++ {
		uid := []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, byte(i >> 8), byte(i)}
		raw := make([]byte, 16)
		_, _ = rand.Read(raw)
		pin, err := e.hsm.NewPIN(ctx)
		require.NoError(t, err)
		pvv, err := e.hsm.PINVerificationValue(ctx, uid, pin)
		require.NoError(t, err)
		th := sha256.Sum256(raw)
		res, err := bs.Reserve(ctx, org, b.No, uid)
		require.NoError(t, err)
		_, err = bs.Finish(ctx, org, b.No, res.Slot, uid, batch.Finished{KeyVersions: map[string]int{"app-debit": 1},
			TokenHash: th[:], PVV: pvv.MAC, PVVKeyVersion: pvv.KeyVersion})
		require.NoError(t, err)
		e.cards = append(e.cards, testCard{uid: uid, token: base64.RawURLEncoding.EncodeToString(raw), pin: pin.Reveal()})
		uids = append(uids, uid)
	}
	require.NoError(t, e.ledger.RegisterCards(ctx, org, "fest", uids))
	for _, c := range e.cards {
		id, err := e.ledger.TopUpCash(ctx, org, ledger.CashTopUp{Store: "store-a", Card: c.uid, Amount: 1000})
		require.NoError(t, err)
		require.NoError(t, e.ledger.LoadPending(ctx, org, c.uid, id, nil))
	}
}

// claimBody and loginBody are apitype.ClaimRequest and
// apitype.LoginRequest as a client sends them (an apitype.Secret does not
// encode).
type claimBody struct {
	Email    string          `json:"email"`
	Password string          `json:"password"`
	Consent  apitype.Consent `json:"consent"`
}

type loginBody struct {
	Org      int64  `json:"org"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// request is one API call.
type request struct {
	method, path string
	body         any    // marshalled to JSON unless []byte or nil
	bearer       string // Authorization: Bearer
	card         string // Authorization: Card
	pin          string
	terminal     *terminal // signs the request
	session      string    // Loopcard-Session-Key
	header       map[string]string
	idem         string // Idempotency-Key
}

// newIdem is a fresh idempotency key.
func newIdem() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return txid.ID(b).String()
}

type response struct {
	status int
	body   []byte
	header http.Header
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

func (e *env) newRequest(r request) (*http.Request, []byte) {
	t := e.t
	var body []byte
	switch b := r.body.(type) {
	case nil:
	case []byte:
		body = b
	default:
		var err error
		body, err = json.Marshal(b)
		require.NoError(t, err)
	}
	req, err := http.NewRequest(r.method, e.url+r.path, bytes.NewReader(body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.card != "" {
		req.Header.Set("Authorization", "Card "+r.card)
	}
	if r.pin != "" {
		req.Header.Set(apitype.HeaderPIN, r.pin)
	}
	if r.session != "" {
		req.Header.Set(apitype.HeaderSessionKey, r.session)
	}
	if r.idem != "" {
		req.Header.Set(apitype.HeaderIdempotencyKey, r.idem)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.terminal != nil {
		require.NoError(t, r.terminal.signer.Sign(req, body))
	}
	return req, body
}

func (e *env) do(r request) response {
	e.t.Helper()
	req, _ := e.newRequest(r)
	return e.send(req)
}

func (e *env) send(req *http.Request) response {
	e.t.Helper()
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return response{status: resp.StatusCode, body: b, header: resp.Header}
}

// terminal is a test terminal with its keys.
type terminal struct {
	id      string
	signKey ed25519.PrivateKey
	kexKey  *ecdh.PrivateKey
	signer  *httpsig.Signer
	seq     int64
}

// enrolTerminal registers a terminal through HQ and enrols it.
func (e *env) enrolTerminal(id string) *terminal {
	t := e.t
	r := e.do(request{method: "POST", path: "/v1/hq/terminals", bearer: e.tokens["hq"],
		body: apitype.TerminalRequest{Terminal: id, Merchant: "bar"}})
	require.Equal(t, 201, r.status, string(r.body))
	var tr apitype.TerminalResponse
	r.json(t, &tr)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	kex, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	r = e.do(request{method: "POST", path: "/v1/terminals/enrol", body: apitype.EnrolRequest{Org: org, Terminal: id,
		Token: tr.EnrolmentToken, SigningKey: pub, KexAlg: "x25519", KexKey: kex.PublicKey().Bytes()}})
	require.Equal(t, 201, r.status, string(r.body))
	var er apitype.EnrolResponse
	r.json(t, &er)
	require.NotEmpty(t, er.HQKey, "the answer gives hq-sign's public key to pin")
	er.HQKey = nil
	require.Equal(t, apitype.EnrolResponse{KeyID: api.KeyID(org, id), Organizer: org, Merchant: "bar", Event: "fest"}, er,
		"the answer fixes the terminal's identity")
	s := httpsig.NewSigner(priv, er.KeyID)
	s.Now = e.clock.Now
	return &terminal{id: id, signKey: priv, kexKey: kex, signer: s}
}

// sessionKey fetches a session key for the event and returns its id.
func (e *env) sessionKey(term *terminal) apitype.SessionKeyResponse {
	r := e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: term, body: apitype.SessionKeyRequest{Event: "fest"}})
	require.Equal(e.t, 201, r.status, string(r.body))
	var sk apitype.SessionKeyResponse
	r.json(e.t, &sk)
	return sk
}

// debit makes a signed debit of card by term.
func (e *env) debit(term *terminal, card testCard, cardSeq uint32, before, amount int64) []byte {
	term.seq++
	var rnd [10]byte
	_, _ = rand.Read(rnd[:])
	tx := &terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(e.clock.Now(), rnd[:]), Organizer: org,
		Terminal: term.id, TerminalSeq: term.seq, Card: card.uid, CardSeq: cardSeq, Amount: amount,
		BalanceBefore: before, BalanceAfter: before - amount, Merchant: "bar", Time: e.clock.Now()}
	s, err := terminaltx.Sign(tx, term.signKey)
	require.NoError(e.t, err)
	return s.Bytes()
}

// stock counts every card of env's batch into store's stock, as a receipt
// in the custody log does: the store may sell them (issue 17, M3).
func (e *env) stock(store string) {
	require.NoError(e.t, e.ledger.ReceiveCards(context.Background(), org, store, e.batch, len(e.cards)))
}

// cloneDebits is terminal-signed clone evidence on card c: two debits of
// the card with the one card sequence seq, uploaded together; the second
// is held as a clone and blocks the card (if active).
func (e *env) cloneDebits(term *terminal, c testCard, seq uint32) {
	bal := e.balance(c)
	a := e.debit(term, c, seq, bal, 1)
	b := e.debit(term, c, seq, bal, 2)
	res, err := e.ledger.Upload(context.Background(), org, [][]byte{a, b})
	require.NoError(e.t, err)
	require.Equal(e.t, ledger.Held, res[1].Status)
	require.Equal(e.t, ledger.ReasonClone, res[1].Reason)
}

// fingerprint summarises everything a request could change.
func (e *env) fingerprint() string {
	t := e.t
	var parts []string
	for _, q := range []string{
		`SELECT count(*)::text FROM journal`,
		`SELECT coalesce(sum(abs(balance)), 0)::text FROM accounts`,
		`SELECT count(*)::text FROM terminal_txs`,
		`SELECT count(*)::text FROM menus`,
		`SELECT count(*)::text FROM terminal_tx_items`,
		`SELECT count(*)::text FROM topups`,
		`SELECT string_agg(terminal_id || status, ',' ORDER BY terminal_id) FROM terminals`,
		`SELECT count(*)::text FROM stores`,
		`SELECT count(*)::text FROM api_session_keys`,
		`SELECT count(*)::text || '/' || count(revoked_at)::text FROM api_session_keys`,
		`SELECT count(*)::text FROM api_profiles`,
		`SELECT count(*)::text FROM api_profile_cards`,
		`SELECT count(*)::text FROM api_refund_requests`,
		`SELECT count(*)::text || '/' || count(revoked_at)::text FROM api_tokens`,
		`SELECT count(*)::text FROM api_consents`,
		`SELECT count(*)::text FROM provider_events`,
		`SELECT count(*)::text FROM api_terminal_keys`,
		`SELECT count(*)::text FROM handover_entries`,
		`SELECT count(*)::text FROM store_day_closes`,
		`SELECT count(*)::text FROM handover_checkpoints`,
		`SELECT coalesce(string_agg(status, ',' ORDER BY card_id), '') FROM cards`,
		`SELECT coalesce(max(version), 0)::text FROM card_blocklist_heads`,
		`SELECT count(*)::text FROM card_replacements`,
		`SELECT count(*)::text FROM terminal_refused_taps`,
	} {
		var s *string
		require.NoError(t, e.pool.QueryRow(context.Background(), q).Scan(&s))
		if s == nil {
			parts = append(parts, "null")
		} else {
			parts = append(parts, *s)
		}
	}
	return strings.Join(parts, " ")
}

func (e *env) balance(c testCard) int64 {
	b, err := e.ledger.CardBalance(context.Background(), org, c.uid)
	require.NoError(e.t, err)
	return b
}

func (e *env) auditCount(where string, args ...any) int {
	var n int
	require.NoError(e.t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM api_audit WHERE `+where, args...).Scan(&n))
	return n
}
