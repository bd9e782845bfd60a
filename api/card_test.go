package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/sepa"
)

// wrongPIN returns a valid PIN other than the card's.
func wrongPIN(c testCard) string {
	if c.pin == "000000" {
		return "000001"
	}
	return "000000"
}

func TestCardholderFlow(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.cards[0]

	r := e.do(request{method: "GET", path: "/v1/card", card: c.token})
	require.Equal(t, 200, r.status, string(r.body))
	var st apitype.CardStatus
	r.json(t, &st)
	require.Equal(t, apitype.CardStatus{Card: c.hex(), Event: "fest", Status: "active", Balance: 1000}, st)

	// History needs the PIN.
	r = e.do(request{method: "GET", path: "/v1/card/history", card: c.token})
	require.Equal(t, http.StatusForbidden, r.status)
	r = e.do(request{method: "GET", path: "/v1/card/history", card: c.token, pin: c.pin})
	require.Equal(t, 200, r.status, string(r.body))
	var h apitype.History
	r.json(t, &h)
	require.Len(t, h.TopUps, 1)
	require.Equal(t, int64(1000), h.TopUps[0].Amount)
	require.Equal(t, "cash", h.TopUps[0].Channel)

	// A cash top-up at the store shows in balance and history.
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/topups", bearer: e.tokens["store"], idem: newIdem(),
		body: apitype.TopUpRequest{Card: c.hex(), Amount: 500}})
	require.Equal(t, 201, r.status, string(r.body))
	var mr apitype.MoneyResponse
	r.json(t, &mr)
	require.Equal(t, int64(1000), e.balance(c), "pending until the store confirms the card write")
	r = e.do(request{method: "POST", path: "/v1/stores/store-a/loads/" + mr.Load + "/written", bearer: e.tokens["store"], idem: newIdem(),
		body: apitype.LoadWrittenRequest{Card: c.hex(), Write: &apitype.CardWrite{Seq: 1, Before: 1000, After: 1500}}})
	require.Equal(t, 200, r.status, string(r.body))
	require.Equal(t, int64(1500), e.balance(c))

	// Refund request with payout details; a second one is refused.
	refund := apitype.RefundRequest{Name: "Ada Lovelace", IBAN: "DE89 3704 0044 0532 0130 00"}
	r = e.do(request{method: "POST", path: "/v1/card/refund", card: c.token, pin: c.pin, body: refund})
	require.Equal(t, 201, r.status, string(r.body))
	var rr apitype.RefundResponse
	r.json(t, &rr)
	require.Equal(t, int64(1500), rr.Credit)
	require.Equal(t, "pending", rr.Status)
	require.Zero(t, rr.Amount, "fixed at payout")
	require.Equal(t, int64(1500), e.balance(c), "the credit stays on the card until the payout fixes it")
	r = e.do(request{method: "POST", path: "/v1/card/refund", card: c.token, pin: c.pin, body: refund})
	require.Equal(t, http.StatusConflict, r.status)
	require.Contains(t, string(r.body), "a refund is already requested for this card")
	r = e.do(request{method: "GET", path: "/v1/card", card: c.token})
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &st)
	require.Equal(t, "refunded", st.Status)
	require.Equal(t, &apitype.RefundStatus{ID: rr.ID, Status: "pending"}, st.Refund)
	r = e.do(request{method: "POST", path: "/v1/card/refund", card: e.cards[1].token, pin: e.cards[1].pin,
		body: apitype.RefundRequest{Name: "x", IBAN: "DE00 0000 0000 0000 0000 00"}})
	require.Equal(t, http.StatusBadRequest, r.status, "IBAN checksum")

	// Claim with a profile, log in, export, erase.
	claim := claimBody{Email: "ada@example.org", Password: "correct horse battery"}
	// Without consent to keep the email, nothing is kept.
	before := e.fingerprint()
	for _, co := range []apitype.Consent{
		{},
		{Notice: "2026-11"},
		{Purposes: []string{apitype.ConsentProfile}},
		{Purposes: []string{apitype.ConsentProfile, "marketing"}, Notice: "2026-11"},
	} {
		claim.Consent = co
		r = e.do(request{method: "POST", path: "/v1/card/claim", card: c.token, pin: c.pin, body: claim})
		require.Equal(t, http.StatusBadRequest, r.status, "%+v: %s", co, r.body)
		require.Contains(t, string(r.body), "consent")
	}
	require.Equal(t, before, e.fingerprint())
	claim.Consent = apitype.Consent{Purposes: []string{apitype.ConsentProfile}, Notice: "2026-11"}
	r = e.do(request{method: "POST", path: "/v1/card/claim", card: c.token, pin: c.pin, body: claim})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	var cl apitype.ClaimResponse
	r.json(t, &cl)
	require.Equal(t, c.hex(), cl.Card)
	var lr apitype.LoginResponse
	var stored string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT password_hash FROM api_profiles`).Scan(&stored))
	require.True(t, strings.HasPrefix(stored, "$argon2id$v=19$"), stored)
	var sealed string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT email_sealed::text || coalesce((SELECT string_agg(payout_sealed::text, '') FROM api_refund_requests), '') FROM api_profiles`).Scan(&sealed))
	require.NotContains(t, sealed, "ada@example.org")
	require.NotContains(t, sealed, "Lovelace")

	// Another card claimed by the same email needs the password; the
	// answer does not tell (TestClaimDoesNotRevealEmail).
	c2 := e.cards[1]
	r = e.do(request{method: "POST", path: "/v1/card/claim", card: c2.token, pin: c2.pin,
		body: claimBody{Email: claim.Email, Password: "wrong password!", Consent: claim.Consent}})
	require.Equal(t, http.StatusAccepted, r.status)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM api_profile_cards`), "a wrong password links nothing")
	r = e.do(request{method: "POST", path: "/v1/card/claim", card: c2.token, pin: c2.pin, body: claim})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	require.Equal(t, 2, e.count(`SELECT count(*) FROM api_profile_cards`))

	// A claimed card's history and refund are its profile's: the QR token
	// and the PIN alone are refused, and change nothing.
	before = e.fingerprint()
	for _, req := range []request{
		{method: "GET", path: "/v1/card/history", card: c.token, pin: c.pin},
		{method: "GET", path: "/v1/card/history", card: c2.token, pin: c2.pin},
		{method: "POST", path: "/v1/card/refund", card: c2.token, pin: c2.pin, body: refund},
	} {
		r = e.do(req)
		require.Equal(t, http.StatusForbidden, r.status, req.path)
		require.Contains(t, string(r.body), "card is claimed: log in to its profile")
	}
	require.Equal(t, before, e.fingerprint())
	// The balance still shows with the QR token alone.
	require.Equal(t, 200, e.do(request{method: "GET", path: "/v1/card", card: c2.token}).status)

	r = e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: "ADA@example.org", Password: "nope nope nope"}})
	require.Equal(t, http.StatusUnauthorized, r.status)
	r = e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: "nobody@example.org", Password: "nope nope nope"}})
	require.Equal(t, http.StatusUnauthorized, r.status)
	r = e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: "ADA@example.org", Password: claim.Password}})
	require.Equal(t, 200, r.status, string(r.body))
	r.json(t, &lr)

	// A profile refunds its own cards only.
	r = e.do(request{method: "POST", path: "/v1/profile/cards/" + c2.hex() + "/refund", bearer: lr.Token, body: refund})
	require.Equal(t, 201, r.status, string(r.body))
	before = e.fingerprint()
	r = e.do(request{method: "POST", path: "/v1/profile/cards/" + e.cards[2].hex() + "/refund", bearer: lr.Token, body: refund})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, before, e.fingerprint())

	r = e.do(request{method: "GET", path: "/v1/profile", bearer: lr.Token})
	require.Equal(t, 200, r.status, string(r.body))
	var ex apitype.ProfileExport
	r.json(t, &ex)
	require.Equal(t, "ada@example.org", ex.Email)
	require.Len(t, ex.Cards, 2)
	// The refund of c was requested with its QR token and PIN before the
	// claim: it is not the profile's (TestProfileExportsOnlyItsOwnData).
	require.Len(t, ex.Refunds, 1)
	require.Equal(t, c2.hex(), ex.Refunds[0].Card)
	require.Equal(t, refund, ex.Refunds[0].Payout)
	// The consents given at the claims are in the export.
	require.Len(t, ex.Consents, 2)
	for i, card := range []testCard{c, c2} {
		require.Equal(t, card.hex(), ex.Consents[i].Card)
		require.Equal(t, apitype.ConsentProfile, ex.Consents[i].Purpose)
		require.Equal(t, "2026-11", ex.Consents[i].Notice)
		require.WithinDuration(t, e.clock.Now(), ex.Consents[i].GivenAt, time.Second)
	}

	// Logging out ends that login only.
	r = e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: claim.Email, Password: claim.Password}})
	require.Equal(t, 200, r.status, string(r.body))
	var other apitype.LoginResponse
	r.json(t, &other)
	r = e.do(request{method: "POST", path: "/v1/profile/logout", bearer: other.Token})
	require.Equal(t, 200, r.status, string(r.body))
	require.JSONEq(t, `{"logged_out":true}`, string(r.body))
	require.Equal(t, http.StatusUnauthorized, e.do(request{method: "GET", path: "/v1/profile", bearer: other.Token}).status)
	require.Equal(t, http.StatusUnauthorized, e.do(request{method: "POST", path: "/v1/profile/logout", bearer: other.Token}).status)
	require.Equal(t, 200, e.do(request{method: "GET", path: "/v1/profile", bearer: lr.Token}).status, "the other login stays")

	r = e.do(request{method: "DELETE", path: "/v1/profile", bearer: lr.Token})
	require.Equal(t, 200, r.status, string(r.body))
	// Personal data is gone; the money and the transactions stay.
	var n int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM api_profiles) + (SELECT count(*) FROM api_profile_cards)
		+ (SELECT count(*) FROM api_refund_requests WHERE payout_sealed IS NOT NULL AND card_id <> $1) + (SELECT count(*) FROM api_tokens WHERE role = 'profile')
		+ (SELECT count(*) FROM api_consents)`, c.uid).Scan(&n))
	require.Zero(t, n)
	for _, card := range []testCard{c, c2} {
		rf, err := e.ledger.CardRefund(context.Background(), org, card.uid)
		require.NoError(t, err)
		require.Equal(t, ledger.RefundPending, rf.Status, "the refunds stand")
	}
	r = e.do(request{method: "GET", path: "/v1/profile", bearer: lr.Token})
	require.Equal(t, http.StatusUnauthorized, r.status, "the erased profile's token is gone")
	r = e.do(request{method: "GET", path: "/v1/card/history", card: c.token, pin: c.pin})
	require.Equal(t, 200, r.status)
	r.json(t, &h)
	require.Len(t, h.TopUps, 2)

	// No secret reached the logs or the audit trail.
	var audit string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT string_agg(actor || target || detail, ' ') FROM api_audit`).Scan(&audit))
	for _, secret := range []string{c.token, c.pin, claim.Password, claim.Email, lr.Token, "Lovelace", "DE89"} {
		require.NotContains(t, e.logs.String(), secret)
		require.NotContains(t, audit, secret)
	}
}

func TestPINBruteForce(t *testing.T) {
	e := newEnv(t, envOptions{cards: 6})
	c := e.cards[0]
	hist := func(pin string) response {
		return e.do(request{method: "GET", path: "/v1/card/history", card: c.token, pin: pin})
	}
	// Ten guesses at once: at most five are tried, the rest are refused
	// because the card locks.
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guess := fmt.Sprintf("%06d", i+1)
			if guess == c.pin {
				guess = "999999"
			}
			statuses[i] = hist(guess).status
		}()
	}
	wg.Wait()
	var tried, locked int
	for _, s := range statuses {
		switch s {
		case http.StatusUnauthorized:
			tried++
		case http.StatusTooManyRequests:
			locked++
		default:
			t.Fatalf("unexpected status %d; log:\n%s", s, e.logs.String())
		}
	}
	require.Equal(t, api.MaxPINFailures, tried)
	require.Equal(t, 10-api.MaxPINFailures, locked)

	// The right PIN is refused while the card is locked.
	r := hist(c.pin)
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Contains(t, string(r.body), "card locked")

	// After the lock, one attempt; a wrong one locks again for twice as long.
	e.clock.Add(api.PINLockBase + time.Second)
	require.Equal(t, http.StatusUnauthorized, hist(wrongPIN(c)).status)
	require.Equal(t, http.StatusTooManyRequests, hist(c.pin).status)
	e.clock.Add(api.PINLockBase + time.Second)
	require.Equal(t, http.StatusTooManyRequests, hist(c.pin).status, "second lock is longer")
	e.clock.Add(api.PINLockBase)
	require.Equal(t, 200, hist(c.pin).status)
	// Success resets the budget.
	for i := 0; i < api.MaxPINFailures-1; i++ {
		require.Equal(t, http.StatusUnauthorized, hist(wrongPIN(c)).status)
	}
	require.Equal(t, 200, hist(c.pin).status)

	// Failures were audited as denied.
	require.GreaterOrEqual(t, e.auditCount(`action = 'GET /v1/card/history' AND outcome = 'denied'`), 10)

	// Wrong PINs on many cards from one client raise an alert.
	for _, c := range e.cards[1:] {
		require.Equal(t, http.StatusUnauthorized, e.do(request{method: "GET", path: "/v1/card/history", card: c.token, pin: wrongPIN(c)}).status)
	}
	var kinds []string
	rows, err := e.pool.Query(context.Background(), `SELECT kind FROM api_alerts`)
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		kinds = append(kinds, k)
	}
	require.Contains(t, kinds, "pin_failures")

	// Malformed PINs and unknown tokens are refused.
	require.Equal(t, http.StatusBadRequest, hist("12ab56").status)
	r = e.do(request{method: "GET", path: "/v1/card", card: "AAAAAAAAAAAAAAAAAAAAAA"})
	require.Equal(t, http.StatusUnauthorized, r.status)
}

// A refund is pending, with no amount, until the payout fixes it; the card
// status then shows it paid with its amount (issue 17, M5).
func TestRefundPendingUntilPayout(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.cards[0]
	r := e.do(request{method: "POST", path: "/v1/card/refund", card: c.token, pin: c.pin,
		body: apitype.RefundRequest{Name: "Ada Lovelace", IBAN: "DE89370400440532013000"}})
	require.Equal(t, 201, r.status, string(r.body))
	var rr apitype.RefundResponse
	r.json(t, &rr)
	require.Equal(t, apitype.RefundResponse{ID: rr.ID, Card: c.hex(), Credit: 1000, Status: "pending"}, rr)

	status := func() apitype.CardStatus {
		r := e.do(request{method: "GET", path: "/v1/card", card: c.token})
		require.Equal(t, 200, r.status, string(r.body))
		var st apitype.CardStatus
		r.json(t, &st)
		return st
	}
	require.Equal(t, &apitype.RefundStatus{ID: rr.ID, Status: "pending"}, status().Refund)
	p, err := e.ledger.ExportPayouts(context.Background(), org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"},
		e.clock.Now(), 0)
	require.NoError(t, err)
	require.Equal(t, int64(1000), p.Total)
	st := status()
	amount := int64(1000)
	require.Equal(t, &apitype.RefundStatus{ID: rr.ID, Status: "paid", Amount: &amount}, st.Refund)
	require.Zero(t, st.Balance)
}
