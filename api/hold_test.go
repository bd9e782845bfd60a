package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/personalize/handover"
)

// Issue 17, build point 3: a client's claim never blocks a card or sells
// another store's card.

// TestSaleNeedsCustody (M3): the custody log says store-a holds the batch;
// store-b's sale of one of its cards is refused, changes nothing and is
// audited; store-a's sale of the same card goes through.
func TestSaleNeedsCustody(t *testing.T) {
	e := newEnv(t, envOptions{})
	stores, _, numbers := e.custody()
	hqTok := e.tokens["hq"]
	r := e.do(request{method: "POST", path: "/v1/hq/stores/store-a/key", bearer: hqTok, body: apitype.StoreKeyRequest{Vkey: stores["store-a"].PublicKey().Vkey()}})
	require.Equal(t, 201, r.status, string(r.body))
	r = e.do(request{method: "POST", path: fmt.Sprintf("/v1/hq/batches/%d/handover", e.batch), bearer: hqTok,
		body: apitype.HandOverRequest{Store: "store-a", Count: int64(len(numbers))}})
	require.Equal(t, 201, r.status, string(r.body))
	receipt, err := handover.NewReceipt(stores["store-a"], org, e.batch, "store-a", int64(len(numbers)), e.clock.Now())
	require.NoError(t, err)
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/receipts", bearer: e.tokens["store"], body: apitype.EntriesRequest{Entries: []handover.Entry{receipt}}})
	require.Equal(t, 201, r.status, string(r.body))

	sale := apitype.SaleRequest{Card: e.cards[0].hex(), Deposit: 200, Credit: 300}
	before := e.fingerprint()
	for _, tok := range []string{e.tokens["store-b"], hqTok} { // store-b itself, and HQ on its behalf
		r = e.do(request{method: "POST", path: "/v1/stores/store-b/sales", bearer: tok, idem: newIdem(), body: sale})
		require.Equal(t, http.StatusConflict, r.status, string(r.body))
		require.Contains(t, string(r.body), "store store-b does not hold this card by the custody log")
		require.Equal(t, before, e.fingerprint(), "a refused sale changes nothing")
	}
	require.Equal(t, 2, e.auditCount(`action = 'POST /v1/stores/{store}/sales' AND outcome = 'failed' AND status = 409
		AND detail LIKE 'sale refused: store store-b does not hold card %'`))

	r = e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: e.tokens["store"], idem: newIdem(), body: sale})
	require.Equal(t, 201, r.status, string(r.body))
}

// TestStoreClaimNeverBlocks (M4): a store's card write that clashes with
// terminal-signed debits, for a 1-cent top-up, raises an alert for HQ
// and blocks nothing; terminal-signed clone evidence still blocks.
func TestStoreClaimNeverBlocks(t *testing.T) {
	e := newEnv(t, envOptions{})
	term := e.enrolTerminal("bar-1")
	sk := e.sessionKey(term)
	victim := e.cards[0]
	upload := func(txs ...[]byte) apitype.BatchResponse {
		r := e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: txs}})
		require.Equal(t, 200, r.status, string(r.body))
		var br apitype.BatchResponse
		r.json(t, &br)
		return br
	}
	br := upload(e.debit(term, victim, 1, 1000, 100))
	require.Equal(t, "accepted", br.Results[0].Status)

	// The attack: a 1-cent cash top-up, confirmed with a card write that
	// claims the card sequence of the signed debit.
	r := e.do(request{method: "POST", path: "/v1/stores/store-a/topups", bearer: e.tokens["store"], idem: newIdem(),
		body: apitype.TopUpRequest{Card: victim.hex(), Amount: 1}})
	require.Equal(t, 201, r.status, string(r.body))
	var mr apitype.MoneyResponse
	r.json(t, &mr)
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/loads/" + mr.Load + "/written", bearer: e.tokens["store"], idem: newIdem(),
		body: apitype.LoadWrittenRequest{Card: victim.hex(), Write: &apitype.CardWrite{Seq: 1, Before: 1000, After: 1001}}})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, "active", e.cardStatus(victim), "a store's claim does not block the card")
	alerts := e.alerts(e.tokens["hq"])
	require.Len(t, alerts, 1)
	require.Equal(t, "write_conflict", alerts[0].Kind)
	require.False(t, alerts[0].Blocking)
	require.Equal(t, "open", alerts[0].State)

	// The card goes on: the next signed debit joins the chain of signed
	// debits, untouched by the claim.
	br = upload(e.debit(term, victim, 2, 900, 50))
	require.Equal(t, "accepted", br.Results[0].Status)
	require.Equal(t, "active", e.cardStatus(victim))

	// Terminal-signed clone evidence still blocks.
	br = upload(e.debit(term, victim, 2, 900, 70))
	require.Equal(t, apitype.TxResult{ID: br.Results[0].ID, Status: "held", Reason: "clone"}, br.Results[0])
	require.Equal(t, "blocked", e.cardStatus(victim))
	alerts = e.alerts(e.tokens["hq"])
	require.Len(t, alerts, 2)
	require.Equal(t, "clone", alerts[1].Kind)
	require.True(t, alerts[1].Blocking)
}

// TestReviewUnblockRefund: HQ reviews a blocking alert and unblocks the
// card, each audited; the cardholder's refund of a blocked card is
// refused before the review and accepted after; another organizer's HQ
// can neither review nor unblock.
func TestReviewUnblockRefund(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	require.NoError(t, e.ledger.CreateOrganizer(ctx, 2, "Other Org"))
	tok, err := api.IssueToken(ctx, e.pool, api.TokenRequest{Org: 2, Role: api.RoleHQ, TTL: time.Hour}, e.clock.Now())
	require.NoError(t, err)
	otherHQ, hqTok := tok.Reveal(), e.tokens["hq"]
	term := e.enrolTerminal("bar-1")
	refunded, unblocked := e.cards[0], e.cards[1]
	e.cloneDebits(term, refunded, 1)
	e.cloneDebits(term, unblocked, 1)
	alerts := e.alerts(hqTok)
	require.Len(t, alerts, 2)
	require.Empty(t, e.alerts(otherHQ), "another organizer sees none of them")

	// Before the review: no refund, no unblocking.
	refund := apitype.RefundRequest{Name: "Ada Lovelace", IBAN: "DE89 3704 0044 0532 0130 00"}
	before := e.fingerprint()
	r := e.do(request{method: "POST", path: "/v1/card/refund", card: refunded.token, pin: refunded.pin, body: refund})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "HQ reviews its alert first")
	r = e.do(request{method: "POST", path: "/v1/hq/cards/" + unblocked.hex() + "/unblock", bearer: hqTok, body: apitype.ReviewRequest{Reason: "looks fine"}})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "not reviewed")
	// Another organizer's HQ, and bad requests, change nothing.
	for _, req := range []request{
		{method: "POST", path: "/v1/hq/alerts/" + alerts[0].ID + "/review", bearer: otherHQ, body: apitype.ReviewRequest{Reason: "mine now"}},
		{method: "POST", path: "/v1/hq/cards/" + refunded.hex() + "/unblock", bearer: otherHQ, body: apitype.ReviewRequest{Reason: "mine now"}},
		{method: "POST", path: "/v1/hq/alerts/" + alerts[0].ID + "/review", bearer: hqTok, body: apitype.ReviewRequest{}},
		{method: "POST", path: "/v1/hq/alerts/" + alerts[0].ID + "/review", bearer: hqTok, body: apitype.ReviewRequest{Reason: "a\x00b"}},
		{method: "POST", path: "/v1/hq/alerts/not-a-uuid/review", bearer: hqTok, body: apitype.ReviewRequest{Reason: "x"}},
		{method: "POST", path: "/v1/hq/alerts/" + alerts[0].ID + "/review", bearer: e.tokens["store"], body: apitype.ReviewRequest{Reason: "x"}},
	} {
		r = e.do(req)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound}, r.status, "%s: %s", req.path, r.body)
	}
	require.Equal(t, before, e.fingerprint())

	// HQ reviews the first card's alert: the card may be refunded.
	r = e.do(request{method: "POST", path: "/v1/hq/alerts/" + alerts[0].ID + "/review", bearer: hqTok,
		body: apitype.ReviewRequest{Reason: "cloned at the bar; the holder keeps the original"}})
	require.Equal(t, 200, r.status, string(r.body))
	var rv apitype.AlertRecord
	r.json(t, &rv)
	require.Equal(t, "reviewed", rv.State)
	require.Regexp(t, `^hq:1:`, rv.ReviewedBy, "the HQ token that reviewed it")
	r = e.do(request{method: "POST", path: "/v1/hq/alerts/" + alerts[0].ID + "/review", bearer: hqTok, body: apitype.ReviewRequest{Reason: "again"}})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	bal := e.balance(refunded)
	r = e.do(request{method: "POST", path: "/v1/card/refund", card: refunded.token, pin: refunded.pin, body: refund})
	require.Equal(t, 201, r.status, string(r.body))
	var rr apitype.RefundResponse
	r.json(t, &rr)
	require.Equal(t, "pending", rr.Status, "the amount is fixed at payout")
	require.Equal(t, bal, rr.Credit)

	// The second card: reviewed, then unblocked.
	r = e.do(request{method: "POST", path: "/v1/hq/alerts/" + alerts[1].ID + "/review", bearer: hqTok, body: apitype.ReviewRequest{Reason: "a terminal fault"}})
	require.Equal(t, 200, r.status, string(r.body))
	r = e.do(request{method: "POST", path: "/v1/hq/cards/" + unblocked.hex() + "/unblock", bearer: otherHQ, body: apitype.ReviewRequest{Reason: "mine now"}})
	require.Equal(t, http.StatusNotFound, r.status, string(r.body))
	require.Equal(t, "blocked", e.cardStatus(unblocked))
	r = e.do(request{method: "POST", path: "/v1/hq/cards/" + unblocked.hex() + "/unblock", bearer: hqTok, body: apitype.ReviewRequest{Reason: "no clone: terminal fault"}})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, "active", e.cardStatus(unblocked))
	for _, a := range e.alerts(hqTok) {
		require.Equal(t, "reviewed", a.State)
	}

	// Each action has its audit record, with the reason.
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/alerts/{alert}/review' AND outcome = 'ok' AND actor LIKE 'hq:1:%'
		AND detail LIKE '%cloned at the bar%'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/cards/{card}/unblock' AND outcome = 'ok' AND target = $1
		AND detail = 'unblocked: no clone: terminal fault'`, "card "+unblocked.hex()))
	require.Equal(t, 2, e.auditCount(`action = 'POST /v1/hq/cards/{card}/unblock' AND org_id = 2 AND status = 404`), "another organizer's attempts, refused")
}

// alerts lists the ledger's alerts as the token's HQ sees them.
func (e *env) alerts(tok string) []apitype.AlertRecord {
	r := e.do(request{method: "GET", path: "/v1/hq/alerts", bearer: tok})
	require.Equal(e.t, 200, r.status, string(r.body))
	var out struct{ Alerts []apitype.AlertRecord }
	r.json(e.t, &out)
	var ledger []apitype.AlertRecord
	for _, a := range out.Alerts {
		if a.Source == "ledger" {
			ledger = append(ledger, a)
		}
	}
	return ledger
}

func (e *env) cardStatus(c testCard) string {
	info, err := e.ledger.Card(context.Background(), org, c.uid)
	require.NoError(e.t, err)
	return info.Status
}

// TestSaleNeedsCustodyOfTheCard (M3): HQ hands runs of one batch to two
// stores (loopcard handover send --first); each store sells only the
// cards of its own run, though both hold cards of the batch.
func TestSaleNeedsCustodyOfTheCard(t *testing.T) {
	e := newEnv(t, envOptions{})
	stores, _, numbers := e.custody()
	require.Len(t, numbers, 3)
	hqTok := e.tokens["hq"]
	for st, run := range map[string]apitype.HandOverRequest{
		"store-a": {Store: "store-a", Count: 2, First: numbers[0]},
		"store-b": {Store: "store-b", Count: 1, First: numbers[2]},
	} {
		r := e.do(request{method: "POST", path: "/v1/hq/stores/" + st + "/key", bearer: hqTok, body: apitype.StoreKeyRequest{Vkey: stores[st].PublicKey().Vkey()}})
		require.Equal(t, 201, r.status, string(r.body))
		r = e.do(request{method: "POST", path: fmt.Sprintf("/v1/hq/batches/%d/handover", e.batch), bearer: hqTok, body: run})
		require.Equal(t, 201, r.status, string(r.body))
		receipt, err := handover.NewReceipt(stores[st], org, e.batch, st, run.Count, e.clock.Now())
		require.NoError(t, err)
		tok := map[string]string{"store-a": e.tokens["store"], "store-b": e.tokens["store-b"]}[st]
		r = e.do(request{method: "POST", path: "/v1/stores/" + st + "/receipts", bearer: tok, body: apitype.EntriesRequest{Entries: []handover.Entry{receipt}}})
		require.Equal(t, 201, r.status, string(r.body))
	}
	// A run that overlaps one handed over before is refused.
	r := e.do(request{method: "POST", path: fmt.Sprintf("/v1/hq/batches/%d/handover", e.batch), bearer: hqTok,
		body: apitype.HandOverRequest{Store: "store-b", Count: 1, First: numbers[1]}})
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	r = e.do(request{method: "POST", path: fmt.Sprintf("/v1/hq/batches/%d/handover", e.batch), bearer: hqTok,
		body: apitype.HandOverRequest{Store: "store-b", Count: 1, First: "99-00001"}})
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))

	sale := func(c testCard) apitype.SaleRequest { return apitype.SaleRequest{Card: c.hex(), Deposit: 200} }
	before := e.fingerprint()
	r = e.do(request{method: "POST", path: "/v1/stores/store-b/sales", bearer: e.tokens["store-b"], idem: newIdem(), body: sale(e.cards[0])})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "store store-b does not hold this card by the custody log")
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: e.tokens["store"], idem: newIdem(), body: sale(e.cards[2])})
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Equal(t, before, e.fingerprint())
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/stores/{store}/sales' AND status = 409 AND detail = $1`,
		"sale refused: store store-b does not hold card "+numbers[0]))

	r = e.do(request{method: "POST", path: "/v1/stores/store-a/sales", bearer: e.tokens["store"], idem: newIdem(), body: sale(e.cards[0])})
	require.Equal(t, 201, r.status, string(r.body))
	r = e.do(request{method: "POST", path: "/v1/stores/store-b/sales", bearer: e.tokens["store-b"], idem: newIdem(), body: sale(e.cards[2])})
	require.Equal(t, 201, r.status, string(r.body))

	// The custody log holds store-b to its run too: its card_sold of
	// store-a's card is refused.
	id, err := handover.ParseCardNumber(numbers[1])
	require.NoError(t, err)
	sold, err := handover.SignCardEvents(stores["store-b"], org, e.clock.Now(), []handover.CardEvent{{Type: handover.TypeCardSold, Card: id, Store: "store-b"}})
	require.NoError(t, err)
	r = e.do(request{method: "POST", path: "/v1/stores/store-b/card-events", bearer: e.tokens["store-b"], body: apitype.EntriesRequest{Entries: sold}})
	require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
	require.Contains(t, string(r.body), "custody log entries refused")
}
