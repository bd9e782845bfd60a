package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
)

// count runs a counting query.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.pool.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}

// claimAndLogin claims card with a new profile and logs in to it.
func (e *env) claimAndLogin(c testCard, email, password string) apitype.LoginResponse {
	e.t.Helper()
	r := e.do(request{method: "POST", path: "/v1/card/claim", card: c.token, pin: c.pin,
		body: claimBody{Email: email, Password: password, Consent: consent}})
	require.Equal(e.t, http.StatusAccepted, r.status, string(r.body))
	r = e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: email, Password: password}})
	require.Equal(e.t, http.StatusOK, r.status, string(r.body))
	var lr apitype.LoginResponse
	r.json(e.t, &lr)
	return lr
}

// TestProfileExportsOnlyItsOwnData: a refund requested with a card's QR
// token and PIN before a profile claimed the card is the data of whoever
// held the card then. The profile's export does not show it and its
// erasure does not delete it (issue 17 M6).
func TestProfileExportsOnlyItsOwnData(t *testing.T) {
	e := newEnv(t, envOptions{cards: 2})
	c, c2 := e.cards[0], e.cards[1]

	// The first holder asks for a refund with the QR token and PIN.
	before := apitype.RefundRequest{Name: "Grace Hopper", IBAN: "GB82 WEST 1234 5698 7654 32"}
	r := e.do(request{method: "POST", path: "/v1/card/refund", card: c.token, pin: c.pin, body: before})
	require.Equal(t, http.StatusCreated, r.status, string(r.body))

	// The next holder claims the card (and another), and refunds the other.
	lr := e.claimAndLogin(c, "next@example.org", "next holder password")
	r = e.do(request{method: "POST", path: "/v1/card/claim", card: c2.token, pin: c2.pin,
		body: claimBody{Email: "next@example.org", Password: "next holder password", Consent: consent}})
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	own := apitype.RefundRequest{Name: "Ada Lovelace", IBAN: "DE89 3704 0044 0532 0130 00"}
	r = e.do(request{method: "POST", path: "/v1/profile/cards/" + c2.hex() + "/refund", bearer: lr.Token, body: own})
	require.Equal(t, http.StatusCreated, r.status, string(r.body))

	r = e.do(request{method: "GET", path: "/v1/profile", bearer: lr.Token})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.NotContains(t, string(r.body), "Hopper")
	require.NotContains(t, string(r.body), "GB82")
	var ex apitype.ProfileExport
	r.json(t, &ex)
	require.Len(t, ex.Cards, 2)
	require.Len(t, ex.Refunds, 1, "only the refund the profile asked for")
	require.Equal(t, own, ex.Refunds[0].Payout)
	require.Equal(t, c2.hex(), ex.Refunds[0].Card)

	// Erasure deletes the profile's payout details and leaves the first
	// holder's, whose request stays open.
	r = e.do(request{method: "DELETE", path: "/v1/profile", bearer: lr.Token})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM api_refund_requests WHERE card_id = $1 AND payout_sealed IS NOT NULL AND status = 'requested'`, c.uid))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM api_refund_requests WHERE card_id = $1 AND payout_sealed IS NULL AND status = 'cancelled'`, c2.uid))
}

// TestEmailIsHSMKeyed: a profile is found by an HMAC of its email made
// in the HSM (email-mac), not by a SHA-256 anyone can compute for a
// guessed address; rows of before (plain SHA-256) are MACed again from
// the sealed email before the server serves (issue 17 L4).
func TestEmailIsHSMKeyed(t *testing.T) {
	e := newEnv(t, envOptions{cards: 1})
	ctx := context.Background()
	const email = "ada@example.org"
	e.claimAndLogin(e.cards[0], email, "correct horse battery")

	legacy := sha256.Sum256([]byte("loopcard email v1\x00" + strconv.Itoa(org) + "\x00" + email))
	var stored []byte
	var version int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT email_mac, email_mac_version FROM api_profiles`).Scan(&stored, &version))
	require.NotEqual(t, legacy[:], stored, "no plain SHA-256 of the email")
	v, mac, err := e.hsm.EmailMAC(ctx, []byte("loopcard email v2\x00"+strconv.Itoa(org)+"\x00"+email))
	require.NoError(t, err)
	require.Equal(t, mac, stored, "the HSM's HMAC")
	require.Equal(t, v, version)
	require.Equal(t, 1, version)

	// A profile of before migration 024: its SHA-256 is not found until
	// the server MACs it again from the sealed email.
	_, err = e.pool.Exec(ctx, `UPDATE api_profiles SET email_mac = $1, email_mac_version = 0`, legacy[:])
	require.NoError(t, err)
	login := request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: email, Password: "correct horse battery"}}
	require.Equal(t, http.StatusUnauthorized, e.do(login).status)
	n, err := e.srv.RehashEmails(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = e.srv.RehashEmails(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "done once")
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT email_mac, email_mac_version FROM api_profiles`).Scan(&stored, &version))
	require.Equal(t, mac, stored)
	require.Equal(t, 1, version)
	require.Equal(t, http.StatusOK, e.do(login).status)
}

// TestClaimDoesNotRevealEmail: a claim answers alike for an email with a
// profile (and a wrong password) and for a new one, so a card's QR token
// and PIN are no oracle for whether an address has a profile (issue 17
// L4). The audit record says what happened.
func TestClaimDoesNotRevealEmail(t *testing.T) {
	e := newEnv(t, envOptions{cards: 3})
	e.claimAndLogin(e.cards[0], "taken@example.org", "the owner's password")

	answer := func(c testCard, email string) (int, map[string]any) {
		r := e.do(request{method: "POST", path: "/v1/card/claim", card: c.token, pin: c.pin,
			body: claimBody{Email: email, Password: "an attacker's guess", Consent: consent}})
		var m map[string]any
		require.NoError(t, json.Unmarshal(r.body, &m), string(r.body))
		require.Equal(t, c.hex(), m["card"])
		m["card"] = "CARD"
		return r.status, m
	}
	takenStatus, taken := answer(e.cards[1], "taken@example.org")
	freshStatus, fresh := answer(e.cards[2], "fresh@example.org")
	require.Equal(t, http.StatusAccepted, takenStatus)
	require.Equal(t, freshStatus, takenStatus)
	require.Equal(t, fresh, taken, "the same answer")

	// The taken email's card was not linked; the new one was.
	require.Zero(t, e.count(`SELECT count(*) FROM api_profile_cards WHERE card_id = $1`, e.cards[1].uid))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM api_profile_cards WHERE card_id = $1`, e.cards[2].uid))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/card/claim' AND detail LIKE 'not claimed: wrong password for profile %'`))
}

// TestPasswordBackoff: guesses at one profile's password are limited
// whatever their address: after api.MaxLoginFailures wrong passwords the
// right one is refused too until the lock has passed, and each further
// lock is twice as long. Claims use the same budget (issue 17 L5).
func TestPasswordBackoff(t *testing.T) {
	e := newEnv(t, envOptions{cards: 2})
	const email, password = "ada@example.org", "correct horse battery"
	e.claimAndLogin(e.cards[0], email, password)
	login := func(pw string) int {
		return e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: email, Password: pw}}).status
	}
	for range api.MaxLoginFailures {
		require.Equal(t, http.StatusUnauthorized, login("wrong password guess"))
	}
	// Locked: the right password is refused, with the same answer.
	r := e.do(request{method: "POST", path: "/v1/profile/login", body: loginBody{Org: org, Email: email, Password: password}})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Contains(t, string(r.body), "wrong email or password")
	// A claim with the right password does not link the card either.
	c := e.cards[1]
	r = e.do(request{method: "POST", path: "/v1/card/claim", card: c.token, pin: c.pin,
		body: claimBody{Email: email, Password: password, Consent: consent}})
	require.Equal(t, http.StatusAccepted, r.status)
	require.Zero(t, e.count(`SELECT count(*) FROM api_profile_cards WHERE card_id = $1`, c.uid))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/profile/login' AND detail LIKE '%locked until%'`))
	require.Equal(t, 2, e.auditCount(`detail LIKE '%locked after too many wrong passwords'`))

	// After the lock the right password works, and the budget is back.
	e.clock.Add(api.LoginLockBase)
	require.Equal(t, http.StatusOK, login(password))
	for range api.MaxLoginFailures {
		require.Equal(t, http.StatusUnauthorized, login("wrong password guess"))
	}
	e.clock.Add(api.LoginLockBase)
	// One guess after a lock; a wrong one locks again, twice as long.
	require.Equal(t, http.StatusUnauthorized, login("wrong password guess"))
	e.clock.Add(api.LoginLockBase)
	require.Equal(t, http.StatusUnauthorized, login(password), "the second lock is longer")
	e.clock.Add(api.LoginLockBase)
	require.Equal(t, http.StatusOK, login(password))
	require.NotContains(t, e.logs.String(), password)
}
