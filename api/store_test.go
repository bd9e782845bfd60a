package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/ledger"
)

func TestStoreDay(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.tokens["store"]
	today := e.clock.Now().UTC().Format(time.DateOnly)

	sale := api.SaleRequest{ID: "01900000-0000-7000-8000-00000000000a", Card: e.cards[0].hex(), Deposit: 200, Credit: 300}
	r := e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: tok, body: sale})
	require.Equal(t, 201, r.status, string(r.body))
	require.Equal(t, int64(1300), e.balance(e.cards[0]))
	// The same request again does nothing; the card sold again is refused.
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: tok, body: sale})
	require.Equal(t, 201, r.status, string(r.body))
	require.Equal(t, int64(1300), e.balance(e.cards[0]))
	before := e.fingerprint()
	sale.ID = ""
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: tok, body: sale})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Equal(t, before, e.fingerprint())

	// Close the day: the ledger expected the seeded cash top-ups and the sale.
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/day-close", bearer: tok, body: api.DayCloseRequest{Day: today, Counted: 3450}})
	require.Equal(t, 201, r.status, string(r.body))
	var dc api.DayCloseResponse
	r.json(t, &dc)
	require.Equal(t, api.DayCloseResponse{Store: "store-a", Day: today, Expected: 3500, Counted: 3450, Difference: -50}, dc)
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/day-close", bearer: tok, body: api.DayCloseRequest{Day: today, Counted: 3500}})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "already closed")
	// Another store's day is not this token's to close.
	r = e.do(request{method: "POST", path: "/v1/stores/store-b/day-close", bearer: tok, body: api.DayCloseRequest{Day: today, Counted: 0}})
	require.Equal(t, http.StatusForbidden, r.status)

	// HQ and auditors see it.
	r = e.do(request{method: "GET", path: "/v1/hq/reports/store-days?from=" + today + "&to=" + today, bearer: e.tokens["auditor"]})
	require.Equal(t, 200, r.status, string(r.body))
	var days struct{ Days []ledger.StoreDayReport }
	r.json(t, &days)
	require.Len(t, days.Days, 2)
	require.Equal(t, "store-a", days.Days[0].Store)
	require.Equal(t, int64(3500), days.Days[0].ExpectedCash)
	require.Equal(t, int64(3450), *days.Days[0].CountedCash)
	require.Equal(t, int64(1), days.Days[0].CardsSold)
	r = e.do(request{method: "GET", path: "/v1/hq/reports/store-days?from=2026-01-02&to=2026-01-01", bearer: e.tokens["hq"]})
	require.Equal(t, http.StatusBadRequest, r.status)
	r = e.do(request{method: "GET", path: "/v1/hq/reports/events/fest", bearer: e.tokens["hq"]})
	require.Equal(t, 200, r.status, string(r.body))
	var ev ledger.EventReport
	r.json(t, &ev)
	require.Equal(t, "fest", ev.Event)
	require.Equal(t, int64(3300), ev.Outstanding)
}
