package cardpage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/cardpage/checkout"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/softhsm"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const org = 1

// apiEnv is the real API (PostgreSQL, SoftHSM2) with its card pages.
type apiEnv struct {
	pool   *pgxpool.Pool
	ledger *ledger.Ledger
	srv    *api.Server
	logs   *syncBuffer
	cards  []testCard
	// provider is the test payment provider's server (newPayingEnv).
	provider *httptest.Server
}

// testCard is a personalized card with what is printed on its label.
type testCard struct {
	uid   []byte
	token string
	pin   string
}

func (c testCard) hex() string { return terminaltx.CardHex(c.uid) }

// wrongPIN is a valid PIN other than the card's.
func (c testCard) wrongPIN() string {
	if c.pin == "000000" {
		return "000001"
	}
	return "000000"
}

// newAPIEnv starts the API over a fresh database and SoftHSM2 token, with
// organizer 1, event fest, and n cards holding 10.00 each. perIP is the
// API's rate limit per address; 0 means none.
func newAPIEnv(t *testing.T, n int, perIP float64) *apiEnv {
	t.Helper()
	return startAPIEnv(t, n, perIP, false)
}

// newPayingEnv is newAPIEnv with online top-ups: the test payment
// provider's pages on their own origin (provider), its signed webhooks
// sent to the API's POST /v1/payments/webhook, which records them in the
// ledger.
func newPayingEnv(t *testing.T, n int) *apiEnv {
	t.Helper()
	return startAPIEnv(t, n, 0, true)
}

func startAPIEnv(t *testing.T, n int, perIP float64, payments bool) *apiEnv {
	t.Helper()
	ctx := context.Background()
	uri := softhsm.NewTestToken(t)
	h, err := keys.Open(uri, keys.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	_, err = h.Init(ctx)
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, ledger.Migrate(ctx, pool))
	l := ledger.New(pool, ledger.Options{Sealer: h})
	bs := batch.NewBatches(pool)
	logs := &syncBuffer{}
	if perIP == 0 {
		perIP = -1
	}
	cfg := api.Config{Ledger: l, Batches: bs, HSM: h, Limits: api.Limits{PerIP: perIP, PerClient: -1, PasswordMemory: 256, PasswordTime: 1},
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	var provider *httptest.Server
	var srvp atomic.Pointer[api.Server]
	if payments {
		cfg.Payments, provider = testProvider(t, &srvp)
	}
	srv, err := api.New(cfg)
	require.NoError(t, err)
	srvp.Store(srv)
	e := &apiEnv{pool: pool, ledger: l, srv: srv, logs: logs, provider: provider}

	require.NoError(t, l.CreateOrganizer(ctx, org, "Fest Org"))
	require.NoError(t, l.AddEvent(ctx, org, "fest", "Fest", time.Time{}))
	require.NoError(t, l.AddStore(ctx, org, "store-a", "Store A"))
	b, err := bs.Create(ctx, org, "fest", n, personalize.DefaultLayout())
	require.NoError(t, err)
	var uids [][]byte
	for i := range n {
		uid := []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, byte(i >> 8), byte(i)}
		raw := make([]byte, 16)
		_, _ = rand.Read(raw)
		pin, err := h.NewPIN(ctx)
		require.NoError(t, err)
		pvv, err := h.PINVerificationValue(ctx, uid, pin)
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
	require.NoError(t, l.RegisterCards(ctx, org, "fest", uids))
	for _, c := range e.cards {
		id, err := l.TopUpCash(ctx, org, ledger.CashTopUp{Store: "store-a", Card: c.uid, Amount: 1000})
		require.NoError(t, err)
		require.NoError(t, l.LoadPending(ctx, org, c.uid, id, nil))
	}
	return e
}

// pendingLoad records an online top-up paid and not yet on the card, as
// the ledger's online top-up will (it has no function for it yet).
func (e *apiEnv) pendingLoad(t *testing.T, c testCard, amount int64) {
	t.Helper()
	// As a provider's verified webhook is recorded: a pending load with
	// its money in the ledger's pending loads account.
	id := "evt-" + rand.Text()
	require.NoError(t, e.ledger.RecordPayment(context.Background(), "test", payment.Event{ID: id, Type: payment.TypePaymentSucceeded,
		Payment: "pay-" + id, Org: org, Card: c.hex(), Amount: amount, Currency: "EUR", Created: time.Now().Unix()}))
}

// storeTap is a store's online tap of the card (GET
// /v1/stores/store-a/pending-loads): it returns the loads waiting.
func (e *apiEnv) storeTap(t *testing.T, c testCard) []int64 {
	t.Helper()
	tok, err := api.IssueToken(context.Background(), e.pool, api.TokenRequest{Org: org, Role: api.RoleStore, Store: "store-a", TTL: time.Hour}, time.Now())
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodGet, "https://api.example/v1/stores/store-a/pending-loads?card="+c.hex(), nil)
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out struct {
		Loads []struct {
			Amount int64 `json:"amount"`
		} `json:"loads"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	var amounts []int64
	for _, l := range out.Loads {
		amounts = append(amounts, l.Amount)
	}
	return amounts
}

func (e *apiEnv) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}

// testProvider runs the test payment provider's pages on their own origin;
// a payment there is delivered as the provider would: a signed webhook to
// the API's POST /v1/payments/webhook (in process).
func testProvider(t *testing.T, srv *atomic.Pointer[api.Server]) (*api.Payments, *httptest.Server) {
	t.Helper()
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	secret := payment.NewSecret(raw[:])
	notify := func(ctx context.Context, ev payment.Event) error {
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/payments/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(payment.Header, payment.Sign(secret, time.Now(), body))
		rec := httptest.NewRecorder()
		srv.Load().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("webhook answered %d", rec.Code)
		}
		return nil
	}
	var p atomic.Pointer[checkout.Provider]
	ps := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.Load().ServeHTTP(w, r) }))
	t.Cleanup(ps.Close)
	p.Store(checkout.New(ps.URL+"/checkout/", notify, nil))
	return &api.Payments{Provider: "paytest", Secrets: []payment.Secret{secret}, TopUps: p.Load(), AutoTopUps: p.Load(), Origin: ps.URL}, ps
}
