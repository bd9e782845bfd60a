package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/txid"
)

// voucherBody is apitype.VoucherRedeemRequest as a client sends it (an
// apitype.Secret does not encode).
type voucherBody struct {
	Card string `json:"card,omitempty"`
	Code string `json:"code"`
}

// TestCorrectionsAPI: a store corrects a payment within the threshold at
// once; HQ's correction above it waits for a second HQ token, which the
// asking token cannot be; the merchant is charged back, the card gets a
// pending load, the payment is never corrected beyond itself, and every
// step is audited with who did it.
func TestCorrectionsAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	tok, err := api.IssueToken(ctx, e.pool, api.TokenRequest{Org: org, Role: api.RoleHQ, TTL: time.Hour}, e.clock.Now())
	require.NoError(t, err)
	hq, hq2, store := e.tokens["hq"], tok.Reveal(), e.tokens["store"]
	require.NoError(t, e.ledger.SetCorrectionThreshold(ctx, org, 300))
	term := e.enrolTerminal("bar-1")
	c := e.cards[0]
	res, err := e.ledger.Upload(ctx, org, [][]byte{e.debit(term, c, 1, 1000, 800)})
	require.NoError(t, err)
	require.Equal(t, ledger.Accepted, res[0].Status)
	pay := res[0].ID.String()
	merchant := func() int64 {
		b, err := e.ledger.Balance(ctx, org, ledger.Merchant, "bar")
		require.NoError(t, err)
		return b
	}

	r := e.do(request{method: "POST", path: "/v1/stores/store-a/corrections", bearer: store, idem: newIdem(),
		body: apitype.CorrectionRequest{Payment: pay, Amount: 200, Reason: "one beer too many"}})
	require.Equal(t, 201, r.status, string(r.body))
	var c1 apitype.Correction
	r.json(t, &c1)
	require.Equal(t, "posted", c1.Status)
	require.Equal(t, c1.ID, c1.Load)
	require.Equal(t, int64(600), merchant())

	r = e.do(request{method: "POST", path: "/v1/hq/corrections", bearer: hq, idem: newIdem(),
		body: apitype.CorrectionRequest{Payment: pay, Amount: 500, Reason: "the round was refused"}})
	require.Equal(t, 201, r.status, string(r.body))
	var c2 apitype.Correction
	r.json(t, &c2)
	require.Equal(t, "awaiting_approval", c2.Status)
	require.Equal(t, int64(600), merchant())

	before := e.fingerprint()
	for _, req := range []request{
		{method: "POST", path: "/v1/hq/corrections/" + c2.ID + "/approve", bearer: hq},    // who asked
		{method: "POST", path: "/v1/hq/corrections/" + c2.ID + "/approve", bearer: store}, // not HQ
		{method: "POST", path: "/v1/hq/corrections", bearer: hq2, idem: newIdem(), // beyond the payment
			body: apitype.CorrectionRequest{Payment: pay, Amount: 101, Reason: "more"}},
		{method: "POST", path: "/v1/stores/store-b/corrections", bearer: store, idem: newIdem(), // another store's desk
			body: apitype.CorrectionRequest{Payment: pay, Amount: 1, Reason: "x"}},
		{method: "POST", path: "/v1/hq/corrections", bearer: hq2, idem: newIdem(),
			body: apitype.CorrectionRequest{Payment: "nope", Amount: 1, Reason: "x"}},
	} {
		r = e.do(req)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden, http.StatusConflict}, r.status, "%s: %s", req.path, r.body)
	}
	require.Equal(t, before, e.fingerprint())

	r = e.do(request{method: "POST", path: "/v1/hq/corrections/" + c2.ID + "/approve", bearer: hq2})
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &c2)
	require.Equal(t, "posted", c2.Status)
	require.NotEqual(t, c2.RequestedBy, c2.ApprovedBy)
	require.Equal(t, int64(100), merchant())
	loads, err := e.ledger.PendingLoads(ctx, org, c.uid)
	require.NoError(t, err)
	require.Len(t, loads, 2, "both corrections wait for the card's next write")

	r = e.do(request{method: "GET", path: "/v1/hq/corrections", bearer: e.tokens["auditor"]})
	require.Equal(t, 200, r.status, string(r.body))
	var list apitype.CorrectionList
	r.json(t, &list)
	require.Len(t, list.Corrections, 2)

	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/stores/{store}/corrections' AND outcome = 'ok' AND actor LIKE 'store:1:%'
		AND detail LIKE '%one beer too many%'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/corrections/{correction}/approve' AND outcome = 'ok' AND actor LIKE 'hq:1:%'
		AND detail LIKE '%asked by hq:1:%'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/corrections/{correction}/approve' AND status = 403 AND actor = $1`, c2.RequestedBy),
		"the refused self-approval is audited")
	require.NoError(t, e.ledger.Verify(ctx))
}

// TestVouchersAPI: HQ issues vouchers, shown once and stored hashed; a
// store redeems one for a card, the card page another; a code redeemed
// twice is refused with the same answer as an unknown one; the card's
// status shows its non-refundable part once written.
func TestVouchersAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	r := e.do(request{method: "POST", path: "/v1/hq/vouchers", bearer: e.tokens["hq"],
		body: apitype.VoucherBatchRequest{Event: "fest", Amount: 250, Count: 3, Expires: e.clock.Now().Add(24 * time.Hour), Label: "crew drinks"}})
	require.Equal(t, 201, r.status, string(r.body))
	var vb apitype.VoucherBatchResponse
	r.json(t, &vb)
	require.Len(t, vb.Codes, 3)
	var stored int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM vouchers WHERE position(convert_to($1, 'UTF8') in code_hash) > 0`,
		strings.ReplaceAll(vb.Codes[0], "-", "")).Scan(&stored))
	require.Zero(t, stored)
	for _, code := range vb.Codes {
		require.NotContains(t, e.logs.String(), code, "no code in the logs")
		require.Zero(t, e.auditCount(`detail LIKE '%' || $1 || '%'`, code), "nor in the audit")
	}

	a, b := e.cards[0], e.cards[1]
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/vouchers", bearer: e.tokens["store"], idem: newIdem(),
		body: voucherBody{Card: a.hex(), Code: vb.Codes[0]}})
	require.Equal(t, 201, r.status, string(r.body))
	var m apitype.MoneyResponse
	r.json(t, &m)
	require.Equal(t, int64(250), m.Amount)
	load, err := ledgerID(m.Load)
	require.NoError(t, err)
	require.NoError(t, e.ledger.LoadPending(ctx, org, a.uid, load, nil))

	r = e.do(request{method: "POST", path: "/v1/card/vouchers", card: b.token, body: voucherBody{Code: strings.ToLower(vb.Codes[1])}})
	require.Equal(t, 201, r.status, string(r.body))

	before := e.fingerprint()
	for _, req := range []request{
		{method: "POST", path: "/v1/card/vouchers", card: b.token, body: voucherBody{Code: vb.Codes[0]}},           // used by a
		{method: "POST", path: "/v1/card/vouchers", card: b.token, body: voucherBody{Code: vb.Codes[1]}},           // used by b
		{method: "POST", path: "/v1/card/vouchers", card: b.token, body: voucherBody{Code: "AAAA-AAAA-AAAA-AAAA"}}, // unknown
	} {
		r = e.do(req)
		require.Equal(t, http.StatusConflict, r.status, string(r.body))
		require.Contains(t, string(r.body), "unknown, used or expired")
	}
	require.Equal(t, before, e.fingerprint())

	r = e.do(request{method: "GET", path: "/v1/card", card: a.token})
	require.Equal(t, 200, r.status, string(r.body))
	var st apitype.CardStatus
	r.json(t, &st)
	require.Equal(t, int64(1250), st.Balance)
	require.Equal(t, int64(250), st.NonRefundable)
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/vouchers' AND outcome = 'ok' AND detail LIKE '%3 of 250%'`))
	require.Equal(t, 3, e.auditCount(`action = 'POST /v1/card/vouchers' AND outcome = 'failed'`))
	require.NoError(t, e.ledger.Verify(ctx))
}

func ledgerID(s string) (txid.ID, error) {
	var u pgtype.UUID
	err := u.Scan(s)
	return txid.ID(u.Bytes), err
}
