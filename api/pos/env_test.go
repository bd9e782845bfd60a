package pos_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/console/consoletest"
	"github.com/loopcard/loopcard/api/pos"
	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
	"github.com/loopcard/loopcard/personalize/reader/pcsctest"
	"github.com/loopcard/loopcard/personalize/vpcd"
	"github.com/loopcard/loopcard/softhsm"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const org = 1

// testMenu is the bar's menu: two drinks, food, and a cup with a deposit.
const testMenu = `{"products":[
{"id":"beer","name":"Beer 0.3l","price":350,"vat_rate_bp":2100,"category":"Drinks","age_restricted":true},
{"id":"cola","name":"Cola","price":250,"vat_rate_bp":900,"category":"Drinks"},
{"id":"fries","name":"Fries","price":400,"vat_rate_bp":900,"category":"Food"},
{"id":"cup","name":"Cup","price":100,"vat_rate_bp":0,"category":"Deposit","deposit":true}]}`

// world is a running stack (HSM, PostgreSQL, the HTTPS API) with an
// organizer, an event, the merchant "bar" with terminal "bar-1", the store
// "store-a" that loaded 20.00 onto card 0, the store "till" that holds the
// batch, and a private pcscd with a vpcd slot.
type world struct {
	stack *sim.Stack
	hq    string
	till  string // the store till's token
	cards []*sim.IssuedCard
	pcscd *pcsctest.Env
	slot  *vpcd.Conn
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ctx := context.Background()
	s, err := sim.StartStack(ctx, sim.StackConfig{DataDir: t.TempDir(), HSMURI: softhsm.NewTestToken(t), DatabaseURL: pgtest.NewDatabase(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, org, "Org"))
	require.NoError(t, s.Ledger.AddEvent(ctx, org, "fest", "Fest", time.Time{}))
	require.NoError(t, s.Ledger.AddMerchant(ctx, org, "bar", "Bar"))
	require.NoError(t, s.Ledger.AddStore(ctx, org, "store-a", "Store A"))
	require.NoError(t, s.Ledger.AddStore(ctx, org, "till", "Till"))
	w := &world{stack: s}
	w.hq, err = s.StaffToken(ctx, org, api.RoleHQ, "")
	require.NoError(t, err)
	storeA, err := s.StaffToken(ctx, org, api.RoleStore, "store-a")
	require.NoError(t, err)
	w.till, err = s.StaffToken(ctx, org, api.RoleStore, "till")
	require.NoError(t, err)
	is, err := s.IssueCards(ctx, org, "fest", 2, t.TempDir(), "", nil)
	require.NoError(t, err)
	w.cards = is.Cards
	require.NoError(t, s.Ledger.ReceiveCards(ctx, org, "till", is.Batch.No, 2))
	st, err := s.CashLoad(ctx, org, storeA, "store-a", w.cards[0], 2000)
	require.NoError(t, err)
	require.Equal(t, terminal.State{Balance: 2000, Seq: 1}, st)
	w.pcscd = pcsctest.Start(t)
	t.Cleanup(func() { w.remove(t) })
	return w
}

// insert puts card i into the vpcd slot, taking out the card there.
func (w *world) insert(t testing.TB, i int) {
	t.Helper()
	w.remove(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := vpcd.Connect(ctx, w.pcscd.Addr(), w.cards[i].Card, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	w.slot = c
	require.NoError(t, w.pcscd.WaitPresence(true))
}

func (w *world) remove(t testing.TB) {
	t.Helper()
	if w.slot == nil {
		return
	}
	w.slot.Close()
	w.slot = nil
	require.NoError(t, w.pcscd.WaitPresence(false))
}

func (w *world) terminal(t testing.TB) *terminal.Terminal {
	t.Helper()
	term, err := w.stack.AddTerminal(context.Background(), w.hq, org, "bar-1", w.stack.TerminalConfig(t.TempDir(), "fest", "bar"))
	require.NoError(t, err)
	t.Cleanup(func() { term.Close() })
	return term
}

func (w *world) ledgerBalance(t testing.TB, c *sim.IssuedCard) int64 {
	t.Helper()
	b, err := w.stack.Ledger.CardBalance(context.Background(), org, c.UID)
	require.NoError(t, err)
	return b
}

func (w *world) reader(t testing.TB) *pcsc.Reader {
	t.Helper()
	r, err := pcsc.Open(w.pcscd.Reader)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func (w *world) storeClient(t *testing.T) (*storeclient.Client, string) {
	t.Helper()
	dir := t.TempDir()
	sc, err := storeclient.Open(context.Background(), storeclient.Config{StateDir: dir, URL: w.stack.URL, HTTP: w.stack.HTTP,
		Org: org, Store: "till", Token: w.till})
	require.NoError(t, err)
	t.Cleanup(func() { sc.Close() })
	return sc, dir
}

func menuFile(t testing.TB) *menu.Menu {
	t.Helper()
	p := filepath.Join(t.TempDir(), "menu.json")
	require.NoError(t, os.WriteFile(p, []byte(testMenu), 0o600))
	m, err := pos.LoadMenuFile(p)
	require.NoError(t, err)
	return &m
}

// setMenu sets the merchant bar's menu on the server as HQ does (PUT
// /v1/hq/merchants/bar/menu) and returns its version.
func (w *world) setMenu(t testing.TB, text string) int32 {
	t.Helper()
	req, err := http.NewRequest("PUT", w.stack.URL+"/v1/hq/merchants/bar/menu", strings.NewReader(text))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.hq)
	resp, err := w.stack.HTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m apitype.Menu
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return m.Version
}

// serve serves h on a loopback port and returns its URL.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// tab is a Chromium tab on the till's app at a touch screen's size.
type tab struct{ *consoletest.Tab }

func newTab(t *testing.T, url, artifacts string) *tab {
	t.Helper()
	return &tab{consoletest.NewWith(t, url, artifacts, consoletest.Options{Width: 800, Height: 480, Touch: true,
		PageText: "body", Timeout: 150 * time.Second})}
}

// size is the touch screen's size.
func (b *tab) size(w, h int64) { b.Size(w, h) }

func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	b.Do(steps...)
}

func (b *tab) open(path string) {
	b.T.Helper()
	b.Open(path)
}

// click clicks sel and waits for the next document to have wait.
func (b *tab) click(sel, wait string) {
	b.T.Helper()
	b.Do(chromedp.Evaluate[chromedp.Void](`document.documentElement.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitReady(chromedp.CSS(`html:not([data-old]) `+wait)))
}

func (b *tab) fill(sel, text string) {
	b.T.Helper()
	b.Fill(sel, text)
}

func (b *tab) text(sel string) string {
	b.T.Helper()
	return b.TextOf(sel)
}

// page checks the page's text, photographs it and runs axe-core on it.
func (b *tab) page(name string, want ...string) {
	b.T.Helper()
	b.Page(name, want...)
}

// noPolicyErrors fails on a Content-Security-Policy report or a script
// exception in the console.
func (b *tab) noPolicyErrors() {
	b.T.Helper()
	b.CheckConsole()
}

// waitFor waits for sel in the document, after the page's script
// navigated.
func waitFor(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}
