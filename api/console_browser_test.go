package api_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/console/consoletest"
	"github.com/loopcard/loopcard/ledger"
)

// TestConsoleBrowser signs in to the console in headless Chromium at
// phone size with password and TOTP, walks its pages on a populated
// installation, reviews the alert that blocked a card and unblocks the
// card, then blocks it as lost (it shows blocked and is on the terminals'
// blocklist), in English and Dutch; each page is photographed and checked by
// axe-core, and the policy blocks nothing the pages use.
func TestConsoleBrowser(t *testing.T) {
	e := newEnv(t, envOptions{cards: 4})
	e.consoleEvent()
	hq := e.addStaff(org, "alice", api.RoleHQ, "")
	blocked := e.cards[0].hex()
	b := consoletest.New(t, e.url, "console")

	b.Open("/console/")
	b.Page("login", "Sign in", "Code from the authenticator app")
	b.Fill("#name", hq.name)
	b.Fill("#password", "wrong password!")
	b.Fill("#code", e.code(hq, 0))
	b.Submit(`form.login button`)
	b.Page("login-refused", "Wrong organizer, name, password or code.")
	b.Fill("#password", hq.password)
	b.Fill("#code", e.code(hq, 0))
	b.Submit(`form.login button`)
	b.Page("dashboard", "Sales per merchant per hour", "Outstanding balance", "Top-ups by channel", "t1", "t2")
	n, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect").length`))
	require.NoError(t, err)
	require.Equal(t, 2, n, "the chart has a bar for each hour")

	b.Open("/console/alerts")
	b.Page("alerts", "clone", blocked)
	b.Fill(`form[action$="/review"] input[name=reason]`, "two debits at one sequence: card taken in, holder known")
	b.Submit(`form[action$="/review"] button`)
	b.Page("alert-reviewed", "Done.", "Reviewed", "hq:1:staff:alice")

	b.Open("/console/cards")
	b.Page("cards")
	b.Fill("#card", blocked)
	b.Submit(`form[action="/console/cards"] button`)
	b.Page("card-blocked", "blocked", "History")
	b.Fill("#reason", "reviewed: the holder showed the receipt")
	b.Submit(`form[action$="/unblock"] button`)
	b.Page("card-unblocked", "Done.", "active")
	require.Equal(t, "active", e.cardStatus(e.cards[0]))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/cards/{card}/unblock' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))

	// The holder comes back: the card is lost. HQ blocks it from the
	// card's page; it is blocked and on the terminals' blocklist.
	b.Fill("#block-reason", "lost at the main stage")
	b.Submit(`form[action$="/block"] button`)
	b.Page("card-blocked-by-hq", "Done: the card is blocked", "Unblock card")
	st, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS("#card-status")))
	require.NoError(t, err)
	require.Equal(t, "blocked", st)
	n, err = chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action$="/block"]').length`))
	require.NoError(t, err)
	require.Zero(t, n, "a blocked card offers no block")
	require.Equal(t, "blocked", e.cardStatus(e.cards[0]))
	bl, err := e.ledger.Blocklist(context.Background(), org, 0, true)
	require.NoError(t, err)
	require.Equal(t, [][]byte{e.cards[0].uid}, bl.All, "the card is on the blocklist")
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/cards/{card}/block' AND outcome = 'ok' AND actor = 'hq:1:staff:alice' AND target = 'card `+blocked+`'`))

	// A terminal registered: its enrolment token shown once; it enrols
	// with it; then HQ revokes it.
	b.Open("/console/terminals")
	b.Page("terminals", "t1", "t2", "Register a terminal")
	b.Fill("#terminal", "bar-3")
	b.Fill("#merchant", "bar")
	b.Submit(`form[action="/console/terminals"] button`)
	b.Page("terminal-registered", "Enrolment token, shown only now", "bar-3")
	tok, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS("#enrolment-token")))
	require.NoError(t, err)
	r := e.do(request{method: "POST", path: "/v1/terminals/enrol", body: apitype.EnrolRequest{Org: org, Terminal: "bar-3",
		Token: tok, SigningKey: make([]byte, 32), KexAlg: "x25519", KexKey: make([]byte, 32)}})
	require.Equal(t, http.StatusCreated, r.status, "the token shown enrols the terminal: %s", r.body)
	b.Open("/console/terminals")
	require.NotContains(t, b.Text(), tok, "the token is shown once")
	require.NotContains(t, e.logs.String(), tok, "the token is in no log")
	b.Submit(`form[action="/console/terminals/bar-3/revoke"] button`)
	b.Page("terminal-revoked", "Done.", "revoked")
	tr, err := e.ledger.Terminal(context.Background(), org, "bar-3")
	require.NoError(t, err)
	require.Equal(t, ledger.TerminalRevoked, tr.Status)

	b.Open("/console/refunds")
	b.Page("refunds", "Waiting for a payout", e.cards[2].hex(), "loopcard ledger payout")
	// The refund paid out: reviewed, approved, its pain.001 file
	// downloaded.
	b.Fill("#debtor_name", "Festival BV")
	b.Fill("#debtor_iban", "NL02ABNA0123456789")
	b.Submit(`form[action="/console/payouts/review"] button`)
	b.Page("payout-review", "The payout to approve", e.cards[2].hex(), "nothing is booked yet")
	b.Submit(`form[action="/console/payouts/approve"] button`)
	b.Page("payout-booked", "Done: the payout is booked.", "Download its pain.001 file", "Booked payouts")
	_, waiting, err := e.ledger.Refunds(context.Background(), org, 10)
	require.NoError(t, err)
	require.Zero(t, waiting)
	xml := b.Download("#payout-file")
	require.Contains(t, string(xml), "pain.001.001.09")
	require.Contains(t, string(xml), "NL02ABNA0123456789")
	require.Contains(t, string(xml), "NL91ABNA0417164300", "the holder's account")
	b.Open("/console/batches")
	b.Page("batches", "fest")
	b.Open("/console/stores")
	b.Page("stores", "store-a", "store-b", "Expected cash")
	b.Open("/console/keys")
	b.Page("keys", "fest", "event-debit")
	b.Open("/console/audit")
	b.Page("audit", "hq:1:staff:alice", "POST /v1/hq/cards/{card}/unblock", "console sign-in")

	consoleBoothBrowser(t, e, b)

	b.Open("/console/dashboard?lang=nl")
	b.Page("nl-dashboard", "Verkoop per verkooppunt per uur", "Openstaand saldo")
	b.Open("/console/alerts")
	b.Page("nl-alerts", "Meldingen", "Beoordeeld")
	b.Open("/console/cards?card=" + e.cards[1].hex())
	b.Page("nl-card", "Kaart blokkeren (verloren of gestolen)", "Reden (zoals verloren of gestolen)", "active")
	b.Open("/console/cards?card=" + blocked)
	b.Page("nl-card-blocked", "Kaart deblokkeren", "blocked")
	b.Submit(`header form button`)
	b.Page("nl-signed-out", "Inloggen")
	b.Open("/console/dashboard")
	text, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS("main")))
	require.NoError(t, err)
	require.Contains(t, text, "Je sessie is verlopen", "signed out: the pages need a new sign-in")

	// A store member of store-a: its own store's day and custody, in
	// Dutch and English, never store-b's.
	sam := e.addStaff(org, "sam", api.RoleStore, "store-a")
	e.stock("store-a") // the batch's cards received at store-a
	b.Open("/console/login")
	b.Fill("#name", sam.name)
	b.Fill("#password", sam.password)
	b.Submit(`form.login button`)
	b.Page("nl-store-member", "Winkel store-a", "Verwacht contant")
	require.Equal(t, "Mijn winkel", b.TextOf("nav"), "a store member's menu")
	require.NotContains(t, b.Text(), "store-b")
	b.Open("/console/stores?lang=en")
	b.Page("store-member", "Store store-a", "Expected cash", "Cards in stock")
	require.Equal(t, 1, b.Count("#store-days tbody tr"), "its own store's day only")
	require.Equal(t, "store-a", b.TextOf("#store-days tbody td"))
	require.Equal(t, strconv.Itoa(len(e.cards)), b.TextOf("#store-days tbody td:nth-child(6)"), "cards received")
	require.Equal(t, strconv.Itoa(len(e.cards)), b.TextOf(`[data-figure="cards_in_stock"]`), "cards in stock, first")
	require.Zero(t, b.Count(`a[href="/console/dashboard"]`), "a store member's menu has its own pages only")
	b.Open("/console/stores?store=store-b")
	b.Page("store-member-other-store", "Your role may not do this.")
	require.NotContains(t, b.Text(), "store-b")
	b.Open("/console/cards?card=" + e.cards[1].hex())
	b.Page("store-member-card", "Your role may not do this.")
	b.CheckConsole()
}
