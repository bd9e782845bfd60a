// Package consoletest drives the HQ console in headless Chromium at phone
// size for tests: sign in, open pages, fill and submit forms, download
// files, and check each page with axe-core (WCAG 2 A and AA and best
// practices) while saving a screenshot of it. The API's tests walk a
// test-populated installation with it, the runbook's end-to-end test the
// installation its event leaves.
package consoletest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Tab is one headless Chromium tab at phone size on the API.
type Tab struct {
	T   *testing.T
	Ctx context.Context
	URL string
	// Dir holds the screenshots: $LOOPCARD_ARTIFACTS/<name> when set.
	Dir   string
	shots int
	axe   string
	// pageText is the element whose text Page checks.
	pageText string
	mu       sync.Mutex
	log      []string
}

// Options shape a tab: its viewport, the element whose text Page checks
// and how long the whole tab may run.
type Options struct {
	Width, Height int64
	// Touch emulates a touch screen (a till); otherwise a phone.
	Touch bool
	// PageText is the element Page reads ("main" when empty).
	PageText string
	Timeout  time.Duration
}

// axePath is axe-core's script, kept beside the card page's tests.
func axePath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "cardpage", "testdata", "axe.min.js")
}

// New opens a tab on the API at url; screenshots go to
// $LOOPCARD_ARTIFACTS/name (a temporary directory without it). The API's
// certificate is accepted as it is (a test CA's).
func New(t *testing.T, url, name string) *Tab {
	t.Helper()
	return NewWith(t, url, name, Options{Width: 390, Height: 844, Timeout: 90 * time.Second})
}

// NewWith is New with o's viewport, page text and time limit.
func NewWith(t *testing.T, url, name string, o Options) *Tab {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found: install the Debian package chromium (apt-get install chromium)")
	}
	axe, err := os.ReadFile(axePath())
	require.NoError(t, err)
	dir := t.TempDir()
	if a := os.Getenv("LOOPCARD_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	t.Logf("screenshots in %s", dir)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(int(o.Width), int(o.Height)),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("password-store", "basic"), chromedp.Flag("use-mock-keychain", true),
		// The API's certificate is the test CA's.
		chromedp.Flag("ignore-certificate-errors", true), chromedp.Flag("lang", "en-US"))
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, o.Timeout)
	if o.PageText == "" {
		o.PageText = "main"
	}
	b := &Tab{T: t, Ctx: ctx, URL: url, Dir: dir, axe: string(axe), pageText: o.PageText}
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
	if o.Touch {
		b.Size(o.Width, o.Height)
	} else {
		b.Do(chromedp.EmulateViewport(o.Width, o.Height, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	}
	return b
}

// Size sets a touch screen's viewport.
func (b *Tab) Size(w, h int64) {
	b.T.Helper()
	b.Do(chromedp.EmulateViewport(w, h, chromedp.EmulateTouch))
}

// Do runs steps in the tab.
func (b *Tab) Do(steps ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	require.NoError(b.T, chromedp.Do(b.Ctx, steps...))
}

// Open navigates to path and waits for the page's main.
func (b *Tab) Open(path string) {
	b.T.Helper()
	b.Do(chromedp.Navigate(b.URL+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// Submit clicks sel and waits for the next document.
func (b *Tab) Submit(sel string) {
	b.T.Helper()
	b.Do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) main`)))
}

// Download clicks the link sel and returns the file Chromium saved.
func (b *Tab) Download(sel string) []byte {
	b.T.Helper()
	dir := b.T.TempDir()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	events := true
	b.Do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &events})
		return err
	}), chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		require.NoError(b.T, err, "the download completes")
		if ev.State == browser.DownloadProgressStateCanceled {
			b.T.Fatalf("download of %s canceled", sel)
		}
		if ev.State != browser.DownloadProgressStateCompleted {
			continue
		}
		body, err := os.ReadFile(filepath.Join(dir, ev.GUID))
		require.NoError(b.T, err)
		return body
	}
	b.T.Fatalf("no download of %s", sel)
	return nil
}

// Text is the text of the page's main.
func (b *Tab) Text() string {
	b.T.Helper()
	return b.TextOf("main")
}

// TextOf is the text of the element sel.
func (b *Tab) TextOf(sel string) string {
	b.T.Helper()
	s, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.T, err)
	return s
}

// Count is how many elements match the CSS selector sel.
func (b *Tab) Count(sel string) int {
	b.T.Helper()
	q, err := json.Marshal(sel)
	require.NoError(b.T, err)
	n, err := chromedp.Run(b.Ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+string(q)+`).length`))
	require.NoError(b.T, err)
	return n
}

// Fill replaces the value of the input sel with text, typed.
func (b *Tab) Fill(sel, text string) {
	b.T.Helper()
	q, err := json.Marshal(sel)
	require.NoError(b.T, err)
	b.Do(chromedp.Evaluate[chromedp.Void](`document.querySelector(`+string(q)+`).value = ""`), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// Page checks the text of the page, photographs it and runs axe-core on
// it (WCAG 2 A and AA rules and best practices): any finding fails.
func (b *Tab) Page(name string, want ...string) {
	b.T.Helper()
	text := b.TextOf(b.pageText)
	for _, w := range want {
		require.Contains(b.T, text, w, name)
	}
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	require.NoError(b.T, err)
	b.shots++
	require.NoError(b.T, os.WriteFile(filepath.Join(b.Dir, fmt.Sprintf("%02d-%s.png", b.shots, name)), png, 0o644))
	b.Do(chromedp.Evaluate[chromedp.Void](b.axe))
	res, err := chromedp.Run(b.Ctx, chromedp.Evaluate[axeResult](`axe.run(document, {resultTypes: ["violations"]}).then(r => ({
		passes: r.passes.length,
		violations: r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))}))`,
		chromedp.EvalAwaitPromise))
	require.NoError(b.T, err)
	require.Greater(b.T, res.Passes, 10, "axe-core ran its rules")
	for _, v := range res.Violations {
		b.T.Errorf("axe %s: %s (%s) %s on %v", name, v.ID, v.Impact, v.Help, v.Nodes)
	}
}

// CheckConsole fails on a Content Security Policy report or an exception
// in the browser's console so far.
func (b *Tab) CheckConsole() {
	b.T.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.log {
		require.False(b.T, strings.Contains(m, "Content Security Policy") || strings.HasPrefix(m, "exception"), m)
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
