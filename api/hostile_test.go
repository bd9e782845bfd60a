package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
	"github.com/loopcard/loopcard/personalize/handover/handoverdb"
)

// badUTF8 stands in a JSON body for a string with a byte that is not
// UTF-8; hostileBody puts the byte in after encoding.
const badUTF8 = "BAD-UTF8-HERE"

// hostileBody encodes v as JSON, with every badUTF8 replaced by a string
// holding the byte 0xff.
func hostileBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return bytes.ReplaceAll(b, []byte(badUTF8), []byte("a\xffb"))
}

// Issue 17 L2: a NUL in a name or an amount of 2^63-1 was answered with a
// 500 (PostgreSQL refused it, or the sum overflowed); an enrolment with a
// NUL in the terminal id lost its audit record. Every hostile input is now
// refused first, with a 400 and a one-line error, changes nothing, and
// leaves its audit record.
func TestHostileInputRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	term := e.enrolTerminal("till-1")
	card := e.cards[0]
	const nul = "a\x00b"
	long := strings.Repeat("x", 5000)
	maxInt := int64(math.MaxInt64)
	hq, store := e.tokens["hq"], e.tokens["store"]
	m := func(kv ...any) map[string]any {
		out := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name string
		req  request
	}{
		// Headquarters.
		{"store name with NUL", request{method: "POST", path: "/v1/hq/stores", bearer: hq, body: m("store", "s-1", "name", nul)}},
		{"store name not UTF-8", request{method: "POST", path: "/v1/hq/stores", bearer: hq, body: hostileBody(t, m("store", "s-1", "name", badUTF8))}},
		{"store name too long", request{method: "POST", path: "/v1/hq/stores", bearer: hq, body: m("store", "s-1", "name", long)}},
		{"store id with NUL", request{method: "POST", path: "/v1/hq/stores", bearer: hq, body: m("store", nul, "name", "S")}},
		{"terminal id with NUL", request{method: "POST", path: "/v1/hq/terminals", bearer: hq, body: m("terminal", nul, "merchant", "bar")}},
		{"terminal lifetime 2^63-1", request{method: "POST", path: "/v1/hq/terminals", bearer: hq, body: m("terminal", "t-9", "merchant", "bar", "ttl_seconds", maxInt)}},
		{"terminal lifetime negative", request{method: "POST", path: "/v1/hq/terminals", bearer: hq, body: m("terminal", "t-9", "merchant", "bar", "ttl_seconds", -1)}},
		{"terminal event too long", request{method: "POST", path: "/v1/hq/terminals", bearer: hq, body: m("terminal", "t-9", "merchant", "bar", "event", long)}},
		{"handover store with NUL", request{method: "POST", path: "/v1/hq/batches/1/handover", bearer: hq, body: m("store", nul, "count", 1)}},
		{"handover count 2^63-1", request{method: "POST", path: "/v1/hq/batches/1/handover", bearer: hq, body: m("store", "store-a", "count", maxInt)}},
		{"handover count zero", request{method: "POST", path: "/v1/hq/batches/1/handover", bearer: hq, body: m("store", "store-a", "count", 0)}},
		{"store key with NUL", request{method: "POST", path: "/v1/hq/stores/store-a/key", bearer: hq, body: m("vkey", nul)}},
		{"terminal path with NUL", request{method: "DELETE", path: "/v1/hq/terminals/a%00b", bearer: hq}},
		{"terminal path not UTF-8", request{method: "DELETE", path: "/v1/hq/terminals/a%FFb", bearer: hq}},
		{"event path with NUL", request{method: "GET", path: "/v1/hq/reports/events/a%00b", bearer: hq}},
		{"report date with NUL", request{method: "GET", path: "/v1/hq/reports/store-days?from=a%00b", bearer: hq}},
		{"product report event with NUL", request{method: "GET", path: "/v1/hq/reports/products?event=a%00b", bearer: hq}},
		{"product report without event", request{method: "GET", path: "/v1/hq/reports/products", bearer: hq}},
		{"product report day not a date", request{method: "GET", path: "/v1/hq/reports/products?event=fest&day=2026-13-01", bearer: hq}},
		{"audit after 2^63", request{method: "GET", path: "/v1/audit/records?after=9223372036854775808", bearer: hq}},

		// Terminals.
		{"enrolment terminal with NUL", request{method: "POST", path: "/v1/terminals/enrol", body: m("org", org, "terminal", nul, "token", "x")}},
		{"enrolment terminal not UTF-8", request{method: "POST", path: "/v1/terminals/enrol", body: hostileBody(t, m("org", org, "terminal", badUTF8, "token", "x"))}},
		{"enrolment organizer 2^63-1", request{method: "POST", path: "/v1/terminals/enrol", body: m("org", maxInt, "terminal", "t-1", "token", "x")}},
		{"enrolment token with NUL", request{method: "POST", path: "/v1/terminals/enrol", body: m("org", org, "terminal", "t-1", "token", nul)}},
		{"session key event with NUL", request{method: "POST", path: "/v1/terminal/session-keys", terminal: term, body: m("event", nul)}},

		// Stores.
		{"top-up of 2^63-1", request{method: "POST", path: "/v1/stores/store-a/topups", bearer: store, idem: newIdem(), body: m("card", card.hex(), "amount", maxInt)}},
		{"top-up of zero", request{method: "POST", path: "/v1/stores/store-a/topups", bearer: store, idem: newIdem(), body: m("card", card.hex(), "amount", 0)}},
		{"top-up negative", request{method: "POST", path: "/v1/stores/store-a/topups", bearer: store, idem: newIdem(), body: m("card", card.hex(), "amount", -1)}},
		{"top-up card with NUL", request{method: "POST", path: "/v1/stores/store-a/topups", bearer: store, idem: newIdem(), body: m("card", nul, "amount", 100)}},
		{"top-up store path with NUL", request{method: "POST", path: "/v1/stores/a%00b/topups", bearer: hq, idem: newIdem(), body: m("card", card.hex(), "amount", 100)}},
		{"sale deposit 2^63-1", request{method: "POST", path: "/v1/stores/store-a/sales", bearer: store, idem: newIdem(), body: m("card", card.hex(), "deposit", maxInt, "credit", 0)}},
		{"sale credit 2^63-1", request{method: "POST", path: "/v1/stores/store-a/sales", bearer: store, idem: newIdem(), body: m("card", card.hex(), "deposit", 1, "credit", maxInt)}},
		{"sale negative", request{method: "POST", path: "/v1/stores/store-a/sales", bearer: store, idem: newIdem(), body: m("card", card.hex(), "deposit", -1, "credit", 500)}},
		{"sale of nothing", request{method: "POST", path: "/v1/stores/store-a/sales", bearer: store, idem: newIdem(), body: m("card", card.hex(), "deposit", 0, "credit", 0)}},
		{"day close counted 2^63-1", request{method: "POST", path: "/v1/stores/store-a/day-close", bearer: store, body: m("day", "2026-01-02", "counted", maxInt)}},
		{"day close negative", request{method: "POST", path: "/v1/stores/store-a/day-close", bearer: store, body: m("day", "2026-01-02", "counted", -1)}},
		{"day close day with NUL", request{method: "POST", path: "/v1/stores/store-a/day-close", bearer: store, body: m("day", nul, "counted", 0)}},
		{"store kex alg with NUL", request{method: "PUT", path: "/v1/stores/store-a/kex-key", bearer: store, body: m("alg", nul)}},
		{"balance key card with NUL", request{method: "POST", path: "/v1/stores/store-a/balance-keys", bearer: store, body: m("card", nul)}},
		{"card events note with NUL", request{method: "POST", path: "/v1/stores/store-a/card-events", bearer: store,
			body: m("entries", []any{m("v", 1, "type", "sold", "org", org, "store", "store-a", "note", nul, "signer", "x")})}},

		// Cardholders.
		{"refund name with NUL", request{method: "POST", path: "/v1/card/refund", card: card.token, pin: card.pin, body: m("name", nul, "iban", "NL91ABNA0417164300")}},
		{"refund name not UTF-8", request{method: "POST", path: "/v1/card/refund", card: card.token, pin: card.pin,
			body: hostileBody(t, m("name", badUTF8, "iban", "NL91ABNA0417164300"))}},
		{"claim email with NUL", request{method: "POST", path: "/v1/card/claim", card: card.token, pin: card.pin,
			body: m("email", "a\x00@example.org", "password", "correct horse battery", "consent", m("purposes", []string{"profile"}, "notice", "v1"))}},
		{"claim notice with NUL", request{method: "POST", path: "/v1/card/claim", card: card.token, pin: card.pin,
			body: m("email", "a@example.org", "password", "correct horse battery", "consent", m("purposes", []string{"profile"}, "notice", nul))}},
		{"login email with NUL", request{method: "POST", path: "/v1/profile/login", body: m("org", org, "email", nul, "password", "pw")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			before := e.fingerprint()
			r := e.do(tc.req)
			require.Equal(t, 400, r.status, string(r.body))
			var body map[string]string
			r.json(t, &body)
			require.Len(t, body, 2, "a minimal error: the message and the request id")
			require.NotEmpty(t, body["error"])
			require.NotContains(t, body["error"], "\n")
			require.NotContains(t, body["error"], "\x00")
			require.Equal(t, r.header.Get("X-Request-Id"), body["request_id"])
			require.Equal(t, before, e.fingerprint(), "a refused request changes nothing")
			require.Equal(t, 1, e.auditCount(`request_id = $1 AND status = 400`, body["request_id"]), "the refusal is audited")
		})
	}
}

// Issue 17 L2: the audit writer stores what it is given, cleaned: a NUL
// and bytes that are not UTF-8 cannot make PostgreSQL refuse the record,
// and a long text is cut on a character boundary (a cut through "é" once
// made the record invalid UTF-8, and PostgreSQL refused it).
func TestAuditRecordNeverLost(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	// The terminal id is refused (400) but named in the record's target.
	for _, id := range []string{"a\x00b", badUTF8, strings.Repeat("é", 400)} {
		r := e.do(request{method: "POST", path: "/v1/terminals/enrol", body: hostileBody(t, map[string]any{"org": org, "terminal": id, "token": "x"})})
		require.Equal(t, 400, r.status, string(r.body))
		var target string
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT target FROM api_audit WHERE request_id = $1`,
			r.header.Get("X-Request-Id")).Scan(&target), "the audit record of %q", id)
		require.NotContains(t, target, "\x00")
	}
	// The provider's event id and payment id are cut to 100 bytes for the
	// record: on a character boundary.
	n := e.auditCount(`action = 'POST /v1/payments/webhook'`)
	ev := payment.Event{ID: "x" + strings.Repeat("é", 100), Type: "payment.other", Payment: "y" + strings.Repeat("é", 100), Org: org}
	status, err := e.payer.Deliver(ctx, ev)
	require.NoError(t, err)
	require.Equal(t, 200, status)
	require.Equal(t, n+1, e.auditCount(`action = 'POST /v1/payments/webhook'`), "the delivery is audited")
	require.NotContains(t, e.logs.String(), "audit record not written")

	// A provider's amount beyond any card's is refused, not summed.
	before := e.fingerprint()
	status, err = e.payer.Deliver(ctx, payment.Event{ID: "evt_big", Type: payment.TypePaymentSucceeded, Payment: "pay_big", Org: org,
		Card: e.cards[0].hex(), Amount: math.MaxInt64, Currency: "EUR", Created: e.clock.Now().Unix()})
	require.NoError(t, err)
	require.Equal(t, 400, status)
	require.Equal(t, before, e.fingerprint())
}

// Issue 17 L2: HQ of a second organizer got a 500 from /v1/audit/export.
// An organizer without a custody log gets a 404 that says what to do;
// with one, its own export, which verifies against HQ's key.
func TestAuditExportSecondOrganizer(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	const org2 = 2
	require.NoError(t, e.ledger.CreateOrganizer(ctx, org2, "Other Org"))
	require.NoError(t, e.ledger.AddEvent(ctx, org2, "fest", "Other Fest", time.Time{}))
	tok := map[api.Role]string{}
	for _, role := range []api.Role{api.RoleHQ, api.RoleAuditor} {
		tk, err := api.IssueToken(ctx, e.pool, api.TokenRequest{Org: org2, Role: role, TTL: time.Hour}, e.clock.Now())
		require.NoError(t, err)
		tok[role] = tk.Reveal()
	}
	for _, role := range []api.Role{api.RoleHQ, api.RoleAuditor} {
		r := e.do(request{method: "GET", path: "/v1/audit/export", bearer: tok[role]})
		require.Equal(t, 404, r.status, string(r.body))
		require.Contains(t, string(r.body), "no custody log")
	}

	// Organizer 2's log, with a batch of its own.
	hq, err := e.hsm.Signer(ctx, keys.Label{Name: keys.HQSign})
	require.NoError(t, err)
	hs, err := handover.NewSigner(handover.DefaultOrigin(org2), hq)
	require.NoError(t, err)
	l, err := handoverdb.Open(ctx, e.pool, handoverdb.Config{Org: org2, HQ: hs})
	require.NoError(t, err)
	bs := batch.NewBatches(e.pool)
	b, err := bs.Create(ctx, org2, "fest", 2, personalize.DefaultLayout())
	require.NoError(t, err)
	var numbers []string
	for slot := 1; slot <= 2; slot++ {
		id, err := personalize.NewCardID(b.No, slot)
		require.NoError(t, err)
		numbers = append(numbers, id.String())
	}
	_, err = l.IssueBatch(ctx, b.No, "fest", numbers)
	require.NoError(t, err)
	for _, role := range []api.Role{api.RoleHQ, api.RoleAuditor} {
		r := e.do(request{method: "GET", path: "/v1/audit/export", bearer: tok[role]})
		require.Equal(t, 200, r.status, string(r.body))
		fsys := fstest.MapFS{}
		tr := tar.NewReader(bytes.NewReader(r.body))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			if h.Typeflag == tar.TypeReg {
				data, err := io.ReadAll(tr)
				require.NoError(t, err)
				fsys[h.Name] = &fstest.MapFile{Data: data}
			}
		}
		rep, err := audit.Verify(fsys, audit.Options{HQKey: hs.PublicKey().Vkey()})
		require.NoError(t, err)
		require.True(t, rep.OK, "%+v", rep.Failure)
	}
}

// Issue 17 L3: staff tokens could not be revoked. HQ revokes one of its
// organizer's tokens and the next request with it is refused; the
// revocation is audited; another organizer's HQ cannot revoke it.
func TestStaffTokenRevoked(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	tok, err := api.IssueToken(ctx, e.pool, api.TokenRequest{Org: org, Role: api.RoleAuditor, TTL: time.Hour}, e.clock.Now())
	require.NoError(t, err)
	require.Equal(t, 200, e.do(request{method: "GET", path: "/v1/audit/records", bearer: tok.Reveal()}).status)

	require.NoError(t, e.ledger.CreateOrganizer(ctx, 2, "Other Org"))
	other, err := api.IssueToken(ctx, e.pool, api.TokenRequest{Org: 2, Role: api.RoleHQ, TTL: time.Hour}, e.clock.Now())
	require.NoError(t, err)
	r := e.do(request{method: "DELETE", path: "/v1/hq/tokens/" + tok.ID, bearer: other.Reveal()})
	require.Equal(t, 404, r.status, string(r.body))
	require.Equal(t, 200, e.do(request{method: "GET", path: "/v1/audit/records", bearer: tok.Reveal()}).status)

	r = e.do(request{method: "DELETE", path: "/v1/hq/tokens/" + tok.ID, bearer: e.tokens["hq"]})
	require.Equal(t, 200, r.status, string(r.body))
	r = e.do(request{method: "GET", path: "/v1/audit/records", bearer: tok.Reveal()})
	require.Equal(t, 401, r.status, "a revoked token is refused at once")
	require.Equal(t, 1, e.auditCount(`action = 'DELETE /v1/hq/tokens/{token}' AND outcome = 'ok' AND target = $1`, "token "+tok.ID))
	require.Equal(t, 400, e.do(request{method: "DELETE", path: "/v1/hq/tokens/xyz", bearer: e.tokens["hq"]}).status)
}
