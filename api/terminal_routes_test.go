package api_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

func TestTerminalFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	term := e.enrolTerminal("bar-1")

	// The session key opens with the terminal's key-agreement key and is
	// the event debit key the HSM derives.
	sk := e.sessionKey(term)
	require.Equal(t, keydelivery.KindSession, sk.Kind)
	require.Equal(t, "fest", sk.Event)
	require.Equal(t, "bar-1", sk.Terminal)
	got, err := keydelivery.Unwrap(term.kexKey, &sk.Wrapped, e.clock.Now())
	require.NoError(t, err)
	want, _, err := e.hsm.EventDebitKey(ctx, keys.Label{Name: keys.AppDebit}, org, "fest")
	require.NoError(t, err)
	wk, err := keyderiv.NewAESKey(got)
	require.NoError(t, err)
	require.True(t, want.Equal(wk), "session key is the event debit key")
	require.NotContains(t, e.logs.String(), hex.EncodeToString(got))

	// Upload a batch: two debits of one card, and one of another terminal.
	c := e.cards[0]
	tx1 := e.debit(term, c, 1, 1000, 250)
	tx2 := e.debit(term, c, 2, 750, 100)
	other := &terminal{id: "bar-9", signKey: term.signKey}
	tx3 := e.debit(other, e.cards[1], 1, 1000, 100)
	up := request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
		body: apitype.BatchRequest{Transactions: [][]byte{tx1, tx2, tx3, []byte("garbage")}}}
	r := e.do(up)
	require.Equal(t, 200, r.status, string(r.body))
	var br apitype.BatchResponse
	r.json(t, &br)
	require.Len(t, br.Results, 4)
	require.Equal(t, "accepted", br.Results[0].Status)
	require.Equal(t, "accepted", br.Results[1].Status)
	require.Equal(t, apitype.TxResult{ID: br.Results[2].ID, Status: "rejected", Reason: "other_terminal"}, br.Results[2])
	require.Equal(t, apitype.TxResult{Status: "rejected", Reason: "malformed"}, br.Results[3])
	require.Equal(t, int64(650), e.balance(c))
	require.Equal(t, int64(1000), e.balance(e.cards[1]))

	// Uploading again (a retry with a fresh signature) changes nothing.
	r = e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
		body: apitype.BatchRequest{Transactions: [][]byte{tx1, tx2}}})
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &br)
	require.Equal(t, "duplicate", br.Results[0].Status)
	require.Equal(t, "duplicate", br.Results[1].Status)
	require.Equal(t, int64(650), e.balance(c))

	t.Run("replayed request refused", func(t *testing.T) {
		tx := e.debit(term, c, 3, 650, 50)
		req, _ := e.newRequest(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		replay := req.Clone(ctx)
		body, err := req.GetBody()
		require.NoError(t, err)
		replay.Body = body
		first := e.send(req)
		require.Equal(t, 200, first.status, string(first.body))
		before := e.fingerprint()
		second := e.send(replay)
		require.Equal(t, http.StatusUnauthorized, second.status)
		require.JSONEq(t, `{"error":"request replayed","request_id":"`+second.header.Get("X-Request-Id")+`"}`, string(second.body))
		require.Equal(t, before, e.fingerprint())
		require.Equal(t, int64(600), e.balance(c))
	})

	t.Run("stale signature refused", func(t *testing.T) {
		tx := e.debit(term, c, 4, 600, 50)
		req, _ := e.newRequest(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		e.clock.Add(61 * time.Second)
		defer e.clock.Add(-61 * time.Second)
		before := e.fingerprint()
		r := e.send(req)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Contains(t, string(r.body), "stale request signature")
		require.Equal(t, before, e.fingerprint())
	})

	t.Run("tampered body refused", func(t *testing.T) {
		tx := e.debit(term, c, 4, 600, 50)
		req, _ := e.newRequest(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		req.Header.Set("Content-Digest", "sha-256=:"+"AAAA"+":")
		before := e.fingerprint()
		r := e.send(req)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, before, e.fingerprint())
	})

	t.Run("expired session key refused", func(t *testing.T) {
		e.clock.Add(12*time.Hour + time.Second)
		defer e.clock.Add(-(12*time.Hour + time.Second))
		_, err := keydelivery.Unwrap(term.kexKey, &sk.Wrapped, e.clock.Now())
		require.ErrorIs(t, err, keydelivery.ErrExpired)
		tx := e.debit(term, c, 4, 600, 50)
		before := e.fingerprint()
		r := e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Contains(t, string(r.body), "session key expired")
		require.Equal(t, before, e.fingerprint())
		// A new session key works again.
		sk2 := e.sessionKey(term)
		r = e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk2.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		require.Equal(t, 200, r.status, string(r.body))
	})

	t.Run("revoked session keys refused", func(t *testing.T) {
		sk3 := e.sessionKey(term)
		r := e.do(request{method: "DELETE", path: "/v1/hq/terminals/bar-1/session-keys", bearer: e.tokens["hq"]})
		require.Equal(t, 200, r.status, string(r.body))
		tx := e.debit(term, c, 5, 550, 50)
		r = e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk3.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		require.Equal(t, http.StatusUnauthorized, r.status)
	})

	t.Run("HQ sees terminals and stores", func(t *testing.T) {
		r := e.do(request{method: "GET", path: "/v1/hq/terminals", bearer: e.tokens["auditor"]})
		require.Equal(t, 200, r.status, string(r.body))
		var tl struct{ Terminals []apitype.TerminalInfo }
		r.json(t, &tl)
		require.Len(t, tl.Terminals, 1)
		require.Equal(t, "bar-1", tl.Terminals[0].Terminal)
		require.Equal(t, "active", tl.Terminals[0].Status)
		require.Equal(t, "x25519", tl.Terminals[0].KexAlg)
		require.Equal(t, 0, tl.Terminals[0].SessionKeys, "all revoked or expired by now")
		r = e.do(request{method: "GET", path: "/v1/hq/stores", bearer: e.tokens["hq"]})
		require.Equal(t, 200, r.status, string(r.body))
		var sl struct{ Stores []apitype.StoreInfo }
		r.json(t, &sl)
		require.Equal(t, []apitype.StoreInfo{{Store: "store-a", Name: "store-a", Cash: 3000}, {Store: "store-b", Name: "store-b"}}, sl.Stores)
	})

	t.Run("revoked terminal refused and alerted", func(t *testing.T) {
		r := e.do(request{method: "DELETE", path: "/v1/hq/terminals/bar-1", bearer: e.tokens["hq"]})
		require.Equal(t, 200, r.status, string(r.body))
		before := e.fingerprint()
		r = e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: term, body: apitype.SessionKeyRequest{Event: "fest"}})
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, before, e.fingerprint())
		// Trying again is refused too, without another alert.
		r = e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: term, body: apitype.SessionKeyRequest{Event: "fest"}})
		require.Equal(t, http.StatusUnauthorized, r.status)
		r = e.do(request{method: "GET", path: "/v1/hq/alerts", bearer: e.tokens["hq"]})
		require.Equal(t, 200, r.status)
		var alerts struct{ Alerts []apitype.AlertRecord }
		r.json(t, &alerts)
		require.Len(t, alerts.Alerts, 1)
		require.Equal(t, "revoked_terminal", alerts.Alerts[0].Kind)
		require.Equal(t, "terminal:1:bar-1", alerts.Alerts[0].Actor)
	})

	t.Run("enrolment token works once", func(t *testing.T) {
		r := e.do(request{method: "POST", path: "/v1/hq/terminals", bearer: e.tokens["hq"], body: apitype.TerminalRequest{Terminal: "bar-2", Merchant: "bar"}})
		require.Equal(t, 201, r.status)
		var tr apitype.TerminalResponse
		r.json(t, &tr)
		enrol := apitype.EnrolRequest{Org: org, Terminal: "bar-2", Token: tr.EnrolmentToken, SigningKey: make([]byte, 32),
			KexAlg: "x25519", KexKey: term.kexKey.PublicKey().Bytes()}
		r = e.do(request{method: "POST", path: "/v1/terminals/enrol", body: enrol})
		require.Equal(t, 201, r.status, string(r.body))
		before := e.fingerprint()
		r = e.do(request{method: "POST", path: "/v1/terminals/enrol", body: enrol})
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, before, e.fingerprint())
		require.NotContains(t, e.logs.String(), tr.EnrolmentToken)
	})
}

// A terminal gets session keys for its own event only; asking for none
// gives it its own. A debit signed for another merchant is held, not
// rejected (issue 16, failure 4).
func TestTerminalIdentityBinds(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	term := e.enrolTerminal("bar-1") // while "fest" is the only event
	require.NoError(t, e.ledger.AddEvent(ctx, org, "other", "Other", time.Time{}))

	before := e.fingerprint()
	r := e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: term, body: apitype.SessionKeyRequest{Event: "other"}})
	require.Equal(t, http.StatusForbidden, r.status, string(r.body))
	require.Contains(t, string(r.body), "the terminal takes payments for event fest only")
	require.Equal(t, before, e.fingerprint())
	r = e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: term, body: apitype.SessionKeyRequest{}})
	require.Equal(t, 201, r.status, string(r.body))
	var sk apitype.SessionKeyResponse
	r.json(t, &sk)
	require.Equal(t, "fest", sk.Event)

	require.NoError(t, e.ledger.AddMerchant(ctx, org, "food", "Food"))
	r = e.do(request{method: "POST", path: "/v1/hq/terminals", bearer: e.tokens["hq"],
		body: apitype.TerminalRequest{Terminal: "food-1", Merchant: "food", Event: "nosuch"}})
	require.Equal(t, http.StatusNotFound, r.status, string(r.body))
	require.Contains(t, string(r.body), "no such event")
	r = e.do(request{method: "POST", path: "/v1/hq/terminals", bearer: e.tokens["hq"],
		body: apitype.TerminalRequest{Terminal: "food-1", Merchant: "food", Event: "other"}})
	require.Equal(t, 201, r.status, string(r.body))
	var list struct {
		Terminals []apitype.TerminalInfo `json:"terminals"`
	}
	r = e.do(request{method: "GET", path: "/v1/hq/terminals", bearer: e.tokens["hq"]})
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &list)
	require.Len(t, list.Terminals, 2)
	require.Equal(t, "other", list.Terminals[1].Event)

	// bar-1 signs a debit for merchant "food".
	term.seq++
	rnd := []byte("held-debit")
	tx := &terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(e.clock.Now(), rnd), Organizer: org,
		Terminal: term.id, TerminalSeq: term.seq, Card: e.cards[0].uid, CardSeq: 2, Amount: 100,
		BalanceBefore: 1000, BalanceAfter: 900, Merchant: "food", Time: e.clock.Now()}
	s, err := terminaltx.Sign(tx, term.signKey)
	require.NoError(t, err)
	r = e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
		body: apitype.BatchRequest{Transactions: [][]byte{s.Bytes()}}})
	require.Equal(t, 200, r.status, string(r.body))
	var br apitype.BatchResponse
	r.json(t, &br)
	require.Equal(t, apitype.TxResult{ID: tx.ID.String(), Status: "held", Reason: "wrong_merchant"}, br.Results[0])
	require.Equal(t, int64(1000), e.balance(e.cards[0]), "held, not posted")
}
