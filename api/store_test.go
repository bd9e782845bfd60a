package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
)

func TestStoreDay(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.stock("store-a")
	tok := e.tokens["store"]
	// The organizer's business day (default: it ends at 06:00 UTC), not
	// the UTC date: the seeded cash belongs to it.
	bd, err := e.ledger.BusinessDay(context.Background(), org)
	require.NoError(t, err)
	today := bd.Of(e.clock.Now()).Format(time.DateOnly)

	sale := apitype.SaleRequest{Card: e.cards[0].hex(), Deposit: 200, Credit: 300}
	key := "01900000-0000-7000-8000-00000000000a"
	r := e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: tok, idem: key, body: sale})
	require.Equal(t, 201, r.status, string(r.body))
	require.Equal(t, int64(1000), e.balance(e.cards[0]), "the credit is a pending load")
	// The same request again does nothing; the card sold again is refused.
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: tok, idem: key, body: sale})
	require.Equal(t, 201, r.status, string(r.body))
	require.Equal(t, int64(1000), e.balance(e.cards[0]))
	before := e.fingerprint()
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: tok, idem: newIdem(), body: sale})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Equal(t, before, e.fingerprint())

	// Close the day: the ledger expected the seeded cash top-ups and the sale.
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/day-close", bearer: tok, body: apitype.DayCloseRequest{Day: today, Counted: 3450}})
	require.Equal(t, 201, r.status, string(r.body))
	var dc apitype.DayCloseResponse
	r.json(t, &dc)
	require.Equal(t, apitype.DayCloseResponse{Store: "store-a", Day: today, Expected: 3500, Counted: 3450, Difference: -50}, dc)
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/day-close", bearer: tok, body: apitype.DayCloseRequest{Day: today, Counted: 3500}})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "already closed")
	// Another store's day is not this token's to close.
	r = e.do(request{method: "POST", path: "/v1/stores/store-b/day-close", bearer: tok, body: apitype.DayCloseRequest{Day: today, Counted: 0}})
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
	require.Equal(t, int64(3000), ev.Outstanding, "the sale's credit is not on its card")
	require.Equal(t, int64(300), ev.PendingLoads)
}

// GET /v1/hq/reports/products gives HQ and auditors the ledger's product
// report; a store may not read it, a bad day is refused.
func TestProductReportRoute(t *testing.T) {
	e := newEnv(t, envOptions{})
	term := e.enrolTerminal("bar-9")
	c := e.cards[0]
	bal := e.balance(c)
	res, err := e.ledger.Upload(context.Background(), org, [][]byte{e.debit(term, c, 1, bal, 350)})
	require.NoError(t, err)
	require.Equal(t, ledger.Accepted, res[0].Status, "%v", res[0].Err)
	want, err := e.ledger.Products(context.Background(), org, "fest", time.Time{})
	require.NoError(t, err)
	require.Equal(t, int64(350), want.Total)
	for _, who := range []string{"hq", "auditor"} {
		r := e.do(request{method: "GET", path: "/v1/hq/reports/products?event=fest", bearer: e.tokens[who]})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var got ledger.ProductReport
		r.json(t, &got)
		require.Equal(t, want, got, who)
	}
	day := want.Merchants[0].Day
	r := e.do(request{method: "GET", path: "/v1/hq/reports/products?event=fest&day=" + day, bearer: e.tokens["hq"]})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var one ledger.ProductReport
	r.json(t, &one)
	require.Equal(t, day, one.Day)
	require.Equal(t, int64(350), one.Total)
	r = e.do(request{method: "GET", path: "/v1/hq/reports/products?event=fest", bearer: e.tokens["store"]})
	require.Equal(t, http.StatusForbidden, r.status)
	r = e.do(request{method: "GET", path: "/v1/hq/reports/products?event=fest&day=10-07-2026", bearer: e.tokens["hq"]})
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, string(r.body), "YYYY-MM-DD")
}

// Money routes need an Idempotency-Key; a retry with the same key credits
// once; a sale or top-up cannot claim a card write (the credit is a load);
// a load's confirmation twice is a no-op and one that does not match is
// refused and changes nothing.
func TestStoreMoneyRoutes(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.tokens["store"]
	c := e.cards[0]
	before := e.fingerprint()
	for _, path := range []string{"/v1/stores/store-a/topups", "/v1/stores/store-a/sales"} {
		body := any(apitype.TopUpRequest{Card: c.hex(), Amount: 500})
		if path == "/v1/stores/store-a/sales" {
			body = apitype.SaleRequest{Card: c.hex(), Deposit: 200, Credit: 300}
		}
		r := e.do(request{method: "POST", path: path, bearer: tok, body: body})
		require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
		require.Contains(t, string(r.body), "Idempotency-Key")
		r = e.do(request{method: "POST", path: path, bearer: tok, idem: "not-a-uuid", body: body})
		require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	}
	// A claimed card write is not taken on trust any more.
	r := e.do(request{method: "POST", path: "/v1/stores/store-a/topups", bearer: tok, idem: newIdem(),
		body: []byte(`{"card":"` + c.hex() + `","amount":500,"write":{"seq":1,"balance_before":1000,"balance_after":1500}}`)})
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	require.Equal(t, before, e.fingerprint())

	// The same key twice: one top-up, one pending load.
	key := newIdem()
	var loads []string
	for range 2 {
		r = e.do(request{method: "POST", path: "/v1/stores/store-a/topups", bearer: tok, idem: key, body: apitype.TopUpRequest{Card: c.hex(), Amount: 500}})
		require.Equal(t, 201, r.status, string(r.body))
		var mr apitype.MoneyResponse
		r.json(t, &mr)
		require.Equal(t, "pending", mr.Status)
		loads = append(loads, mr.Load)
	}
	require.Equal(t, loads[0], loads[1])
	require.Equal(t, int64(1000), e.balance(c))
	r = e.do(request{method: "GET", path: "/v1/card", card: c.token})
	require.Equal(t, 200, r.status, string(r.body))
	var st apitype.CardStatus
	r.json(t, &st)
	require.Equal(t, int64(500), st.Pending, "shown as pending")
	require.Equal(t, int64(1000), st.Balance)

	confirm := func(w *apitype.CardWrite, idem string) response {
		return e.do(request{method: "POST", path: "/v1/stores/store-a/loads/" + loads[0] + "/written", bearer: tok, idem: idem,
			body: apitype.LoadWrittenRequest{Card: c.hex(), Write: w}})
	}
	// No key: refused.
	r = confirm(&apitype.CardWrite{Seq: 1, Before: 1000, After: 1500}, "")
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	// Balances that do not add the load's amount: refused, nothing changes.
	before = e.fingerprint()
	r = confirm(&apitype.CardWrite{Seq: 1, Before: 1000, After: 1400}, newIdem())
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "do not add the load's amount")
	require.Equal(t, before, e.fingerprint())
	// The right one, twice: loaded once.
	for range 2 {
		r = confirm(&apitype.CardWrite{Seq: 1, Before: 1000, After: 1500}, newIdem())
		require.Equal(t, 200, r.status, string(r.body))
	}
	require.Equal(t, int64(1500), e.balance(c))
	r = e.do(request{method: "GET", path: "/v1/card", card: c.token})
	r.json(t, &st)
	require.Equal(t, [2]int64{1500, 0}, [2]int64{st.Balance, st.Pending})
}

// TestBlockAndReplaceRefusals: bad input to the block and replace routes
// is a 400 with a one-line message and changes nothing; a second block
// says so; a store replaces only with a card it holds by the custody log;
// a replacement of a replaced card is refused.
func TestBlockAndReplaceRefusals(t *testing.T) {
	e := newEnv(t, envOptions{cards: 3})
	store := e.tokens["store"]
	a, b := e.cards[0], e.cards[1]
	for _, r := range []request{
		{method: "POST", path: "/v1/stores/store-a/cards/" + a.hex() + "/block", bearer: store, body: apitype.BlockRequest{}},
		{method: "POST", path: "/v1/stores/store-a/cards/zz/block", bearer: store, body: apitype.BlockRequest{Reason: "lost"}},
		{method: "POST", path: "/v1/stores/store-a/replacements", bearer: store, idem: newIdem(), body: apitype.ReplaceRequest{Old: a.hex(), New: a.hex(), Reason: "lost"}},
		{method: "POST", path: "/v1/stores/store-a/replacements", bearer: store, idem: newIdem(), body: apitype.ReplaceRequest{Old: a.hex(), New: "xyz", Reason: "lost"}},
		{method: "POST", path: "/v1/stores/store-a/replacements", bearer: store, idem: newIdem(), body: apitype.ReplaceRequest{Old: a.hex(), New: b.hex(), Reason: "\x00"}},
	} {
		before := e.fingerprint()
		resp := e.do(r)
		require.Equal(t, http.StatusBadRequest, resp.status, "%s %s", r.path, resp.body)
		require.NotContains(t, string(resp.body), "\n\"", "one line")
		require.Equal(t, before, e.fingerprint(), "%s changed something", r.path)
	}
	resp := e.do(request{method: "POST", path: "/v1/stores/store-a/cards/" + a.hex() + "/block", bearer: store, body: apitype.BlockRequest{Reason: "lost"}})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	var br apitype.BlockResponse
	resp.json(t, &br)
	require.False(t, br.Again)
	resp = e.do(request{method: "POST", path: "/v1/stores/store-a/cards/" + a.hex() + "/block", bearer: store, body: apitype.BlockRequest{Reason: "lost"}})
	resp.json(t, &br)
	require.True(t, br.Again)
	// The store must hold the new card by the custody log, as for a sale.
	before := e.fingerprint()
	resp = e.do(request{method: "POST", path: "/v1/stores/store-a/replacements", bearer: store, idem: newIdem(), body: apitype.ReplaceRequest{Old: a.hex(), New: b.hex(), Reason: "lost"}})
	require.Equal(t, http.StatusConflict, resp.status, string(resp.body))
	require.Contains(t, string(resp.body), "does not hold the new card by the custody log")
	require.Equal(t, before, e.fingerprint())
	e.stock("store-a")
	resp = e.do(request{method: "POST", path: "/v1/stores/store-a/replacements", bearer: store, idem: newIdem(), body: apitype.ReplaceRequest{Old: a.hex(), New: b.hex(), Reason: "lost"}})
	require.Equal(t, http.StatusCreated, resp.status, string(resp.body))
	var moved int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT count(*) FROM store_card_moves WHERE kind = 'sold' AND card_id = $1`, b.uid).Scan(&moved))
	require.Equal(t, 1, moved, "the new card left the store's stock")
	before = e.fingerprint()
	resp = e.do(request{method: "POST", path: "/v1/stores/store-a/replacements", bearer: store, idem: newIdem(), body: apitype.ReplaceRequest{Old: a.hex(), New: e.cards[2].hex(), Reason: "lost"}})
	require.Equal(t, http.StatusConflict, resp.status, string(resp.body))
	require.Equal(t, before, e.fingerprint())
}
