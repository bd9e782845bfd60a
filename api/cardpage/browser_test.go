package cardpage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds Debian's chromium; the test fails without it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: install the Debian package chromium (apt-get install chromium)")
	}
	return p
}

// artifacts is where screenshots go: $LOOPCARD_ARTIFACTS/cardpage, or a
// temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("LOOPCARD_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "cardpage")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// tab is one headless Chromium tab at phone size on the test server.
type tab struct {
	t      *testing.T
	ctx    context.Context
	url    string
	dir    string
	shots  int
	axe    string
	mu     sync.Mutex
	consol []string
}

func newTab(t *testing.T, url string) *tab {
	t.Helper()
	exe := chromiumPath(t)
	axe, err := os.ReadFile("testdata/axe.min.js")
	require.NoError(t, err)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		// The test server's certificate is httptest's own.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("lang", "en-US"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
	})
	b := &tab{t: t, ctx: ctx, url: url, dir: artifacts(t), axe: string(axe)}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.consol = append(b.consol, m.String())
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancelTime(); <-done })
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	return b
}

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	require.NoError(b.t, chromedp.Do(b.ctx, steps...))
}

func (b *tab) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.url+path), chromedp.WaitReady(chromedp.CSS("footer")))
}

// submit clicks sel and waits for the next document.
func (b *tab) submit(sel string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) footer`)))
}

func (b *tab) fill(sel, text string) {
	b.t.Helper()
	q, err := json.Marshal(sel)
	require.NoError(b.t, err)
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector(`+string(q)+`).value = ""`), chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (b *tab) main() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
	require.NoError(b.t, err)
	return s
}

// shot saves a full-page screenshot as NN-name.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	b.shots++
	require.NoError(b.t, os.WriteFile(filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.shots, name)), png, 0o644))
}

// violation is one axe-core finding.
type violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

type axeResult struct {
	Passes     int         `json:"passes"`
	Violations []violation `json:"violations"`
}

// checkAccessibility runs axe-core on the page (WCAG 2 A and AA rules and
// best practices) and fails on a serious or critical finding.
func (b *tab) checkAccessibility(name string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](b.axe))
	res, err := chromedp.Run(b.ctx, chromedp.Evaluate[axeResult](`axe.run(document, {resultTypes: ["violations"]}).then(r => ({
		passes: r.passes.length,
		violations: r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))}))`,
		chromedp.EvalAwaitPromise))
	require.NoError(b.t, err)
	require.Greater(b.t, res.Passes, 10, "axe-core ran its rules")
	for _, v := range res.Violations {
		b.t.Logf("axe %s: %s (%s) %s on %v", name, v.ID, v.Impact, v.Help, v.Nodes)
		require.NotContains(b.t, []string{"serious", "critical"}, v.Impact, "%s: %s: %s on %v", name, v.ID, v.Help, v.Nodes)
	}
}

// page checks, photographs and audits the page in the tab.
func (b *tab) page(name string, want ...string) {
	b.t.Helper()
	text := b.main()
	for _, w := range want {
		require.Contains(b.t, text, w, name)
	}
	b.shot(name)
	b.checkAccessibility(name)
}

// TestBrowser walks a cardholder through the pages in headless Chromium
// at phone size, against the real API: balance, top-up, wrong PIN,
// lockout, history, refund request, claim, export, erasure, in English
// and Dutch; each page is photographed and checked with axe-core.
func TestBrowser(t *testing.T) {
	e := newPayingEnv(t, 2)
	card, other := e.cards[0], e.cards[1]
	e.pendingLoad(t, card, 500)
	ts := httptest.NewUnstartedServer(e.srv)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	b := newTab(t, ts.URL)
	cb, ob := "/c/"+card.token, "/c/"+other.token

	b.open(cb)
	b.page("balance", "€10.00", "Waiting to be loaded", "€5.00", card.hex())

	// Top-up: to the test payment provider (its own origin) and back.
	b.do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(`button[name=amount][value="2000"]`)),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) button[value=pay]`)))
	require.Contains(t, b.main(), "Pay €20.00")
	b.shot("topup-provider")
	b.submit(`button[value=pay]`)
	b.page("topup-done", "Your payment is being processed", "€25.00")

	b.fill("#pin", card.wrongPIN())
	b.submit(`form[action$="/history"] button`)
	b.page("wrong-pin", "Wrong PIN")
	invalid, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("pin").getAttribute("aria-invalid")`))
	require.NoError(t, err)
	require.Equal(t, "true", invalid)

	b.open(ob)
	for range 5 {
		b.fill("#pin", other.wrongPIN())
		b.submit(`form[action$="/history"] button`)
	}
	b.fill("#pin", other.pin)
	b.submit(`form[action$="/history"] button`)
	b.page("lockout", "PIN entry is locked")

	// By keyboard alone: Tab from the top of the page reaches the PIN
	// field (after the skip link, the language switch and the top-up
	// buttons), and Enter sends the form.
	b.open(cb)
	var tabs int
	for tabs = 1; tabs <= 10; tabs++ {
		b.do(chromedp.KeyEvent(kb.Tab))
		id, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement.id`))
		require.NoError(t, err)
		if id == "pin" {
			break
		}
	}
	require.LessOrEqual(t, tabs, 6, "the PIN field is the sixth stop")
	b.do(chromedp.KeyEvent(card.pin),
		chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) footer`)))
	b.page("history", "Top-up (cash)", "Top-up (online)", "€10.00", "€20.00")

	// Refund: the script refuses a mistyped IBAN before sending; the
	// server refuses it too.
	b.open(cb + "/refund")
	b.fill("#pin", card.pin)
	b.fill("#name", "Ada Lovelace")
	b.fill("#iban", "NL92 ABNA 0417 1643 00")
	b.do(chromedp.Click(chromedp.CSS(`form[action$="/refund"] button`)))
	msg, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.getElementById("iban").validationMessage`))
	require.NoError(t, err)
	require.Equal(t, "This IBAN is not valid. Check it for typing errors.", msg)
	b.do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"; document.querySelector('form[action$="/refund"]').submit()`),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) footer`)))
	b.page("refund-invalid-iban", "This IBAN is not valid")
	b.fill("#pin", card.pin)
	b.fill("#iban", "NL91 ABNA 0417 1643 00")
	b.submit(`form[action$="/refund"] button`)
	// The refund is the balance and the loads paid online but not yet on
	// the card (€10.00 + €5.00 + €20.00).
	b.page("refund", "Your refund is requested; the card holds €35.00 now")

	b.open(cb + "/claim")
	b.fill("#pin", card.pin)
	b.fill("#email", "ada@example.org")
	b.fill("#password", "correct horse battery")
	b.do(chromedp.Click(chromedp.CSS("#consent")))
	b.submit(`form[action$="/claim"] button`)
	b.page("claimed-profile", "ada@example.org", card.hex(), "Download my data")
	b.open(cb)
	b.page("claimed-card", "linked to a profile")

	// Export: a JSON file with the profile's data.
	dl := t.TempDir()
	progress := chromedp.Events(b.ctx, browser.DownloadProgress)
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: new(true)})
		return err
	}))
	b.open("/account")
	b.do(chromedp.Click(chromedp.CSS(`form[action="/account/export"] button`)))
	var file string
	for ev, err := range progress {
		require.NoError(t, err)
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dl, ev.GUID)
			break
		}
		require.NotEqual(t, browser.DownloadProgressStateCanceled, ev.State)
	}
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Contains(t, string(data), `"email": "ada@example.org"`)
	require.NotContains(t, string(data), "NL91ABNA0417164300", "asked before the claim: not the profile's")

	// Erasure needs the box ticked (the browser holds the form back
	// until then; the server checks too, see TestCardholderPages).
	b.open("/account")
	b.do(chromedp.Click(chromedp.CSS("#confirm")))
	b.submit(`form[action="/account/erase"] button`)
	b.page("erased", "Your personal data is erased")
	require.Zero(t, e.count(t, `SELECT count(*) FROM api_profiles`))

	b.open(cb + "?lang=nl")
	// Refunded: balance and pending loads stay until the payout fixes the
	// refund's amount.
	b.page("nl-balance", "Saldo", "€\u00a010,00", "Kies een bedrag", "terugbetaling aangevraagd", "in behandeling: het bedrag wordt vastgesteld")
	b.open("/privacy")
	b.page("nl-privacy", "Privacyverklaring", "Je rechten")

	// The policy held: nothing was refused, nothing threw.
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.consol {
		require.False(t, strings.Contains(m, "Content Security Policy") || strings.HasPrefix(m, "exception"), m)
	}
	require.False(t, slices.ContainsFunc(b.consol, func(m string) bool { return strings.Contains(m, card.token) }))
}

// TestBrowserBlock: a cardholder blocks a lost card from its page, in
// Dutch with the QR code and PIN, and another from its profile's page in
// English; each goes on the organizer's blocklist, and the pages show it
// blocked without the action.
func TestBrowserBlock(t *testing.T) {
	e := newAPIEnv(t, 2, 0)
	card, other := e.cards[0], e.cards[1]
	ts := httptest.NewUnstartedServer(e.srv)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	b := newTab(t, ts.URL)
	cb := "/c/" + card.token

	b.open(cb + "?lang=nl")
	b.page("nl-card-block-link", "Kwijt of gestolen? Blokkeer de kaart")
	b.do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(`a[href$="/block"]`)),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) footer`)))
	b.page("nl-block-form", "Je kaart blokkeren", "Ik ben de kaart kwijt", "De kaart is gestolen")
	b.do(chromedp.Click(chromedp.CSS("#reason-stolen")))
	b.fill("#pin", card.wrongPIN())
	b.submit(`form[action$="/block"] button`)
	b.page("nl-block-wrong-pin", "Verkeerde pincode")
	require.Zero(t, e.count(t, `SELECT count(*) FROM card_blocklist WHERE listed`), "a wrong PIN blocks nothing")
	b.do(chromedp.Click(chromedp.CSS("#reason-stolen")))
	b.fill("#pin", card.pin)
	b.submit(`form[action$="/block"] button`)
	b.page("nl-blocked", "De kaart is geblokkeerd")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM card_blocklist WHERE listed AND card_id = $1`, card.uid))
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM card_alert_actions WHERE action = 'block' AND card_id = $1 AND reason = 'stolen (cardholder)'`, card.uid))
	b.open(cb + "?lang=nl")
	b.page("nl-card-blocked", "geblokkeerd")
	require.NotContains(t, b.main(), "Blokkeer de kaart", "a blocked card offers no block")

	// The other card, claimed, blocked from the profile's page in English.
	ob := "/c/" + other.token
	b.open(ob + "/claim?lang=en")
	b.fill("#pin", other.pin)
	b.fill("#email", "grace@example.org")
	b.fill("#password", "correct horse battery")
	b.do(chromedp.Click(chromedp.CSS("#consent")))
	b.submit(`form[action$="/claim"] button`)
	b.page("en-profile", "grace@example.org", other.hex(), "Lost or stolen? Block the card")
	b.do(chromedp.Click(chromedp.CSS(`details:has(form[action$="/block"]) summary`)),
		chromedp.Click(chromedp.CSS(`#lost-`+other.hex())))
	b.submit(`form[action$="/block"] button`)
	b.page("en-blocked", "The card is blocked")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM card_blocklist WHERE listed AND card_id = $1`, other.uid))
	require.Equal(t, 2, e.count(t, `SELECT version FROM card_blocklist_heads`))
}

// TestBrowserAutoTopUp: a claimed profile sets a card's auto top-up on
// its page, saves a payment method on the (test) provider's page and
// comes back; a store's online tap below the threshold charges it; the
// charge shows on the profile's page, in English and Dutch, each page
// checked with axe-core.
func TestBrowserAutoTopUp(t *testing.T) {
	e := newPayingEnv(t, 1)
	card := e.cards[0]
	ts := httptest.NewUnstartedServer(e.srv)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	b := newTab(t, ts.URL)

	b.open("/c/" + card.token + "/claim")
	b.fill("#pin", card.pin)
	b.fill("#email", "lin@example.org")
	b.fill("#password", "correct horse battery")
	b.do(chromedp.Click(chromedp.CSS("#consent")))
	b.submit(`form[action$="/claim"] button`)
	b.page("auto-profile", "lin@example.org", "Auto top-up")
	id := card.hex()
	b.do(chromedp.Click(chromedp.CSS(`details:has(form[action$="/autotopup"]) summary`)),
		chromedp.SetValue(chromedp.CSS("#auto-amount-"+id), "2000"),
		chromedp.SetValue(chromedp.CSS("#auto-threshold-"+id), "2000"),
		chromedp.SetValue(chromedp.CSS("#auto-limit-"+id), "5000"))
	b.shot("auto-form")
	b.checkAccessibility("auto-form")
	// To the provider's page (its own origin), where the card is saved.
	b.do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(`form[action$="/autotopup"] button`)),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) button[value=save]`)))
	require.Contains(t, b.main(), "Save a payment method for the auto top-up")
	b.shot("auto-provider")
	b.submit(`button[value=save]`)
	b.page("auto-saved", "Auto top-up turns on as soon as", "Reload €20.00 when the balance is below €20.00, at most €50.00 a day.", "on")

	// A store's online tap: the card holds €10.00, below €20.00.
	loads := e.storeTap(t, card)
	require.Equal(t, []int64{2000}, loads)
	require.Equal(t, []int64{2000}, e.storeTap(t, card), "the same load: one charge")
	b.open("/account")
	b.page("auto-charged", "Auto top-up charges", "€20.00", "paid")
	b.open("/account?lang=nl")
	b.page("nl-auto-charged", "Automatisch opwaarderen", "Automatische opwaarderingen", "betaald", "€\u00a020,00")

	// Turned off from the page.
	b.open("/account?lang=en")
	b.submit(`form[action$="/autotopup/stop"] button`)
	b.do(chromedp.Click(chromedp.CSS(`details:has(form[action$="/autotopup"]) summary`)))
	b.page("auto-off", "Reload €20.00", "off", "Turned off: turned off by the cardholder")
	require.Equal(t, 1, e.count(t, `SELECT count(*) FROM autotopup_rules WHERE status = 'disabled'`))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.consol {
		require.False(t, strings.Contains(m, "Content Security Policy") || strings.HasPrefix(m, "exception"), m)
	}
}
