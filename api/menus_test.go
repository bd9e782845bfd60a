package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/apitype"
)

// TestMenuAPI: HQ sets versions of a merchant's menu and reads the
// current one; an auditor reads it; the terminal reads its merchant's
// menu; a bad menu, an unknown merchant, and a store or a terminal setting
// a menu change nothing.
func TestMenuAPI(t *testing.T) {
	e := newEnv(t, envOptions{cards: 1})
	term := e.enrolTerminal("bar-menu")
	sk := e.sessionKey(term)
	products := []apitype.MenuProduct{{ID: "beer", Name: "Beer 0.3l", Price: 350, VATRateBP: 2100, Category: "Drinks", AgeRestricted: true},
		{ID: "cup", Name: "Cup deposit", Price: 100, Category: "Deposit", Deposit: true}}

	r := e.do(request{method: "GET", path: "/v1/terminal/menu", terminal: term, session: sk.KeyID})
	require.Equal(t, http.StatusNotFound, r.status, string(r.body))

	r = e.do(request{method: "PUT", path: "/v1/hq/merchants/bar/menu", bearer: e.tokens["hq"], body: apitype.MenuRequest{Products: products}})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var m apitype.Menu
	r.json(t, &m)
	require.Equal(t, apitype.Menu{Merchant: "bar", Version: 1, Products: products}, m)
	r = e.do(request{method: "PUT", path: "/v1/hq/merchants/bar/menu", bearer: e.tokens["hq"], body: apitype.MenuRequest{Products: products[:1]}})
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	before := e.fingerprint()
	for _, bad := range []struct {
		req  request
		want int
	}{
		{request{method: "PUT", path: "/v1/hq/merchants/bar/menu", bearer: e.tokens["hq"],
			body: apitype.MenuRequest{Products: []apitype.MenuProduct{{ID: "Beer!", Name: "x", Price: 1}}}}, http.StatusBadRequest},
		{request{method: "PUT", path: "/v1/hq/merchants/bar/menu", bearer: e.tokens["hq"],
			body: apitype.MenuRequest{Products: []apitype.MenuProduct{{ID: "a", Name: "x", Price: -1}}}}, http.StatusBadRequest},
		{request{method: "PUT", path: "/v1/hq/merchants/bar/menu", bearer: e.tokens["hq"], body: apitype.MenuRequest{}}, http.StatusBadRequest},
		{request{method: "PUT", path: "/v1/hq/merchants/nobody/menu", bearer: e.tokens["hq"], body: apitype.MenuRequest{Products: products}}, http.StatusNotFound},
		{request{method: "PUT", path: "/v1/hq/merchants/Bad%20Id/menu", bearer: e.tokens["hq"], body: apitype.MenuRequest{Products: products}}, http.StatusBadRequest},
		{request{method: "PUT", path: "/v1/hq/merchants/bar/menu", bearer: e.tokens["store"], body: apitype.MenuRequest{Products: products}}, http.StatusForbidden},
		{request{method: "PUT", path: "/v1/hq/merchants/bar/menu", terminal: term, session: sk.KeyID, body: apitype.MenuRequest{Products: products}}, http.StatusForbidden},
	} {
		r := e.do(bad.req)
		require.Equal(t, bad.want, r.status, "%s %s: %s", bad.req.method, bad.req.path, r.body)
	}
	require.Equal(t, before, e.fingerprint())

	for _, who := range []string{"hq", "auditor"} {
		r = e.do(request{method: "GET", path: "/v1/hq/merchants/bar/menu", bearer: e.tokens[who]})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		r.json(t, &m)
		require.Equal(t, apitype.Menu{Merchant: "bar", Version: 2, Products: products[:1]}, m)
	}
	r = e.do(request{method: "GET", path: "/v1/terminal/menu", terminal: term, session: sk.KeyID})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	m = apitype.Menu{}
	r.json(t, &m)
	require.Equal(t, int32(2), m.Version)
	require.Equal(t, "bar", m.Merchant)
	require.GreaterOrEqual(t, e.auditCount(`action LIKE '%menu%' AND outcome = 'ok'`), 2)
}
