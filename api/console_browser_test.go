package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
)

// consoleTab is one headless Chromium tab at phone size on the API.
type consoleTab struct {
	t     *testing.T
	ctx   context.Context
	url   string
	dir   string
	shots int
	axe   string
	mu    sync.Mutex
	log   []string
}

func newConsoleTab(t *testing.T, url string) *consoleTab {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: install the Debian package chromium (apt-get install chromium)")
	}
	axe, err := os.ReadFile("cardpage/testdata/axe.min.js")
	require.NoError(t, err)
	dir := t.TempDir()
	if a := os.Getenv("LOOPCARD_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	t.Logf("screenshots in %s", dir)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(390, 844),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("password-store", "basic"), chromedp.Flag("use-mock-keychain", true),
		// The API's certificate is the test CA's.
		chromedp.Flag("ignore-certificate-errors", true), chromedp.Flag("lang", "en-US"))
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	b := &consoleTab{t: t, ctx: ctx, url: url, dir: dir, axe: string(axe)}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.log = append(b.log, m.String())
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		<-done
	})
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	return b
}

func (b *consoleTab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, steps...))
}

func (b *consoleTab) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.url+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// submit clicks sel and waits for the next document.
func (b *consoleTab) submit(sel string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) main`)))
}

func (b *consoleTab) text() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
	require.NoError(b.t, err)
	return s
}

func (b *consoleTab) fill(sel, text string) {
	b.t.Helper()
	q, err := json.Marshal(sel)
	require.NoError(b.t, err)
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector(`+string(q)+`).value = ""`), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// page checks the text of the page, photographs it and runs axe-core on
// it (WCAG 2 A and AA rules and best practices): any finding fails.
func (b *consoleTab) page(name string, want ...string) {
	b.t.Helper()
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
	require.NoError(b.t, err)
	for _, w := range want {
		require.Contains(b.t, text, w, name)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	b.shots++
	require.NoError(b.t, os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.shots, name)), png, 0o644))
	b.do(chromedp.Evaluate[chromedp.Void](b.axe))
	res, err := chromedp.Run(b.ctx, chromedp.Evaluate[axeResult](`axe.run(document, {resultTypes: ["violations"]}).then(r => ({
		passes: r.passes.length,
		violations: r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))}))`,
		chromedp.EvalAwaitPromise))
	require.NoError(b.t, err)
	require.Greater(b.t, res.Passes, 10, "axe-core ran its rules")
	for _, v := range res.Violations {
		b.t.Errorf("axe %s: %s (%s) %s on %v", name, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

type axeResult struct {
	Passes     int            `json:"passes"`
	Violations []axeViolation `json:"violations"`
}

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
	b := newConsoleTab(t, e.url)

	b.open("/console/")
	b.page("login", "Sign in", "Code from the authenticator app")
	b.fill("#name", hq.name)
	b.fill("#password", "wrong password!")
	b.fill("#code", e.code(hq, 0))
	b.submit(`form.login button`)
	b.page("login-refused", "Wrong organizer, name, password or code.")
	b.fill("#password", hq.password)
	b.fill("#code", e.code(hq, 0))
	b.submit(`form.login button`)
	b.page("dashboard", "Sales per merchant per hour", "Outstanding balance", "Top-ups by channel", "t1", "t2")
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect").length`))
	require.NoError(t, err)
	require.Equal(t, 2, n, "the chart has a bar for each hour")

	b.open("/console/alerts")
	b.page("alerts", "clone", blocked)
	b.fill(`form[action$="/review"] input[name=reason]`, "two debits at one sequence: card taken in, holder known")
	b.submit(`form[action$="/review"] button`)
	b.page("alert-reviewed", "Done.", "Reviewed", "hq:1:staff:alice")

	b.open("/console/cards")
	b.page("cards")
	b.fill("#card", blocked)
	b.submit(`form[action="/console/cards"] button`)
	b.page("card-blocked", "blocked", "History")
	b.fill("#reason", "reviewed: the holder showed the receipt")
	b.submit(`form[action$="/unblock"] button`)
	b.page("card-unblocked", "Done.", "active")
	require.Equal(t, "active", e.cardStatus(e.cards[0]))
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/cards/{card}/unblock' AND outcome = 'ok' AND actor = 'hq:1:staff:alice'`))

	// The holder comes back: the card is lost. HQ blocks it from the
	// card's page; it is blocked and on the terminals' blocklist.
	b.fill("#block-reason", "lost at the main stage")
	b.submit(`form[action$="/block"] button`)
	b.page("card-blocked-by-hq", "Done: the card is blocked", "Unblock card")
	st, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("#card-status")))
	require.NoError(t, err)
	require.Equal(t, "blocked", st)
	n, err = chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('form[action$="/block"]').length`))
	require.NoError(t, err)
	require.Zero(t, n, "a blocked card offers no block")
	require.Equal(t, "blocked", e.cardStatus(e.cards[0]))
	bl, err := e.ledger.Blocklist(context.Background(), org, 0, true)
	require.NoError(t, err)
	require.Equal(t, [][]byte{e.cards[0].uid}, bl.All, "the card is on the blocklist")
	require.Equal(t, 1, e.auditCount(`action = 'POST /v1/hq/cards/{card}/block' AND outcome = 'ok' AND actor = 'hq:1:staff:alice' AND target = 'card `+blocked+`'`))

	// A terminal registered: its enrolment token shown once; it enrols
	// with it; then HQ revokes it.
	b.open("/console/terminals")
	b.page("terminals", "t1", "t2", "Register a terminal")
	b.fill("#terminal", "bar-3")
	b.fill("#merchant", "bar")
	b.submit(`form[action="/console/terminals"] button`)
	b.page("terminal-registered", "Enrolment token, shown only now", "bar-3")
	tok, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("#enrolment-token")))
	require.NoError(t, err)
	r := e.do(request{method: "POST", path: "/v1/terminals/enrol", body: apitype.EnrolRequest{Org: org, Terminal: "bar-3",
		Token: tok, SigningKey: make([]byte, 32), KexAlg: "x25519", KexKey: make([]byte, 32)}})
	require.Equal(t, http.StatusCreated, r.status, "the token shown enrols the terminal: %s", r.body)
	b.open("/console/terminals")
	require.NotContains(t, b.text(), tok, "the token is shown once")
	require.NotContains(t, e.logs.String(), tok, "the token is in no log")
	b.submit(`form[action="/console/terminals/bar-3/revoke"] button`)
	b.page("terminal-revoked", "Done.", "revoked")
	tr, err := e.ledger.Terminal(context.Background(), org, "bar-3")
	require.NoError(t, err)
	require.Equal(t, ledger.TerminalRevoked, tr.Status)

	b.open("/console/refunds")
	b.page("refunds", "Waiting for a payout", e.cards[2].hex(), "loopcard ledger payout")
	b.open("/console/batches")
	b.page("batches", "fest")
	b.open("/console/stores")
	b.page("stores", "store-a", "store-b", "Expected cash")
	b.open("/console/keys")
	b.page("keys", "fest", "event-debit")
	b.open("/console/audit")
	b.page("audit", "hq:1:staff:alice", "POST /v1/hq/cards/{card}/unblock", "console sign-in")

	consoleBoothBrowser(t, e, b)

	b.open("/console/dashboard?lang=nl")
	b.page("nl-dashboard", "Verkoop per verkooppunt per uur", "Openstaand saldo")
	b.open("/console/alerts")
	b.page("nl-alerts", "Meldingen", "Beoordeeld")
	b.open("/console/cards?card=" + e.cards[1].hex())
	b.page("nl-card", "Kaart blokkeren (verloren of gestolen)", "Reden (zoals verloren of gestolen)", "active")
	b.open("/console/cards?card=" + blocked)
	b.page("nl-card-blocked", "Kaart deblokkeren", "blocked")
	b.submit(`header form button`)
	b.page("nl-signed-out", "Inloggen")
	b.open("/console/dashboard")
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
	require.NoError(t, err)
	require.Contains(t, text, "Je sessie is verlopen", "signed out: the pages need a new sign-in")

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.log {
		require.False(t, strings.Contains(m, "Content Security Policy") || strings.HasPrefix(m, "exception"), m)
	}
}
