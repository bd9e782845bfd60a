package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/personalize"
)

func TestPendingLoadCreditKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	term := e.enrolTerminal("top-1")
	sk := e.sessionKey(term)
	c := e.cards[0]
	// A load paid online waits in the ledger as a pending top-up. (Written
	// here directly until the ledger's online top-up exists.)
	const load = "01900000-0000-7000-8000-000000000001"
	_, err := e.pool.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, provider, provider_ref, amount, status)
		VALUES ($1, $2, $3, 'online', 'test', 'ref-1', 500, 'pending')`, org, load, c.uid)
	require.NoError(t, err)

	r := e.do(request{method: "GET", path: "/v1/terminal/pending-loads?card=" + c.hex(), terminal: term, session: sk.KeyID})
	require.Equal(t, 200, r.status, string(r.body))
	var pl struct{ Loads []api.PendingLoad }
	r.json(t, &pl)
	require.Len(t, pl.Loads, 1)
	require.Equal(t, load, pl.Loads[0].ID)
	require.Equal(t, int64(500), pl.Loads[0].Amount)

	r = e.do(request{method: "POST", path: "/v1/terminal/credit-keys", terminal: term, session: sk.KeyID,
		body: api.CreditKeyRequest{Card: c.hex(), Load: load}})
	require.Equal(t, 201, r.status, string(r.body))
	var ck api.CreditKeyResponse
	r.json(t, &ck)
	require.Equal(t, keydelivery.KindCredit, ck.Kind)
	require.Equal(t, c.uid, ck.Card)
	require.Equal(t, int64(500), ck.Amount)
	require.True(t, e.clock.Now().Add(time.Minute).Equal(ck.Expires), "valid for a minute")

	// It is the card's key 2: AN10922 of app-credit over UID || AID || system id.
	got, err := keydelivery.Unwrap(term.kexKey, &ck.Wrapped, e.clock.Now())
	require.NoError(t, err)
	l := personalize.DefaultLayout()
	m, err := keys.DiversificationInput(c.uid, l.AID[:], []byte(l.SystemID))
	require.NoError(t, err)
	want, _, err := e.hsm.Diversify(ctx, keys.Label{Name: keys.AppCredit}, m)
	require.NoError(t, err)
	gk, err := keys.NewAESKey(got)
	require.NoError(t, err)
	require.True(t, want.Equal(gk))
	// A minute later it no longer opens.
	_, err = keydelivery.Unwrap(term.kexKey, &ck.Wrapped, e.clock.Now().Add(time.Minute))
	require.ErrorIs(t, err, keydelivery.ErrExpired)

	// No credit key without a pending load of that card.
	before := e.fingerprint()
	for _, req := range []api.CreditKeyRequest{
		{Card: e.cards[1].hex(), Load: load},
		{Card: c.hex(), Load: "01900000-0000-7000-8000-000000000002"},
	} {
		r = e.do(request{method: "POST", path: "/v1/terminal/credit-keys", terminal: term, session: sk.KeyID, body: req})
		require.Equal(t, http.StatusConflict, r.status, string(r.body))
	}
	// Nor without a current session key.
	r = e.do(request{method: "POST", path: "/v1/terminal/credit-keys", terminal: term,
		body: api.CreditKeyRequest{Card: c.hex(), Load: load}})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, before, e.fingerprint())
}
