package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/keys"
)

// GET /v1/hq/keys shows each organizer only what is its own (issue 17 M2):
// the debit key of each of its events, never the platform's key list (base
// key KCVs, hq-sign, pin, data-kek). Two organizers with an event of one id
// see different event debit keys, and neither sees the other's events.
func TestHQKeysShowOnlyTheOrganizersOwn(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	const org2 = 2
	require.NoError(t, e.ledger.CreateOrganizer(ctx, org2, "Other Org"))
	require.NoError(t, e.ledger.AddEvent(ctx, org2, "fest", "Other Fest", time.Time{}))
	require.NoError(t, e.ledger.AddEvent(ctx, org2, "late", "Late Fest", time.Time{}))
	tok, err := api.IssueToken(ctx, e.pool, api.TokenRequest{Org: org2, Role: api.RoleHQ, TTL: time.Hour}, e.clock.Now())
	require.NoError(t, err)

	get := func(bearer string) apitype.OrganizerKeysResponse {
		r := e.do(request{method: "GET", path: "/v1/hq/keys", bearer: bearer})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		for _, platform := range []string{keys.PICCMaster, keys.AppMaster, keys.AppCredit, keys.AppRead, keys.HQSign, keys.DataKEK, `"pin`} {
			require.NotContains(t, string(r.body), platform, "an organizer sees the platform's key list")
		}
		var out apitype.OrganizerKeysResponse
		r.json(t, &out)
		return out
	}
	k1, k2 := get(e.tokens["hq"]), get(tok.Reveal())

	want1, _, err := e.hsm.EventDebitKey(ctx, keys.Label{Name: keys.AppDebit}, org, "fest")
	require.NoError(t, err)
	require.Equal(t, []apitype.OrganizerKey{{Event: "fest", Kind: "event-debit", BaseKey: "app-debit/v1", KCV: want1.KCV()}}, k1.Keys)
	require.Len(t, k2.Keys, 2)
	require.Equal(t, "fest", k2.Keys[0].Event)
	require.Equal(t, "late", k2.Keys[1].Event)
	require.NotEqual(t, k1.Keys[0].KCV, k2.Keys[0].KCV, "two organizers' events of one id share a debit key")

	// The auditor and stores get no key status at all.
	for _, who := range []string{"auditor", "store"} {
		r := e.do(request{method: "GET", path: "/v1/hq/keys", bearer: e.tokens[who]})
		require.Equal(t, http.StatusForbidden, r.status, who)
	}
}
