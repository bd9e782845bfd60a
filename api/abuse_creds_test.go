package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/httpsig"
)

// forgedToken is a staff token of the right shape that no one issued.
func forgedToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return fmt.Sprintf("lc1_%d_%s", org, base64.RawURLEncoding.EncodeToString(b))
}

// forgedTerminal signs with a key of its own under keyID.
func (e *env) forgedTerminal(keyID string) *terminal {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(e.t, err)
	s := httpsig.NewSigner(priv, keyID)
	s.Now = e.clock.Now
	return &terminal{signer: s}
}

// Issue 17, build point 1: a forged but well-formed staff token or
// terminal signature skipped the anonymous budget and cost a database
// lookup and an audit record each, from any number of addresses. Against
// the real server: failures take tokens of a failed-credentials budget;
// once it is spent, a credential that did not authenticate recently is
// refused with 429 before any database work, a credential that failed is
// refused with 401 before any, and the staff and terminals that
// authenticated go on. The server's clock stands still: counts are exact.
func TestAbuseFailedCredentials(t *testing.T) {
	const budget = 30
	e := newEnv(t, envOptions{cards: 1, noRollUp: true, limits: api.Limits{FailedCredentials: 1, FailedCredentialsBurst: budget}})
	term := e.enrolTerminal("bar-1")
	sk := e.sessionKey(term)
	acquires := func() int64 { return e.pool.Stat().AcquireCount() }
	pending := "/v1/terminal/pending-loads?card=" + fmt.Sprintf("%x", e.cards[0].uid)
	failures := 0

	// A key id no terminal has: looked up once, then refused with 401
	// from any address without a lookup.
	ghost := e.forgedTerminal(api.KeyID(org, "ghost"))
	status, _ := e.sendFrom("127.50.0.1", request{method: "GET", path: pending, terminal: ghost})
	require.Equal(t, http.StatusUnauthorized, status)
	failures++
	before := acquires()
	status, _ = e.sendFrom("127.50.0.2", request{method: "GET", path: pending, terminal: ghost})
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, before, acquires(), "a key id that failed is refused without a lookup")

	// A bad signature under a real terminal's key id is not held against
	// the terminal: looked up each time, and the terminal goes on.
	impostor := e.forgedTerminal(api.KeyID(org, "bar-1"))
	for _, ip := range []string{"127.50.0.3", "127.50.0.4"} {
		before := acquires()
		status, _ := e.sendFrom(ip, request{method: "GET", path: pending, terminal: impostor})
		require.Equal(t, http.StatusUnauthorized, status)
		require.Greater(t, acquires(), before)
		failures++
	}
	require.Equal(t, http.StatusOK, e.do(request{method: "GET", path: pending, terminal: term, session: sk.KeyID}).status)

	// The flood: a fresh forged token from a fresh address each time.
	const flood = 400
	var unauthorized, refused int
	var failed []string
	before = acquires()
	for i := range flood {
		tok := forgedToken()
		status, retry := e.sendFrom(fmt.Sprintf("127.51.%d.%d", i/250, 1+i%250), request{method: "GET", path: "/v1/hq/stores", bearer: tok})
		switch status {
		case http.StatusUnauthorized:
			unauthorized++
			failed = append(failed, tok)
		case http.StatusTooManyRequests:
			refused++
			require.Equal(t, "1", retry)
		default:
			t.Fatalf("forged token: %d", status)
		}
	}
	t.Logf("%d forged tokens from %d addresses: %d looked up (401), %d refused (429); %d database acquisitions",
		flood, flood, unauthorized, refused, acquires()-before)
	require.Equal(t, budget-failures, unauthorized, "the budget's failures, and not one more")
	require.Equal(t, flood-unauthorized, refused)
	require.EqualValues(t, 2*unauthorized, acquires()-before, "a lookup and an audit record for each failure the budget took, nothing for a refusal")

	// A token that failed, from a fresh address: 401 without a lookup.
	before = acquires()
	status, _ = e.sendFrom("127.52.0.1", request{method: "GET", path: "/v1/hq/stores", bearer: failed[0]})
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, before, acquires())

	// Those who authenticated go on: HQ from anywhere (its token is a
	// secret), the terminal from its address, and anonymous requests.
	status, _ = e.sendFrom("127.52.0.2", request{method: "GET", path: "/v1/hq/stores", bearer: e.tokens["hq"]})
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, http.StatusOK, e.do(request{method: "GET", path: pending, terminal: term, session: sk.KeyID}).status)
	status, _ = e.sendFrom("127.52.0.3", request{method: "GET", path: "/healthz"})
	require.Equal(t, http.StatusOK, status)
	// While the budget is spent, a credential not seen to authenticate
	// waits like a forgery: the terminal from another address, a token
	// not used before. Neither costs the database anything.
	before = acquires()
	status, _ = e.sendFrom("127.52.0.4", request{method: "GET", path: pending, terminal: term, session: sk.KeyID})
	require.Equal(t, http.StatusTooManyRequests, status)
	status, _ = e.sendFrom("127.52.0.5", request{method: "GET", path: "/v1/audit/records", bearer: e.tokens["auditor"]})
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, before, acquires())

	// Every lookup that failed is an audit record of the platform
	// (organizer 0), which loopcard audit records --platform reads; the
	// refusals without a lookup are only counted.
	recs, err := api.AuditRecords(context.Background(), e.pool, 0, 0)
	require.NoError(t, err)
	denied := 0
	for _, r := range recs {
		if r.Outcome == "denied" && r.Status == http.StatusUnauthorized && r.Actor == "anonymous" {
			denied++
		}
	}
	require.Equal(t, budget, denied)
	m := e.do(request{method: "GET", path: "/metrics", bearer: e.tokens["hq"]})
	require.Equal(t, http.StatusOK, m.status)
	require.Contains(t, string(m.body), `loopcard_requests_refused_total{reason="failed_credential"} 2`+"\n")
	require.Contains(t, string(m.body), fmt.Sprintf(`loopcard_requests_refused_total{reason="failed_credentials_budget"} %d`+"\n", refused+2))
}

// Issue 17, build point 1: a card page took a well-formed staff token or
// signature header as a credential and skipped the anonymous budget,
// though no credential opens a page and the page reads the database.
// Forged headers on card pages now take the budget's tokens like any.
func TestAbuseCardPageCredentialHeaders(t *testing.T) {
	const budget = 5
	e := newEnv(t, envOptions{cards: 1, noRollUp: true, limits: api.Limits{Anonymous: 1, AnonymousBurst: budget}})
	served, refused := 0, 0
	for i := range 2 * budget {
		r := request{method: "GET", path: "/c/" + randomCardToken(), bearer: forgedToken()}
		if i%2 == 1 {
			r = request{method: "GET", path: "/c/" + randomCardToken(), header: map[string]string{"Signature-Input": `sig=();keyid="1:t"`}}
		}
		switch status, _ := e.sendFrom(fmt.Sprintf("127.53.0.%d", i+1), r); status {
		case http.StatusTooManyRequests:
			refused++
		default:
			served++
		}
	}
	require.Equal(t, budget, served)
	require.Equal(t, budget, refused)
}
