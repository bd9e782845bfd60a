package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/personalize"
)

func TestPendingLoadCreditKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	term := e.enrolTerminal("top-1")
	sk := e.sessionKey(term)
	c := e.cards[0]
	// A load paid online waits in the ledger as a pending load.
	pay(t, e, c, "evt-1", 500)
	r := e.do(request{method: "GET", path: "/v1/terminal/pending-loads?card=" + c.hex(), terminal: term, session: sk.KeyID})
	require.Equal(t, 200, r.status, string(r.body))
	var pl struct{ Loads []apitype.PendingLoad }
	r.json(t, &pl)
	require.Len(t, pl.Loads, 1)
	load := pl.Loads[0].ID
	require.Equal(t, int64(500), pl.Loads[0].Amount)

	r = e.do(request{method: "POST", path: "/v1/terminal/credit-keys", terminal: term, session: sk.KeyID,
		body: apitype.CreditKeyRequest{Card: c.hex(), Load: load}})
	require.Equal(t, 201, r.status, string(r.body))
	var ck apitype.CreditKeyResponse
	r.json(t, &ck)
	require.Equal(t, keydelivery.KindCredit, ck.Kind)
	require.Equal(t, c.uid, ck.Card)
	require.Equal(t, int64(500), ck.Amount)
	require.True(t, e.clock.Now().Add(time.Minute).Equal(ck.Expires), "valid for a minute")

	// It is the card's key 2: AN10922 of app-credit over UID || AID || system id.
	got, err := keydelivery.Unwrap(term.kexKey, &ck.Wrapped, e.clock.Now())
	require.NoError(t, err)
	l := personalize.DefaultLayout()
	m, err := keyderiv.DiversificationInput(c.uid, l.AID[:], []byte(l.SystemID))
	require.NoError(t, err)
	want, _, err := e.hsm.Diversify(ctx, keys.Label{Name: keys.AppCredit}, m)
	require.NoError(t, err)
	gk, err := keyderiv.NewAESKey(got)
	require.NoError(t, err)
	require.True(t, want.Equal(gk))
	// A minute later it no longer opens.
	_, err = keydelivery.Unwrap(term.kexKey, &ck.Wrapped, e.clock.Now().Add(time.Minute))
	require.ErrorIs(t, err, keydelivery.ErrExpired)

	// No credit key without a pending load of that card.
	before := e.fingerprint()
	for _, req := range []apitype.CreditKeyRequest{
		{Card: e.cards[1].hex(), Load: load},
		{Card: c.hex(), Load: "01900000-0000-7000-8000-000000000002"},
	} {
		r = e.do(request{method: "POST", path: "/v1/terminal/credit-keys", terminal: term, session: sk.KeyID, body: req})
		require.Equal(t, http.StatusConflict, r.status, string(r.body))
	}
	// Nor without a current session key.
	r = e.do(request{method: "POST", path: "/v1/terminal/credit-keys", terminal: term,
		body: apitype.CreditKeyRequest{Card: c.hex(), Load: load}})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, before, e.fingerprint())

	// The terminal wrote the load: it moves onto the card, once.
	written := request{method: "POST", path: "/v1/terminal/loads/" + load + "/written", terminal: term, session: sk.KeyID,
		body: apitype.LoadWrittenRequest{Card: c.hex(), Write: &apitype.CardWrite{Seq: 1, Before: 1000, After: 1500}}}
	r = e.do(written)
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, int64(1500), e.balance(c))
	r = e.do(written)
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, int64(1500), e.balance(c))
	r = e.do(request{method: "GET", path: "/v1/terminal/pending-loads?card=" + c.hex(), terminal: term, session: sk.KeyID})
	r.json(t, &pl)
	require.Empty(t, pl.Loads)
	// A write that does not add up to the load is refused (409, as at a
	// store: the one confirmation route), and changes nothing.
	pay(t, e, c, "evt-2", 300)
	r = e.do(request{method: "GET", path: "/v1/terminal/pending-loads?card=" + c.hex(), terminal: term, session: sk.KeyID})
	r.json(t, &pl)
	require.Len(t, pl.Loads, 1)
	before = e.fingerprint()
	r = e.do(request{method: "POST", path: "/v1/terminal/loads/" + pl.Loads[0].ID + "/written", terminal: term, session: sk.KeyID,
		body: apitype.LoadWrittenRequest{Card: c.hex(), Write: &apitype.CardWrite{Seq: 2, Before: 1500, After: 1900}}})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Equal(t, before, e.fingerprint())
}

// pay has the ledger record a provider's payment for card: a pending load.
func pay(t *testing.T, e *env, c testCard, event string, amount int64) {
	t.Helper()
	require.NoError(t, e.ledger.RecordPayment(context.Background(), "test", payment.Event{ID: event, Type: "payment.succeeded",
		Payment: "pay-" + event, Org: org, Card: c.hex(), Amount: amount, Currency: "EUR", Created: e.clock.Now().Unix()}))
}
