package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
	"github.com/loopcard/loopcard/personalize/handover/handoverdb"
)

// custody sets up the custody log of env's batch: issued by HQ, a store
// key for each store, handed over to store-a. It returns the stores'
// signers and HQ's verifier key.
func (e *env) custody() (stores map[string]*handover.Signer, hqVkey string, cardNumbers []string) {
	t, ctx := e.t, context.Background()
	hq, err := e.hsm.Signer(ctx, keys.Label{Name: keys.HQSign})
	require.NoError(t, err)
	hs, err := handover.NewSigner(handover.DefaultOrigin(org), hq)
	require.NoError(t, err)
	l, err := handoverdb.Open(ctx, e.pool, handoverdb.Config{Org: org, HQ: hs})
	require.NoError(t, err)
	cards, err := batch.NewBatches(e.pool).Cards(ctx, org, e.batch)
	require.NoError(t, err)
	for _, c := range cards {
		cardNumbers = append(cardNumbers, c.Number)
	}
	_, err = l.IssueBatch(ctx, e.batch, "fest", cardNumbers)
	require.NoError(t, err)
	stores = map[string]*handover.Signer{}
	for _, st := range []string{"store-a", "store-b"} {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		s, err := handover.NewSigner(handover.StoreKeyName(org, st), priv)
		require.NoError(t, err)
		stores[st] = s
	}
	return stores, hs.PublicKey().Vkey(), cardNumbers
}

func TestCustodyFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	stores, hqVkey, numbers := e.custody()
	storeA := stores["store-a"]
	hqTok, storeTok := e.tokens["hq"], e.tokens["store"]

	r := e.do(request{method: "POST", path: "/v1/hq/stores/store-a/key", bearer: hqTok, body: apitype.StoreKeyRequest{Vkey: storeA.PublicKey().Vkey()}})
	require.Equal(t, 201, r.status, string(r.body))
	// A key named for another store is refused.
	r = e.do(request{method: "POST", path: "/v1/hq/stores/store-b/key", bearer: hqTok, body: apitype.StoreKeyRequest{Vkey: storeA.PublicKey().Vkey()}})
	require.Equal(t, 400, r.status, string(r.body))
	r = e.do(request{method: "POST", path: "/v1/hq/batches/1/handover", bearer: hqTok, body: apitype.HandOverRequest{Store: "store-a", Count: int64(len(numbers))}})
	require.Equal(t, 201, r.status, string(r.body))

	receipt, err := handover.NewReceipt(storeA, org, e.batch, "store-a", int64(len(numbers)), e.clock.Now())
	require.NoError(t, err)
	t.Run("tampered receipt refused", func(t *testing.T) {
		bad := receipt
		n := int64(1)
		bad.Count = &n
		before := e.fingerprint()
		r := e.do(request{method: "POST", path: "/v1/stores/store-a/receipts", bearer: storeTok, body: apitype.EntriesRequest{Entries: []handover.Entry{bad}}})
		require.Equal(t, 400, r.status, string(r.body))
		require.Contains(t, string(r.body), "custody log entries refused")
		require.Equal(t, before, e.fingerprint())
	})
	t.Run("another store's entry refused", func(t *testing.T) {
		before := e.fingerprint()
		r := e.do(request{method: "POST", path: "/v1/stores/store-b/receipts", bearer: e.tokens["store-b"], body: apitype.EntriesRequest{Entries: []handover.Entry{receipt}}})
		require.Equal(t, 400, r.status, string(r.body))
		r = e.do(request{method: "POST", path: "/v1/stores/store-a/receipts", bearer: e.tokens["store-b"], body: apitype.EntriesRequest{Entries: []handover.Entry{receipt}}})
		require.Equal(t, http.StatusForbidden, r.status, string(r.body))
		require.Equal(t, before, e.fingerprint())
	})
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/receipts", bearer: storeTok, body: apitype.EntriesRequest{Entries: []handover.Entry{receipt}}})
	require.Equal(t, 201, r.status, string(r.body))
	// The received cards are in the store's stock.
	r = e.do(request{method: "GET", path: "/v1/hq/reports/store-days", bearer: hqTok})
	require.Equal(t, 200, r.status, string(r.body))
	var days struct{ Days []ledger.StoreDayReport }
	r.json(t, &days)
	require.Equal(t, "store-a", days.Days[0].Store)
	require.Equal(t, int64(len(numbers)), days.Days[0].CardsReceived)
	// The same signed receipt again (an answer lost on the way) is
	// recorded already: 200, and the cards are counted once.
	before := e.fingerprint()
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/receipts", bearer: storeTok, body: apitype.EntriesRequest{Entries: []handover.Entry{receipt}}})
	require.Equal(t, 200, r.status, string(r.body))
	var again apitype.AppendResponse
	r.json(t, &again)
	require.True(t, again.Again)
	require.Equal(t, before, e.fingerprint())
	r = e.do(request{method: "GET", path: "/v1/hq/reports/store-days", bearer: hqTok})
	r.json(t, &days)
	require.Equal(t, int64(len(numbers)), days.Days[0].CardsReceived)

	var events []handover.CardEvent
	for _, n := range numbers[:2] {
		id, err := personalize.ParseCardID(n)
		require.NoError(t, err)
		events = append(events, handover.CardEvent{Type: handover.TypeCardSold, Card: id, Store: "store-a"})
	}
	sold, err := handover.SignCardEvents(storeA, org, e.clock.Now(), events)
	require.NoError(t, err)
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/card-events", bearer: storeTok, body: apitype.EntriesRequest{Entries: sold}})
	require.Equal(t, 201, r.status, string(r.body))
	var ar apitype.AppendResponse
	r.json(t, &ar)
	// A store destroys a card it holds through the same route, as the
	// custody log's rules allow (handover.Kinds: card_destroyed).
	id, err := personalize.ParseCardID(numbers[2])
	require.NoError(t, err)
	destroyed, err := handover.SignCardEvents(storeA, org, e.clock.Now(), []handover.CardEvent{{Type: handover.TypeCardDestroyed, Card: id, Store: "store-a"}})
	require.NoError(t, err)
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/card-events", bearer: storeTok, body: apitype.EntriesRequest{Entries: destroyed}})
	require.Equal(t, 201, r.status, string(r.body))
	r.json(t, &ar)

	// The auditor's export verifies offline against HQ's key.
	r = e.do(request{method: "GET", path: "/v1/audit/export", bearer: e.tokens["auditor"]})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, "application/x-tar", r.header.Get("Content-Type"))
	fsys := fstest.MapFS{}
	tr := tar.NewReader(bytes.NewReader(r.body))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		fsys[h.Name] = &fstest.MapFile{Data: b}
	}
	rep, err := audit.Verify(fsys, audit.Options{HQKey: hqVkey})
	require.NoError(t, err)
	require.True(t, rep.OK, "%+v", rep.Failure)
	require.Equal(t, ar.Size, rep.Entries)
	require.Equal(t, 1, rep.StoreKeys)
	require.Empty(t, rep.OpenHandovers)

	// A store cannot export, and its refusal is audited.
	r = e.do(request{method: "GET", path: "/v1/audit/export", bearer: storeTok})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, 1, e.auditCount(`action = 'GET /v1/audit/export' AND outcome = 'denied'`))
	require.Equal(t, 1, e.auditCount(`action = 'GET /v1/audit/export' AND outcome = 'ok'`))
}
