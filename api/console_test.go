package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/console"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/benchseed"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// staffUser is a staff account with its password and TOTP secret.
type staffUser struct {
	org            int64
	name, password string
	secret         string // base32; empty without a second factor
	role           api.Role
}

// addStaff adds a staff account of organizer o (cheap argon2id: the tests
// check the scheme, not the cost).
func (e *env) addStaff(o int64, name string, role api.Role, store string) staffUser {
	e.t.Helper()
	pw := "correct horse battery " + name
	enr, err := api.AddStaff(context.Background(), e.pool, e.hsm, api.NewStaff{Org: o, Name: name, Role: role, Store: store,
		Password: []byte(pw), PasswordMemory: 256, PasswordTime: 1}, e.clock.Now())
	require.NoError(e.t, err)
	return staffUser{org: o, name: name, password: pw, secret: enr.TOTPSecret, role: role}
}

// code is u's TOTP code at the server's time plus d.
func (e *env) code(u staffUser, d time.Duration) string {
	e.t.Helper()
	if u.secret == "" {
		return ""
	}
	c, err := api.TOTPCode(u.secret, e.clock.Now().Add(d))
	require.NoError(e.t, err)
	return c
}

// consoleBrowser is a cookie-keeping HTTP client of the console that does
// not follow redirects.
type consoleBrowser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) consoleBrowser() *consoleBrowser {
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	return &consoleBrowser{e: e, c: &http.Client{Transport: e.client.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *consoleBrowser) send(req *http.Request) response {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	require.NoError(b.e.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.e.t, err)
	if m := csrfField.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return response{status: resp.StatusCode, body: body, header: resp.Header}
}

func (b *consoleBrowser) get(path string) response {
	b.e.t.Helper()
	req, err := http.NewRequest("GET", b.e.url+path, nil)
	require.NoError(b.e.t, err)
	return b.send(req)
}

// post sends form with the page's CSRF token (unless form has one) and
// the extra headers.
func (b *consoleBrowser) post(path string, form url.Values, header map[string]string) response {
	b.e.t.Helper()
	if b.csrf == "" {
		b.get("/console/login")
	}
	form = maps.Clone(form)
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, err := http.NewRequest("POST", b.e.url+path, strings.NewReader(form.Encode()))
	require.NoError(b.e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return b.send(req)
}

func (b *consoleBrowser) signIn(u staffUser, password, code string) response {
	b.e.t.Helper()
	b.get("/console/login")
	return b.post("/console/login", url.Values{"org": {strconv.FormatInt(u.org, 10)}, "name": {u.name},
		"password": {password}, "code": {code}}, nil)
}

// signedIn signs u in and fails the test if that does not work.
func (b *consoleBrowser) signedIn(u staffUser) *consoleBrowser {
	b.e.t.Helper()
	r := b.signIn(u, u.password, b.e.code(u, 0))
	require.Equal(b.e.t, http.StatusSeeOther, r.status, string(r.body))
	landing := "/console/dashboard"
	if u.role == api.RoleStore {
		landing = "/console/stores" // a store member's own store
	}
	require.Equal(b.e.t, landing, r.header.Get("Location"))
	return b
}

// TestStaffSignIn: password and TOTP for hq, each code good once, the
// back-off per account, the session cookie's attributes, a disabled
// account's sessions end, and an audit record of every sign-in.
func TestStaffSignIn(t *testing.T) {
	e := newEnv(t, envOptions{})
	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	require.NotEmpty(t, hq.secret, "an hq account has a second factor")
	aud := e.addStaff(org, "audrey", api.RoleAuditor, "")
	require.Empty(t, aud.secret)
	_, err := api.AddStaff(context.Background(), e.pool, e.hsm, api.NewStaff{Org: org, Name: "alice", Role: api.RoleAuditor,
		Password: []byte("another long password"), PasswordMemory: 256, PasswordTime: 1}, e.clock.Now())
	require.ErrorIs(t, err, api.ErrStaffExists)
	var stored string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT password_hash || totp_envelope::text FROM api_staff WHERE name = 'alice'`).Scan(&stored))
	require.True(t, strings.HasPrefix(stored, "$argon2id$v=19$"), stored)
	require.NotContains(t, stored, hq.secret, "the TOTP secret is sealed")
	require.NotContains(t, stored, hq.password)

	b := e.consoleBrowser()
	// Without the code, with a wrong one, with a wrong password: refused alike.
	for _, try := range []struct{ pw, code string }{{hq.password, ""}, {hq.password, "000000"}, {"wrong password!", e.code(hq, 0)}} {
		r := b.signIn(hq, try.pw, try.code)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Contains(t, string(r.body), "Wrong organizer, name, password or code.")
	}
	r := b.signIn(hq, hq.password, e.code(hq, 0))
	require.Equal(t, http.StatusSeeOther, r.status, string(r.body))
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "__Host-lc_staff" {
			cookie = c
		}
	}
	require.NotNil(t, cookie)
	require.True(t, cookie.Secure && cookie.HttpOnly && cookie.Path == "/" && cookie.Domain == "" && cookie.SameSite == http.SameSiteStrictMode)
	require.Equal(t, http.StatusOK, b.get("/console/dashboard").status)
	// The session's value is no API credential.
	require.Equal(t, http.StatusUnauthorized, e.do(request{method: "GET", path: "/v1/hq/alerts", bearer: cookie.Value}).status)

	// The same code again (a replay, or a second browser) is refused;
	// the next step's code is good.
	require.Equal(t, http.StatusUnauthorized, e.consoleBrowser().signIn(hq, hq.password, e.code(hq, 0)).status)
	require.Equal(t, http.StatusSeeOther, e.consoleBrowser().signIn(hq, hq.password, e.code(hq, 30*time.Second)).status)

	// An auditor without a second factor signs in with the password.
	require.Equal(t, http.StatusSeeOther, e.consoleBrowser().signIn(aud, aud.password, "").status)

	// Back-off: five failures in a row are free, then the account waits,
	// refusing even the right password as it refuses a wrong one (so the
	// back-off tells no one which names exist); a minute later it may try
	// again. The audit record says why.
	for range 5 {
		require.Equal(t, http.StatusUnauthorized, e.consoleBrowser().signIn(aud, "wrong password!", "").status)
	}
	r = e.consoleBrowser().signIn(aud, aud.password, "")
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Contains(t, string(r.body), "Wrong organizer, name, password or code.")
	require.Equal(t, 1, e.auditCount(`action = 'console sign-in' AND detail LIKE '%the account waits%' AND target = 'staff 1:audrey'`))
	e.clock.Add(61 * time.Second)
	require.Equal(t, http.StatusSeeOther, e.consoleBrowser().signIn(aud, aud.password, "").status)

	// Unknown account and another organizer's name: refused like a wrong password.
	require.Equal(t, http.StatusUnauthorized, e.consoleBrowser().signIn(staffUser{org: org, name: "mallory"}, "whatever password", "").status)
	require.Equal(t, http.StatusUnauthorized, e.consoleBrowser().signIn(staffUser{org: 2, name: "audrey"}, aud.password, "").status)
	// A name no account can have (a NUL) is refused before the database.
	require.Equal(t, http.StatusUnauthorized, e.consoleBrowser().signIn(staffUser{org: org, name: "a\x00b"}, aud.password, "").status)

	// Disabling an account ends its sessions at once.
	ab := e.consoleBrowser().signedIn(aud)
	require.Equal(t, http.StatusOK, ab.get("/console/alerts").status)
	require.NoError(t, api.DisableStaff(context.Background(), e.pool, org, "audrey", e.clock.Now()))
	r = ab.get("/console/alerts")
	require.Equal(t, http.StatusSeeOther, r.status)
	require.Equal(t, "/console/login?ended=1", r.header.Get("Location"))
	require.Equal(t, http.StatusUnauthorized, e.consoleBrowser().signIn(aud, aud.password, "").status)
	require.ErrorIs(t, api.DisableStaff(context.Background(), e.pool, org, "audrey", e.clock.Now()), api.ErrNoStaff)

	// Every sign-in is audited, refused ones too; no password or code in them.
	require.Equal(t, 5, e.auditCount(`action = 'console sign-in' AND outcome = 'ok'`))
	// Refused ones proved no organizer: they are the platform's (0).
	require.Equal(t, 14, e.auditCount(`action = 'console sign-in' AND outcome = 'denied' AND org_id = 0`))
	require.Equal(t, 5, e.auditCount(`action = 'console sign-in' AND outcome = 'ok' AND org_id = 1 AND target LIKE 'staff 1:%'`))
	require.Zero(t, e.auditCount(`detail LIKE '%' || $1 || '%' OR detail LIKE '%' || $2 || '%'`, hq.password, aud.password))
	require.NotContains(t, e.logs.String(), hq.password)
	require.NotContains(t, e.logs.String(), cookie.Value)
	require.NotContains(t, e.logs.String(), hq.secret)
	var audit string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT string_agg(actor || target || detail, ' ') FROM api_audit`).Scan(&audit))
	require.NotContains(t, audit, cookie.Value)
	require.NotContains(t, audit, hq.secret)
}

// TestStaffSessionExpiry: a session ends after 30 minutes without use and
// 12 hours after sign-in, whatever its use; sign-out ends it at once.
func TestStaffSessionExpiry(t *testing.T) {
	e := newEnv(t, envOptions{})
	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	b := e.consoleBrowser().signedIn(hq)
	ended := func(r response) {
		t.Helper()
		require.Equal(t, http.StatusSeeOther, r.status)
		require.Equal(t, "/console/login?ended=1", r.header.Get("Location"))
	}

	e.clock.Add(api.StaffIdle - time.Second)
	require.Equal(t, http.StatusOK, b.get("/console/dashboard").status, "used within the idle time")
	e.clock.Add(api.StaffIdle)
	ended(b.get("/console/dashboard"))

	e.clock.Add(time.Minute)
	b = e.consoleBrowser().signedIn(hq)
	for used := time.Duration(0); used < api.StaffLifetime-20*time.Minute; used += 20 * time.Minute {
		e.clock.Add(20 * time.Minute)
		require.Equal(t, http.StatusOK, b.get("/console/alerts").status)
	}
	e.clock.Add(20 * time.Minute)
	ended(b.get("/console/alerts"))

	e.clock.Add(time.Minute)
	b = e.consoleBrowser().signedIn(hq)
	require.Equal(t, http.StatusSeeOther, b.post("/console/logout", url.Values{}, nil).status)
	ended(b.get("/console/alerts"))
	require.Equal(t, 1, e.auditCount(`action = 'console sign-out'`))
}

// blockedCard makes card 0 blocked by a clone alert and returns its open
// alert's id.
func (e *env) blockedCard() string {
	e.t.Helper()
	term := e.enrolTerminal("t1")
	e.cloneDebits(term, e.cards[0], 1)
	as, err := e.ledger.Alerts(context.Background(), org)
	require.NoError(e.t, err)
	require.Len(e.t, as, 1)
	require.True(e.t, as[0].Blocking)
	return as[0].ID.String()
}

// TestConsoleCSRF: a form post without the cookie's token, with another
// token, or from another site changes nothing.
func TestConsoleCSRF(t *testing.T) {
	e := newEnv(t, envOptions{})
	alert := e.blockedCard()
	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	b := e.consoleBrowser().signedIn(hq)
	b.get("/console/alerts")
	path := "/console/alerts/" + alert + "/review"
	for name, try := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"no token":         {url.Values{"reason": {"x"}, "csrf": {""}}, nil},
		"another token":    {url.Values{"reason": {"x"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, nil},
		"cross-site fetch": {url.Values{"reason": {"x"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"other origin":     {url.Values{"reason": {"x"}}, map[string]string{"Origin": "https://evil.example"}},
	} {
		r := b.post(path, try.form, try.header)
		require.Equal(t, http.StatusForbidden, r.status, name)
		require.Contains(t, string(r.body), "This form expired", name)
	}
	// A sign-in without the token is refused too (login CSRF).
	r := e.consoleBrowser().post("/console/login", url.Values{"org": {"1"}, "name": {"alice"}, "password": {hq.password},
		"code": {e.code(hq, 30*time.Second)}, "csrf": {""}}, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	as, err := e.ledger.Alerts(context.Background(), org)
	require.NoError(t, err)
	require.Nil(t, as[0].Review, "nothing was reviewed")
	require.Zero(t, e.auditCount(`action LIKE '%review%'`))

	r = b.post(path, url.Values{"reason": {"checked the terminal"}}, nil)
	require.Equal(t, http.StatusSeeOther, r.status, string(r.body))
}

// TestConsoleRoleMatrix tries each page and action of the console as each
// role: anonymous, hq, auditor, store, and hq of another organizer. What
// the API's role matrix refuses the console refuses, and a refused action
// changes nothing; what it allows is audited under the staff member's name.
// Blocking a lost card (issue 21) is hq's only: refused, it leaves the card
// active and the blocklist at its version; done, the card is blocked and
// on the blocklist the terminals fetch.
func TestConsoleRoleMatrix(t *testing.T) {
	e := newEnv(t, envOptions{})
	alert := e.blockedCard()
	card := e.cards[0].hex()
	lost := e.cards[1].hex()
	blocklist := func() ledger.BlocklistChange {
		t.Helper()
		bl, err := e.ledger.Blocklist(context.Background(), org, 0, true)
		require.NoError(t, err)
		return bl
	}
	before := blocklist()
	require.Len(t, before.All, 1, "the cloned card")
	e.custody() // a custody log to export
	held, nheld, err := e.ledger.HeldTxs(context.Background(), org, 100)
	require.NoError(t, err)
	require.Positive(t, nheld, "the clone's debits are held")
	require.Len(t, held, nheld)
	require.NoError(t, e.ledger.CreateOrganizer(context.Background(), 2, "Other Org"))
	// Cash at each store today: each store's day has its own expected
	// cash, which only its members and HQ may see.
	for st, cents := range map[string]int64{"store-a": 1234, "store-b": 98765} {
		_, err := e.ledger.TopUpCash(context.Background(), org, ledger.CashTopUp{Store: st, Card: e.cards[2].uid, Amount: cents})
		require.NoError(t, err)
	}
	users := map[string]staffUser{
		"hq":      e.addStaff(org, "alice", api.RoleHQ, ""),
		"auditor": e.addStaff(org, "audrey", api.RoleAuditor, ""),
		"store":   e.addStaff(org, "sam", api.RoleStore, "store-a"),
		"other":   e.addStaff(2, "olga", api.RoleHQ, ""),
	}
	type action struct {
		name, method, path string
		form               url.Values
	}
	actions := []action{
		{"dashboard", "GET", "/console/dashboard", nil},
		{"dashboard event", "GET", "/console/dashboard?event=fest", nil},
		{"alerts", "GET", "/console/alerts", nil},
		{"card", "GET", "/console/cards?card=" + card, nil},
		{"review", "POST", "/console/alerts/" + alert + "/review", url.Values{"reason": {"clone checked: terminal t1 misread"}}},
		{"unblock", "POST", "/console/cards/" + card + "/unblock", url.Values{"reason": {"cleared after review"}}},
		{"block", "POST", "/console/cards/" + lost + "/block", url.Values{"reason": {"lost at the main stage"}}},
		{"block without reason", "POST", "/console/cards/" + e.cards[2].hex() + "/block", url.Values{"reason": {""}}},
		{"terminals", "GET", "/console/terminals", nil},
		{"register terminal", "POST", "/console/terminals", url.Values{"terminal": {"t9"}, "merchant": {"bar"}, "event": {"fest"}, "ttl_hours": {"2"}}},
		{"revoke session keys", "POST", "/console/terminals/t1/session-keys/revoke", url.Values{}},
		{"revoke terminal", "POST", "/console/terminals/t1/revoke", url.Values{}},
		{"stores", "GET", "/console/stores", nil},
		{"keys", "GET", "/console/keys", nil},
		{"audit", "GET", "/console/audit", nil},
		{"batches", "GET", "/console/batches", nil},
		{"audit export", "GET", "/console/audit/export", nil},
		{"refunds", "GET", "/console/refunds", nil},
		{"audit verify", "GET", "/console/audit/verify", nil},
		{"own store", "GET", "/console/stores?store=store-a", nil},
		{"another store", "GET", "/console/stores?store=store-b", nil},
	}
	want := map[string][]int{
		"anonymous": {303, 303, 303, 303, 401, 401, 401, 401, 303, 401, 401, 401, 303, 303, 303, 303, 303, 303, 303, 303, 303},
		// A store member sees its own store's days (the stores page
		// shows its own store), never another store's.
		"store":   {403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403, 403, 403, 403, 403, 403, 200, 403},
		"auditor": {200, 200, 200, 200, 403, 403, 403, 403, 200, 403, 403, 403, 200, 403, 200, 403, 200, 200, 200, 200, 200},
		// Another organizer's terminal has no session keys of the caller's
		// organizer: none are revoked, as the API answers. It has no
		// custody log to export.
		"other": {200, 200, 200, 404, 404, 404, 404, 400, 200, 404, 303, 404, 200, 200, 200, 200, 404, 200, 404, 404, 404},
		"hq":    {200, 200, 200, 200, 303, 303, 303, 400, 200, 201, 303, 303, 200, 200, 200, 200, 200, 200, 200, 200, 200},
	}
	for _, role := range []string{"anonymous", "store", "auditor", "other", "hq"} {
		b := e.consoleBrowser()
		if u, ok := users[role]; ok {
			if u.secret != "" {
				e.clock.Add(30 * time.Second) // a fresh TOTP step for each hq sign-in
			}
			b.signedIn(u)
		} else {
			b.get("/console/login")
		}
		for i, a := range actions {
			var r response
			if a.method == "GET" {
				r = b.get(a.path)
			} else {
				r = b.post(a.path, a.form, nil)
			}
			require.Equal(t, want[role][i], r.status, "%s %s: %s", role, a.name, r.body)
			require.False(t, strings.Contains(string(r.body), "This form expired"), "%s %s", role, a.name)
			if a.name == "audit export" && r.status == http.StatusOK {
				require.Equal(t, "application/x-tar", r.header.Get("Content-Type"))
				require.Contains(t, r.header.Get("Content-Disposition"), "attachment")
				tr := tar.NewReader(bytes.NewReader(r.body))
				h, err := tr.Next()
				require.NoError(t, err, "a tar file")
				require.NotEmpty(t, h.Name)
			}
			if r.status == http.StatusForbidden {
				require.Contains(t, string(r.body), "Your role may not do this.", "%s %s", role, a.name)
			}
			if a.name == "alerts" && r.status == http.StatusOK {
				// The held debits (the clone's) for hq and auditor; none
				// of the caller's for another organizer.
				page := string(r.body)
				if role == "other" {
					require.Equal(t, "0", figure(t, page, "held"))
					require.NotContains(t, page, `<table id="held">`)
				} else {
					require.Equal(t, strconv.Itoa(len(held)), figure(t, page, "held"), role)
					rows := tableRows(t, page, "held")
					require.Len(t, rows, len(held), role)
					for i, h := range held {
						require.Equal(t, []string{h.ReceivedAt.UTC().Format("2006-01-02 15:04"), h.Terminal + " (" + h.Merchant + ")",
							strconv.FormatInt(h.Amount, 10), h.Reason}, rows[i], role)
						require.Contains(t, page, `<a href="/console/cards?card=`+terminaltx.CardHex(h.Card)+`">`)
					}
				}
			}
			if role == "anonymous" && a.method == "GET" {
				require.Equal(t, "/console/login?ended=1", r.header.Get("Location"))
			}
			if strings.Contains(a.path, "/console/stores") && r.status == http.StatusOK {
				page := string(r.body)
				cashA, cashB := strings.Contains(page, "€ 12.34"), strings.Contains(page, "€ 987.65")
				switch {
				case role == "other":
					require.False(t, cashA || cashB, "another organizer's stores: %s", a.name)
				case role == "store" || strings.HasSuffix(a.path, "store-a"):
					require.True(t, cashA, "%s %s: its own store's cash", role, a.name)
					require.False(t, cashB, "%s %s: never another store's cash", role, a.name)
				case strings.HasSuffix(a.path, "store-b"):
					require.True(t, cashB && !cashA, "%s %s", role, a.name)
				default:
					require.True(t, cashA && cashB, "%s %s: every store", role, a.name)
				}
			}
			if role == "store" && r.status < 400 && a.method == "GET" {
				require.NotContains(t, string(r.body), `href="/console/dashboard"`, "a store member's menu has its own pages only")
			}
		}
		if role != "hq" {
			require.Equal(t, "blocked", e.cardStatus(e.cards[0]), role)
			require.Equal(t, "active", e.cardStatus(e.cards[1]), role)
			require.Equal(t, before.Version, blocklist().Version, role)
			as, err := e.ledger.Alerts(context.Background(), org)
			require.NoError(t, err)
			require.Nil(t, as[0].Review, role)
			terms, err := e.ledger.Terminals(context.Background(), org)
			require.NoError(t, err)
			require.Len(t, terms, 1, role)
			require.Equal(t, ledger.TerminalEnrolled, terms[0].Status, role)
		}
	}
	// The API's own answer to a store's token: its own store's days, not
	// another's; HQ may read either.
	for _, c := range []struct {
		path, bearer string
		status       int
	}{
		{"/v1/stores/store-a/days", e.tokens["store"], http.StatusOK},
		{"/v1/stores/store-b/days", e.tokens["store"], http.StatusForbidden},
		{"/v1/stores/store-b/days", e.tokens["hq"], http.StatusOK},
		{"/v1/stores/no-such-store/days", e.tokens["hq"], http.StatusNotFound},
		{"/v1/stores/store-a/days?from=yesterday", e.tokens["hq"], http.StatusBadRequest},
	} {
		r := e.do(request{method: "GET", path: c.path, bearer: c.bearer})
		require.Equal(t, c.status, r.status, "%s: %s", c.path, r.body)
		if r.status == http.StatusOK {
			var out struct {
				Days []ledger.StoreDayReport `json:"days"`
			}
			require.NoError(t, json.Unmarshal(r.body, &out))
			require.NotEmpty(t, out.Days, c.path)
			for _, d := range out.Days {
				require.Equal(t, c.path[len("/v1/stores/"):len(c.path)-len("/days")], d.Store)
			}
		}
	}
	terms, err := e.ledger.Terminals(context.Background(), org)
	require.NoError(t, err)
	require.Len(t, terms, 2)
	require.Equal(t, ledger.TerminalRevoked, terms[0].Status)
	require.Equal(t, ledger.TerminalCreated, terms[1].Status)
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/terminals' AND outcome = 'ok' AND actor = 'hq:1:staff:alice' AND target = 'terminal t9'`))
	require.Equal(t, 1, e.auditCount(`action = 'DELETE /v1/hq/terminals/{terminal}' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, "active", e.cardStatus(e.cards[0]))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/alerts/{alert}/review' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/cards/{card}/unblock' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, "blocked", e.cardStatus(e.cards[1]))
	require.Equal(t, "active", e.cardStatus(e.cards[2]), "a block without a reason changes nothing")
	bl := blocklist()
	require.Equal(t, [][]byte{e.cards[1].uid}, bl.All, "the lost card is on the blocklist, the unblocked one is off it")
	require.Greater(t, bl.Version, before.Version)
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/cards/{card}/block' AND outcome = 'ok' AND actor = 'hq:1:staff:alice' AND target = 'card `+lost+`'`))
	require.Equal(t, 2, e.auditCount(`action = 'POST /v1/hq/cards/{card}/block' AND outcome = 'denied' AND actor = 'auditor:1:staff:audrey'`))
	require.Equal(t, 2, e.auditCount(`action = 'POST /v1/hq/cards/{card}/block' AND outcome = 'denied' AND actor = 'store:1:staff:sam'`))
	require.Equal(t, 5, e.auditCount(`outcome = 'denied' AND actor = 'auditor:1:staff:audrey' AND action LIKE 'POST %'`))
	require.Equal(t, 2, e.auditCount(`outcome = 'denied' AND actor = 'auditor:1:staff:audrey' AND action LIKE 'DELETE %'`))
	// The store's refused dashboard (twice) is the console's record; the
	// alerts, card, terminals, stores, keys, audit, batches, export and
	// refunds pages and the audit verification are the API's.
	require.Equal(t, 12, e.auditCount(`outcome = 'denied' AND actor = 'store:1:staff:sam' AND action LIKE 'GET %'`))
	require.Equal(t, 1, e.auditCount(`outcome = 'ok' AND actor = 'auditor:1:staff:audrey' AND action = 'GET /v1/audit/verify'`))
	require.Equal(t, 1, e.auditCount(`outcome = 'ok' AND actor = 'hq:1:staff:alice' AND action = 'GET /v1/hq/cards/{card}'`))

	// The lost card replaced by card 2: its page says so and offers no
	// block; a block of it is refused and changes nothing.
	_, err = e.ledger.ReplaceCard(context.Background(), org, ledger.ReplaceRequest{Old: e.cards[1].uid, New: e.cards[2].uid,
		Actor: "hq:1:alice", Reason: "lost at the main stage"})
	require.NoError(t, err)
	e.clock.Add(30 * time.Second)
	b := e.consoleBrowser().signedIn(users["hq"])
	r := b.get("/console/cards?card=" + lost)
	require.Equal(t, http.StatusOK, r.status)
	require.Contains(t, string(r.body), `<p id="card-replaced">Replaced by a new card`)
	require.NotContains(t, string(r.body), `/block"`)
	v := blocklist().Version
	r = b.post("/console/cards/"+lost+"/block", url.Values{"reason": {"lost again"}}, nil)
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "a refunded or replaced card is on the blocklist already")
	require.Equal(t, "replaced", e.cardStatus(e.cards[1]))
	require.Equal(t, v, blocklist().Version)

	consoleBoothMatrix(t, e, users)
}

// tableCents reads the data-cents cells of the table with id from a page.
func tableRows(t *testing.T, page, id string) [][]string {
	t.Helper()
	start := strings.Index(page, `<table id="`+id+`">`)
	require.GreaterOrEqual(t, start, 0, "table %s", id)
	end := strings.Index(page[start:], "</table>")
	body := page[start : start+end]
	var rows [][]string
	cell := regexp.MustCompile(`<td[^>]*?(?: data-cents="(-?\d+)")?>([^<]*)</td>`)
	for _, tr := range regexp.MustCompile(`<tr[ >]`).Split(body, -1)[2:] {
		var row []string
		for _, m := range cell.FindAllStringSubmatch(tr, -1) {
			if m[1] != "" {
				row = append(row, m[1])
			} else {
				row = append(row, m[2])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func figure(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`data-figure="` + name + `">([^<]*)<`).FindStringSubmatch(page)
	require.NotNil(t, m, name)
	return m[1]
}

// consoleEvent populates env: sales in two hours by two terminals, a
// clone that blocks a card, cash and online top-ups, one pending.
func (e *env) consoleEvent() {
	t := e.t
	ctx := context.Background()
	t1 := e.enrolTerminal("t1")
	t2 := e.enrolTerminal("t2")
	e.consoleTerms = []*terminal{t1, t2}
	up := func(txs ...[]byte) {
		_, err := e.ledger.Upload(ctx, org, txs)
		require.NoError(t, err)
	}
	up(e.debit(t1, e.cards[1], 1, 1000, 250), e.debit(t2, e.cards[2], 1, 1000, 120))
	e.clock.Add(time.Hour)
	up(e.debit(t1, e.cards[1], 2, 750, 300), e.debit(t1, e.cards[3], 1, 1000, 75))
	e.cloneDebits(t2, e.cards[0], 1)
	id, err := e.ledger.TopUpCash(ctx, org, ledger.CashTopUp{Store: "store-b", Card: e.cards[3].uid, Amount: 500})
	require.NoError(t, err)
	_ = id // paid, not yet on the card: a pending load
	// A refund requested by the holder of card 2.
	r := e.do(request{method: "POST", path: "/v1/card/refund", card: e.cards[2].token, pin: e.cards[2].pin,
		body: apitype.RefundRequest{Name: "Ada Lovelace", IBAN: "NL91ABNA0417164300"}})
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	e.clock.Add(7 * time.Minute)
}

// TestConsoleDashboardFigures: every figure the dashboard shows is the
// event report's (ledger.Event, which GET /v1/hq/reports/events/{event}
// and `loopcard report event` show), and each merchant's hours add up to
// its sales; the terminals' last uploads are the ledger's.
func TestConsoleDashboardFigures(t *testing.T) {
	e := newEnv(t, envOptions{cards: 4})
	e.consoleEvent()
	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	b := e.consoleBrowser().signedIn(hq)
	r := b.get("/console/dashboard")
	require.Equal(t, http.StatusOK, r.status)
	page := string(r.body)

	rep, err := e.ledger.Event(context.Background(), org, "fest")
	require.NoError(t, err)
	tok, err := api.IssueToken(context.Background(), e.pool, api.TokenRequest{Org: org, Role: api.RoleHQ, TTL: time.Hour}, e.clock.Now())
	require.NoError(t, err)
	var viaAPI ledger.EventReport
	ar := e.do(request{method: "GET", path: "/v1/hq/reports/events/fest", bearer: tok.Reveal()})
	require.Equal(t, http.StatusOK, ar.status, string(ar.body))
	ar.json(t, &viaAPI)
	require.Equal(t, rep, viaAPI, "the API's report is the ledger's")

	require.Equal(t, strconv.FormatInt(rep.CardsWithMoney, 10), figure(t, page, "cards_with_balance"))
	money := func(c int64) string {
		return "€ " + strconv.FormatInt(c/100, 10) + "." + strconv.FormatInt(c%100+100, 10)[1:]
	}
	require.Equal(t, money(rep.Outstanding), figure(t, page, "outstanding_balance"))
	require.Equal(t, money(rep.PendingLoads), figure(t, page, "pending_loads"))
	require.Equal(t, strconv.FormatInt(rep.HeldTxs, 10), figure(t, page, "held_transactions"))
	require.Equal(t, strconv.FormatInt(rep.Alerts, 10), figure(t, page, "alerts"))
	require.Positive(t, rep.PendingLoads)
	require.Positive(t, rep.HeldTxs)

	sales := tableRows(t, page, "sales")
	require.Len(t, sales, len(rep.Sales))
	for i, s := range rep.Sales {
		require.Equal(t, []string{s.Merchant, strconv.FormatInt(s.Count, 10), strconv.FormatInt(s.Amount, 10)}, sales[i])
	}
	hourly := tableRows(t, page, "hourly")
	require.Len(t, hourly, len(rep.Hourly))
	require.Len(t, rep.Hourly, 2, "two hours of sales")
	perMerchant := map[string]int64{}
	for i, h := range rep.Hourly {
		require.Equal(t, []string{h.Hour.UTC().Format("2006-01-02 15:04"), h.Merchant, strconv.FormatInt(h.Count, 10),
			strconv.FormatInt(h.Amount, 10)}, hourly[i])
		perMerchant[h.Merchant] += h.Amount
	}
	for _, s := range rep.Sales {
		require.Equal(t, s.Amount, perMerchant[s.Merchant], "the hours add up to the merchant's sales")
	}
	topups := tableRows(t, page, "topups")
	require.Len(t, topups, len(rep.TopUps))
	for i, s := range rep.TopUps {
		require.Equal(t, []string{s.Channel, s.Status, strconv.FormatInt(s.Count, 10), strconv.FormatInt(s.Amount, 10)}, topups[i])
	}
	// The stores page shows the store-days report of today's business day.
	bd, err := e.ledger.BusinessDay(context.Background(), org)
	require.NoError(t, err)
	days, err := e.ledger.StoreDays(context.Background(), org, bd.Of(e.clock.Now()), bd.Of(e.clock.Now()))
	require.NoError(t, err)
	r = b.get("/console/stores")
	require.Equal(t, http.StatusOK, r.status)
	srows := tableRows(t, string(r.body), "store-days")
	require.Len(t, srows, len(days))
	require.Len(t, days, 2)
	for i, d := range days {
		require.Equal(t, []string{d.Store, d.Day.UTC().Format(time.DateOnly), strconv.FormatInt(d.ExpectedCash, 10), "open", "",
			strconv.FormatInt(d.CardsReceived, 10), strconv.FormatInt(d.CardsSold, 10), strconv.FormatInt(d.CardsInStock, 10),
			money(d.PendingLoads)}, srows[i])
	}

	// The refunds page shows the ledger's refunds; payees stay sealed.
	refunds, waiting, err := e.ledger.Refunds(context.Background(), org, 1000)
	require.NoError(t, err)
	require.Equal(t, 1, waiting)
	r = b.get("/console/refunds")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "1", figure(t, string(r.body), "waiting"))
	require.Len(t, refunds, 1)
	require.Equal(t, e.cards[2].hex(), terminaltx.CardHex(refunds[0].Card))
	require.True(t, strings.Contains(string(r.body), e.cards[2].hex()), "the refund's card")
	require.False(t, strings.Contains(string(r.body), "NL91") || strings.Contains(string(r.body), "Lovelace"), "no payee")

	// The chart draws one bar per hour and merchant, its height the amount.
	require.Equal(t, len(rep.Hourly), strings.Count(page, "<rect x="))

	// t1 says, with a session-key fetch, that 3 transactions wait, the
	// oldest for 4 minutes; t2 has said nothing.
	r = e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: e.consoleTerms[0],
		body: apitype.SessionKeyRequest{Event: "fest", Heartbeat: &apitype.Heartbeat{Queued: 3, OldestUnsent: 240}}})
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	page = string(b.get("/console/dashboard").body)
	terms, err := e.ledger.Terminals(context.Background(), org)
	require.NoError(t, err)
	var listed struct {
		Terminals []apitype.TerminalInfo `json:"terminals"`
	}
	e.do(request{method: "GET", path: "/v1/hq/terminals", bearer: tok.Reveal()}).json(t, &listed)
	rows := tableRows(t, page, "terminals")
	require.Len(t, rows, len(terms))
	require.Len(t, listed.Terminals, len(terms))
	require.Equal(t, 3, listed.Terminals[0].Queued)
	require.Equal(t, e.clock.Now().Add(-4*time.Minute).UTC(), listed.Terminals[0].OldestUnsentAt.UTC())
	require.Nil(t, listed.Terminals[1].OldestUnsentAt)
	for i, tr := range terms {
		require.NotNil(t, tr.LastUpload)
		require.Equal(t, tr.LastUpload.UTC(), listed.Terminals[i].LastUpload.UTC())
		require.Equal(t, tr.Queued, listed.Terminals[i].Queued)
		ago := e.clock.Now().Sub(*tr.LastUpload).Round(time.Minute)
		// The uploads' times are the database's, the page's the test
		// clock's, an hour on: both terminals are silent.
		require.GreaterOrEqual(t, ago, console.SilentAfter)
		oldest := ""
		if tr.OldestUnsent != nil {
			oldest = "4 min"
		}
		require.Equal(t, []string{tr.Terminal, tr.Merchant, listed.Terminals[i].Status + " · no upload for 20 min", tr.LastUpload.UTC().Format("2006-01-02 15:04"),
			fmt.Sprintf("%d h %02d min", int(ago/time.Hour), int(ago%time.Hour/time.Minute)), strconv.Itoa(tr.Queued), oldest}, rows[i])
	}
	require.Equal(t, 2, strings.Count(page, `<tr class="silent">`))
}

// TestTerminalHeartbeat: a terminal's heartbeat with an upload is stored
// and shown; one that does not fit is refused with the upload (400) and
// changes nothing.
func TestTerminalHeartbeat(t *testing.T) {
	e := newEnv(t, envOptions{cards: 2})
	term := e.enrolTerminal("t1")
	sk := e.sessionKey(term)
	hb := func(q int, age int64) response {
		return e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{e.debit(term, e.cards[0], 1, 1000, 100)},
				Heartbeat: &apitype.Heartbeat{Queued: q, OldestUnsent: age}}})
	}
	for _, bad := range [][2]int64{{-1, 0}, {1, -5}, {0, 60}, {20_000_000, 1}, {1, 400 * 24 * 3600}} {
		r := hb(int(bad[0]), bad[1])
		require.Equal(t, http.StatusBadRequest, r.status, "%v: %s", bad, r.body)
		require.Contains(t, string(r.body), `{"error":"heartbeat: `)
	}
	rec, err := e.ledger.Terminal(context.Background(), org, "t1")
	require.NoError(t, err)
	require.Nil(t, rec.HeartbeatAt, "a refused heartbeat changes nothing")
	require.Nil(t, rec.LastUpload, "nor is the upload recorded")
	r := hb(7, 90)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	rec, err = e.ledger.Terminal(context.Background(), org, "t1")
	require.NoError(t, err)
	require.Equal(t, 7, rec.Queued)
	require.Equal(t, e.clock.Now().Add(-90*time.Second).UTC(), rec.OldestUnsent.UTC())
	require.NotNil(t, rec.LastUpload)
}

// TestConsolePageSizes: each page with its stylesheet stays under 100 kB,
// on the populated installation, in both languages.
func TestConsolePageSizes(t *testing.T) {
	e := newEnv(t, envOptions{cards: 4})
	e.consoleEvent()
	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	b := e.consoleBrowser().signedIn(hq)
	css := b.get("/console/assets/console.css")
	require.Equal(t, http.StatusOK, css.status)
	for _, path := range []string{"/console/login", "/console/dashboard", "/console/alerts", "/console/cards?card=" + e.cards[0].hex(), "/console/terminals", "/console/stores", "/console/keys", "/console/audit", "/console/batches", "/console/refunds",
		"/console/dashboard?lang=nl"} {
		r := b.get(path)
		require.Equal(t, http.StatusOK, r.status, path)
		size := len(r.body) + len(css.body)
		t.Logf("%s: %d B (page %d B + stylesheet %d B)", path, size, len(r.body), len(css.body))
		require.Less(t, size, 100_000, path)
		csp := r.header.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'none'")
		require.NotContains(t, csp, "unsafe")
		require.NotContains(t, string(r.body), "http://", "nothing is loaded from elsewhere")
		require.NotContains(t, string(r.body), "<script", path)
	}
	require.Contains(t, string(b.get("/console/dashboard?lang=nl").body), "Openstaand saldo")

	// The audit page at its largest: a full page of records with the
	// longest texts a record holds (and characters HTML escapes).
	var last int64
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT max(audit_id) FROM api_audit`).Scan(&last))
	for range 60 {
		_, err := api.WriteAudit(context.Background(), e.pool, api.AuditRecord{Org: org, Actor: strings.Repeat("<", 300),
			Action: strings.Repeat("&", 300), Target: strings.Repeat(`"`, 300), Detail: strings.Repeat("'", 500)}, e.clock.Now())
		require.NoError(t, err)
	}
	r := b.get("/console/audit?lang=en&after=" + strconv.FormatInt(last, 10))
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, 40, strings.Count(string(r.body), "<tr><td"))
	require.True(t, strings.Contains(string(r.body), "Next page"), "a link to the next page")
	t.Logf("/console/audit, 40 records of the longest texts: %d B (page %d B + stylesheet %d B)", len(r.body)+len(css.body), len(r.body), len(css.body))
	require.Less(t, len(r.body)+len(css.body), 100_000)

	// The alerts page at its largest: more alerts than it shows, with the
	// longest texts an alert holds.
	for range 60 {
		_, err := e.pool.Exec(context.Background(), `INSERT INTO api_alerts (org_id, kind, actor, remote_addr, detail, raised_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, org, "bad_signature", strings.Repeat("<", 300), strings.Repeat("&", 100),
			strings.Repeat("'", 500), e.clock.Now())
		require.NoError(t, err)
	}
	r = b.get("/console/alerts")
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, tableRows(t, string(r.body), "alerts"), 50)
	require.True(t, strings.Contains(string(r.body), "11 more not shown"), "says what it left out")
	t.Logf("/console/alerts, 50 alerts of the longest texts: %d B (page %d B + stylesheet %d B)", len(r.body)+len(css.body), len(r.body), len(css.body))
	require.Less(t, len(r.body)+len(css.body), 100_000)
}

// TestConsolePageSizesAtScale: at an event of 200 terminals at 20 bars,
// 2,000 cards and 20,000 transactions (ledger/benchseed, the console
// bench's shape), every page with its stylesheet stays under 100 kB: the
// dashboard shows the terminals needing attention (silent, a queue, never
// uploaded) with their counts and links to the terminals page, which
// pages its list; the stores page is bounded too.
func TestConsolePageSizesAtScale(t *testing.T) {
	e := newEnv(t, envOptions{})
	const big = 3
	ctx := context.Background()
	require.NoError(t, benchseed.Seed(ctx, e.ledger, e.pool, big, benchseed.Event{Cards: 2000, Txs: 20_000, Merchants: 20, Terminals: 200, Days: 3}))
	// The worst case: every terminal enrolled, with a queue.
	_, err := e.pool.Exec(ctx, `UPDATE terminals SET status = 'active', enrolled_at = $2::timestamptz, queued = 9999,
		heartbeat_at = $2::timestamptz, oldest_unsent_at = $2::timestamptz - interval '3 hours' WHERE org_id = $1`, big, e.clock.Now())
	require.NoError(t, err)
	hq := e.addStaff(big, "alice", api.RoleHQ, "")
	b := e.consoleBrowser().signedIn(hq)
	css := b.get("/console/assets/console.css")
	terms, err := e.ledger.Terminals(ctx, big)
	require.NoError(t, err)
	require.Len(t, terms, 200)
	size := func(path string) (string, int) {
		t.Helper()
		r := b.get(path)
		require.Equal(t, http.StatusOK, r.status, path)
		n := len(r.body) + len(css.body)
		t.Logf("%s: %d B (page %d B + stylesheet %d B)", path, n, len(r.body), len(css.body))
		require.Less(t, n, 100_000, path)
		return string(r.body), n
	}
	page, _ := size("/console/dashboard")
	require.Equal(t, "200", figure(t, page, "terminals_all"))
	require.Contains(t, page, `<a href="/console/terminals">`)
	require.Equal(t, "200", figure(t, page, "terminals_attention"), "each has a queue")
	require.Equal(t, "200", figure(t, page, "terminals_queued"))
	require.Equal(t, "0", figure(t, page, "terminals_never"))
	require.Len(t, tableRows(t, page, "terminals"), 50, "the dashboard lists 50 of them")
	require.Contains(t, page, "150 more need attention")
	// 20 bars: the chart and its table show the 7 that sold most and the
	// others together, each hour.
	hourly := tableRows(t, page, "hourly")
	require.LessOrEqual(t, len(hourly), 24*8)
	require.Greater(t, len(hourly), 24)
	rep, err := e.ledger.Event(ctx, big, "fest")
	require.NoError(t, err)
	last := rep.Hourly[len(rep.Hourly)-1].Hour.UTC().Format("2006-01-02 15:04")
	var sum, shown int64
	for _, h := range rep.Hourly {
		if h.Hour.UTC().Format("2006-01-02 15:04") == last {
			sum += h.Amount
		}
	}
	for _, r := range hourly {
		if r[0] == last {
			c, err := strconv.ParseInt(r[3], 10, 64)
			require.NoError(t, err)
			shown += c
		}
	}
	require.Equal(t, sum, shown, "the last hour's rows add up to its sales")
	require.Contains(t, page, "<td>others</td>")
	size("/console/dashboard?lang=nl")
	seen := map[string]bool{}
	for n := 1; ; n++ {
		page, _ := size("/console/terminals?page=" + strconv.Itoa(n))
		rows := tableRows(t, page, "terminal-list")
		require.LessOrEqual(t, len(rows), 50)
		for _, r := range rows {
			require.False(t, seen[r[0]], "each terminal on one page: %s", r[0])
			seen[r[0]] = true
		}
		if !strings.Contains(page, `rel="next"`) {
			break
		}
		require.Less(t, n, 10)
	}
	require.Len(t, seen, 200, "the pages list every terminal")
	require.Equal(t, http.StatusBadRequest, b.get("/console/terminals?page=0").status)
	require.Equal(t, http.StatusBadRequest, b.get("/console/terminals?page=x").status)
	for _, path := range []string{"/console/alerts", "/console/stores", "/console/keys", "/console/audit", "/console/batches", "/console/refunds",
		"/console/cards?card=04702030000000"} {
		size(path)
	}
}

// TestConsoleTerminalSilence: a terminal says with its session-key fetch
// and with its upload how many transactions wait in its queue and for how
// long the oldest; the console shows both, and marks the terminal silent
// once its last upload is 20 minutes old on the server's clock, not a
// second before. A session-key fetch with a heartbeat that does not fit is
// refused (400) and changes nothing: no heartbeat stored, no key issued.
func TestConsoleTerminalSilence(t *testing.T) {
	e := newEnv(t, envOptions{cards: 2})
	ctx := context.Background()
	term := e.enrolTerminal("t1")
	fetch := func(hb apitype.Heartbeat) response {
		return e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: term,
			body: apitype.SessionKeyRequest{Event: "fest", Heartbeat: &hb}})
	}
	keys := func() int {
		var n int
		require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM api_session_keys WHERE org_id = $1 AND terminal_id = 't1'`, org).Scan(&n))
		return n
	}
	for _, bad := range []apitype.Heartbeat{{Queued: -1}, {Queued: 1, OldestUnsent: -5}, {Queued: 0, OldestUnsent: 60},
		{Queued: 20_000_000, OldestUnsent: 1}, {Queued: 1, OldestUnsent: 400 * 24 * 3600}} {
		r := fetch(bad)
		require.Equal(t, http.StatusBadRequest, r.status, "%+v: %s", bad, r.body)
		require.Contains(t, string(r.body), `{"error":"heartbeat: `)
	}
	rec, err := e.ledger.Terminal(ctx, org, "t1")
	require.NoError(t, err)
	require.Nil(t, rec.HeartbeatAt, "a refused heartbeat changes nothing")
	require.Nil(t, rec.OldestUnsent)
	require.Zero(t, rec.Queued)
	require.Zero(t, keys(), "nor is a session key issued")

	// The fetch says 3 wait, the oldest for 5 minutes.
	r := fetch(apitype.Heartbeat{Queued: 3, OldestUnsent: 300})
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var sk apitype.SessionKeyResponse
	r.json(t, &sk)
	require.Equal(t, 1, keys())
	rec, err = e.ledger.Terminal(ctx, org, "t1")
	require.NoError(t, err)
	require.Equal(t, 3, rec.Queued)
	require.Equal(t, e.clock.Now().Add(-5*time.Minute).UTC(), rec.OldestUnsent.UTC())

	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	b := e.consoleBrowser().signedIn(hq)
	row := func() []string {
		t.Helper()
		rows := tableRows(t, string(b.get("/console/terminals").body), "terminal-list")
		require.Len(t, rows, 1)
		return rows[0]
	}
	require.Equal(t, []string{"t1", "bar", "fest", "active", "never", "3", "5 min", "1"}, row(), "never uploaded")
	dash := string(b.get("/console/dashboard").body)
	require.Equal(t, "1", figure(t, dash, "terminals_never"))
	require.Equal(t, "1", figure(t, dash, "terminals_queued"))

	// The upload sends 1 and says 2 still wait, the oldest for a minute.
	r = e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
		body: apitype.BatchRequest{Transactions: [][]byte{e.debit(term, e.cards[0], 1, 1000, 100)},
			Heartbeat: &apitype.Heartbeat{Queued: 2, OldestUnsent: 60}}})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	rec, err = e.ledger.Terminal(ctx, org, "t1")
	require.NoError(t, err)
	require.NotNil(t, rec.LastUpload)
	// The console's clock onto the upload's time (the database's).
	d := rec.LastUpload.Sub(e.clock.Now())
	require.GreaterOrEqual(t, d, time.Duration(0))
	e.clock.Add(d)
	upload := rec.LastUpload.UTC().Format("2006-01-02 15:04")

	e.clock.Add(20*time.Minute - time.Second)
	require.Equal(t, []string{"t1", "bar", "fest", "active", upload, "2", "21 min", "1"}, row(), "not silent a second before 20 minutes")
	dash = string(b.get("/console/dashboard").body)
	require.Equal(t, "0", figure(t, dash, "terminals_silent"))
	require.Equal(t, "0", figure(t, dash, "terminals_never"))
	require.Equal(t, "1", figure(t, dash, "terminals_attention"), "its queue")
	require.NotContains(t, dash, `<tr class="silent">`)

	e.clock.Add(time.Second)
	require.Equal(t, []string{"t1", "bar", "fest", "active · no upload for 20 min", upload, "2", "21 min", "1"}, row())
	dash = string(b.get("/console/dashboard").body)
	require.Equal(t, "1", figure(t, dash, "terminals_silent"))
	require.Equal(t, 1, strings.Count(dash, `<tr class="silent">`))
	require.Equal(t, [][]string{{"t1", "bar", "active · no upload for 20 min", upload, "20 min", "2", "21 min"}}, tableRows(t, dash, "terminals"))
}

// TestConsoleAuditVerification: the audit page's verification is the
// API's (GET /v1/audit/verify): the custody log exported and verified with
// the server's HQ key pinned, as `loopcard audit verify --hq-key` does.
// An entry changed in the database behind the log's back fails it, and the
// page says so and which check failed.
func TestConsoleAuditVerification(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.custody()
	var entries int64
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM handover_entries WHERE org_id = $1`, org).Scan(&entries))
	require.Positive(t, entries)
	audrey := e.addStaff(org, "audrey", api.RoleAuditor, "")
	b := e.consoleBrowser().signedIn(audrey)
	page := string(b.get("/console/audit").body)
	require.Contains(t, page, `<a href="/console/audit/verify">`)
	require.NotContains(t, page, `id="verification"`, "verified on demand only")
	r := b.get("/console/audit/verify")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	page = string(r.body)
	require.Equal(t, "verified", figure(t, page, "verified"))
	require.Equal(t, strconv.FormatInt(entries, 10), figure(t, page, "entries"))
	require.Contains(t, page, "1 checkpoints signed by HQ")
	require.Contains(t, page, "(pinned: true)")
	require.NotContains(t, page, `id="verify-failure"`)
	require.Contains(t, string(b.get("/console/audit/verify?lang=nl").body), `data-figure="verified">in orde<`)
	require.Equal(t, 2, e.auditCount(`action = 'GET /v1/audit/verify' AND outcome = 'ok' AND actor = 'auditor:1:staff:audrey'`))

	// One byte of entry 0 changed, past the append-only trigger.
	tx, err := e.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE handover_entries SET entry = set_byte(entry, length(entry) - 1, get_byte(entry, length(entry) - 1) # 1)
		WHERE org_id = $1 AND idx = 0`, org)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	page = string(b.get("/console/audit/verify?lang=en").body)
	require.Equal(t, "FAILED", figure(t, page, "verified"))
	require.Regexp(t, `<p id="verify-failure"><strong>The export does not verify:</strong> [^<]*entry 0: `, page)

	// A store member may not; an organizer without a custody log has none
	// to verify.
	sam := e.addStaff(org, "sam", api.RoleStore, "store-a")
	require.Equal(t, http.StatusForbidden, e.consoleBrowser().signedIn(sam).get("/console/audit/verify").status)
}

// TestConsolePayout: HQ pays the refunds that are due from the console as
// `loopcard ledger payout` does: a review (the dry run: lines and plan,
// nothing booked), then the approval of that plan, which books the run;
// its pain.001 file is kept sealed on the server and downloads again and
// again. A stale plan or a bad IBAN changes nothing; an auditor sees the
// runs but may neither run one nor download a file.
func TestConsolePayout(t *testing.T) {
	e := newEnv(t, envOptions{cards: 2})
	ctx := context.Background()
	r := e.do(request{method: "POST", path: "/v1/card/refund", card: e.cards[0].token, pin: e.cards[0].pin,
		body: apitype.RefundRequest{Name: "Ada Lovelace", IBAN: "NL91ABNA0417164300"}})
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	waiting := func() int {
		_, n, err := e.ledger.Refunds(ctx, org, 10)
		require.NoError(t, err)
		return n
	}
	require.Equal(t, 1, waiting())
	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	audrey := e.addStaff(org, "audrey", api.RoleAuditor, "")
	debtor := url.Values{"debtor_name": {"Festival BV"}, "debtor_iban": {"NL02ABNA0123456789"}, "debtor_bic": {"ABNANL2A"}}

	a := e.consoleBrowser().signedIn(audrey)
	page := string(a.get("/console/refunds").body)
	require.NotContains(t, page, `action="/console/payouts/review"`, "no payout form for an auditor")
	require.Equal(t, http.StatusForbidden, a.post("/console/payouts/review", debtor, nil).status)

	b := e.consoleBrowser().signedIn(hq)
	require.Contains(t, string(b.get("/console/refunds").body), `action="/console/payouts/review"`)
	bad := maps.Clone(debtor)
	bad.Set("debtor_iban", "NL00ABNA0123456789")
	require.Equal(t, http.StatusBadRequest, b.post("/console/payouts/review", bad, nil).status)

	r = b.post("/console/payouts/review", debtor, nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	page = string(r.body)
	lines := tableRows(t, page, "payout-lines")
	require.Len(t, lines, 1)
	require.Equal(t, e.cards[0].hex(), lines[0][0])
	plan := regexp.MustCompile(`<code id="plan">([0-9a-f]{24})</code>`).FindStringSubmatch(page)
	require.NotNil(t, plan)
	require.Equal(t, 1, waiting(), "a review books nothing")

	stale := maps.Clone(debtor)
	stale.Set("plan", "000000000000000000000000")
	r = b.post("/console/payouts/approve", stale, nil)
	require.Equal(t, http.StatusConflict, r.status, string(r.body))
	require.Contains(t, string(r.body), "The payout changed since you reviewed it")
	require.Equal(t, 1, waiting(), "a stale plan books nothing")

	approve := maps.Clone(debtor)
	approve.Set("plan", plan[1])
	r = b.post("/console/payouts/approve", approve, nil)
	require.Equal(t, http.StatusSeeOther, r.status, string(r.body))
	loc := r.header.Get("Location")
	require.True(t, strings.HasPrefix(loc, "/console/refunds?payout="), loc)
	require.Zero(t, waiting(), "booked")
	id := strings.TrimPrefix(loc, "/console/refunds?payout=")
	page = string(b.get(loc).body)
	require.Contains(t, page, `<a id="payout-file" href="/console/payouts/`+id+`/file" download>`)
	require.Len(t, tableRows(t, page, "payouts"), 1)

	file := b.get("/console/payouts/" + id + "/file")
	require.Equal(t, http.StatusOK, file.status, string(file.body))
	require.Equal(t, "application/xml", file.header.Get("Content-Type"))
	require.Contains(t, file.header.Get("Content-Disposition"), "attachment")
	require.Contains(t, string(file.body), "pain.001.001.09")
	require.Contains(t, string(file.body), "NL91ABNA0417164300", "the payee")
	require.Contains(t, string(file.body), "NL02ABNA0123456789", "the debtor")
	again := b.get("/console/payouts/" + id + "/file")
	require.Equal(t, file.body, again.body, "the same file, again")
	var sealed []byte
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT sealed_file FROM payouts WHERE org_id = $1`, org).Scan(&sealed))
	require.NotContains(t, string(sealed), "NL91ABNA0417164300", "kept sealed")
	require.NotContains(t, string(sealed), "pain.001")

	require.Equal(t, http.StatusForbidden, a.get("/console/payouts/"+id+"/file").status)
	require.Contains(t, string(a.get("/console/refunds").body), `<table id="payouts">`, "the auditor sees the runs")
	require.NotContains(t, string(a.get("/console/refunds").body), "/file", "but no download")
	require.Equal(t, 2, e.auditCount(`action = 'POST /v1/hq/payouts' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, 2, e.auditCount(`action = 'GET /v1/hq/payouts/{payout}/file' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))
	require.Equal(t, 1, e.auditCount(`action = 'GET /v1/hq/payouts/{payout}/file' AND outcome = 'denied' AND actor = 'auditor:1:staff:audrey'`))
}
