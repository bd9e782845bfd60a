package main

import (
	"bufio"

	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/console/consoletest"
	"github.com/loopcard/loopcard/cmd/internal/runbook"
	"github.com/loopcard/loopcard/ledger"
)

// loopcardIn runs this binary as `loopcard --data-dir dir args...` with
// stdin and returns its stdout.
func loopcardIn(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, append([]string{"--data-dir", dir}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "loopcard %s: %s", strings.Join(args, " "), stderr.String())
	return string(out)
}

// serveInstallation starts `loopcard serve` on the installation in dir
// and returns its URL; it is stopped at the test's end.
func serveInstallation(t *testing.T, dir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "--data-dir", dir, "serve", "--listen", addr)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan string, 1)
	var lines []string
	go func() {
		defer close(done)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if strings.Contains(s.Text(), "loopcard: serving https://") {
				ready <- s.Text()
			} else if len(lines) < 200 {
				lines = append(lines, s.Text())
			}
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-done:
		t.Fatalf("loopcard serve ended: %s", strings.Join(lines, "\n"))
	case <-time.After(2 * time.Minute):
		t.Fatal("loopcard serve did not start within 2 minutes")
	}
	return "https://" + addr
}

// walkRunbookConsole adds an hq staff account to the installation the
// runbook's event left in dir with `loopcard staff add`, serves it, and
// walks every page of the console in headless Chromium: each shows the
// event's own data, the dashboard's figures equal `loopcard report event`,
// axe-core finds no violation, and each page is photographed under
// $LOOPCARD_ARTIFACTS/console-runbook.
func walkRunbookConsole(t *testing.T, dir string, s runbook.Summary) {
	org := strconv.FormatInt(s.Organizer, 10)
	var rep ledger.EventReport
	require.NoError(t, json.Unmarshal([]byte(loopcardIn(t, dir, "", "report", "event", "--event", runbook.Event, "--organizer", org, "--json")), &rep))
	require.NotEmpty(t, rep.Sales, "the runbook's terminals sold")

	const password = "runbook console password"
	uri := strings.TrimSpace(loopcardIn(t, dir, password+"\n", "staff", "add", "--organizer", org, "--name", "hq-ops", "--role", "hq"))
	key, err := otp.NewKeyFromURL(uri)
	require.NoError(t, err, "staff add prints the otpauth URI: %q", uri)
	require.Equal(t, "totp", key.Type())

	url := serveInstallation(t, dir)
	b := consoletest.New(t, url, "console-runbook")
	b.Open("/console/")
	b.Page("login", "Sign in", "Code from the authenticator app")
	b.Fill("#org", org)
	b.Fill("#name", "hq-ops")
	b.Fill("#password", password)
	code, err := totp.GenerateCode(key.Secret(), time.Now())
	require.NoError(t, err)
	b.Fill("#code", code)
	b.Submit(`form.login button`)

	// The dashboard: every figure is the report's.
	b.Page("dashboard", "Sales per merchant per hour", runbook.Event, runbook.Bar, runbook.Food)
	for fig, want := range map[string]int64{"cards_with_balance": rep.CardsWithMoney, "held_transactions": rep.HeldTxs, "alerts": rep.Alerts} {
		require.Equal(t, strconv.FormatInt(want, 10), b.TextOf(`[data-figure="`+fig+`"]`), fig)
	}
	require.Equal(t, euros(rep.Outstanding), b.TextOf(`[data-figure="outstanding_balance"]`))
	require.Equal(t, euros(rep.PendingLoads), b.TextOf(`[data-figure="pending_loads"]`))
	sales, err := chromedp.Run(b.Ctx, chromedp.Evaluate[map[string]int64](`Object.fromEntries([...document.querySelectorAll("#sales tbody tr")].map(r =>
		[r.cells[0].textContent, Number(r.cells[2].dataset.cents)]))`))
	require.NoError(t, err)
	want := map[string]int64{}
	for _, m := range rep.Sales {
		want[m.Merchant] = m.Amount
	}
	require.Equal(t, want, sales, "the dashboard's sales per merchant are the report's")
	require.Positive(t, b.Count("svg.chart rect"), "the chart has bars")

	// Alerts: the clone the runbook caught.
	b.Open("/console/alerts")
	b.Page("alerts", "clone")
	// Refunds and payouts: the runbook's refund, paid out.
	b.Open("/console/refunds")
	b.Page("refunds", "Booked payouts", "pain.001")
	require.Positive(t, b.Count("#payouts tbody tr"), "the runbook's payout is listed")
	card, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`document.querySelector("#refunds a").textContent`))
	require.NoError(t, err)
	// Cards: the refunded card, found by its id.
	b.Open("/console/cards")
	b.Page("cards")
	b.Fill("#card", card)
	b.Submit(`form[action="/console/cards"] button`)
	b.Page("card", "History", card, runbook.Event)
	// Terminals: both of the runbook's, with their merchants.
	b.Open("/console/terminals")
	names := []string{"Register a terminal"}
	for _, tm := range s.Terminals {
		names = append(names, tm.ID, tm.Merchant)
	}
	b.Page("terminals", names...)
	// Batches: the runbook's batch of its event.
	b.Open("/console/batches")
	b.Page("batches", runbook.Event, strconv.FormatInt(s.Batch, 10))
	// Stores: both stores' days, their cash as each day close counted it.
	b.Open("/console/stores")
	var stores []string
	for _, d := range s.Stores {
		stores = append(stores, d.Store, euros(d.CashCounted))
	}
	b.Page("stores", append(stores, "Expected cash")...)
	// Keys: the event's keys.
	b.Open("/console/keys")
	b.Page("keys", runbook.Event)
	// Audit: the runbook's commands and requests, oldest first.
	b.Open("/console/audit")
	b.Page("audit", "cli ledger init", "POST /v1/stores/{store}/sales", "Next page")
	b.Open("/console/corrections")
	b.Page("corrections")
	b.Open("/console/vouchers")
	b.Page("vouchers")
	b.Open("/console/dashboard?lang=nl")
	b.Page("nl-dashboard", "Verkoop per verkooppunt per uur", runbook.Bar)
	b.Submit(`header form button`)
	b.Page("nl-signed-out", "Inloggen")

	// A store member of the first store: its own store's day and
	// custody, as the day close counted them, never the other store's.
	own, other := s.Stores[0], s.Stores[1]
	const storePassword = "store lead password"
	loopcardIn(t, dir, storePassword+"\n", "staff", "add", "--organizer", org, "--name", "lead", "--role", "store", "--store", own.Store)
	b.Open("/console/login?lang=en")
	b.Fill("#org", org)
	b.Fill("#name", "lead")
	b.Fill("#password", storePassword)
	b.Submit(`form.login button`)
	b.Page("store-member", "Store "+own.Store, "Expected cash", euros(own.CashCounted))
	rows, err := chromedp.Run(b.Ctx, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#store-days tbody tr")].map(r => [...r.cells].map(c => c.textContent))`))
	require.NoError(t, err)
	require.Len(t, rows, 1, "its own store's day only")
	require.Equal(t, []string{own.Store, euros(own.CashExpected), euros(own.CashCounted), euros(0),
		strconv.Itoa(own.Received), strconv.Itoa(own.Sold), strconv.Itoa(own.InStock)},
		[]string{rows[0][0], rows[0][2], rows[0][3], rows[0][4], rows[0][5], rows[0][6], rows[0][7]})
	require.NotContains(t, b.Text(), other.Store)
	for fig, want := range map[string]string{"cards_received": strconv.Itoa(own.Received), "cards_sold": strconv.Itoa(own.Sold),
		"cards_in_stock": strconv.Itoa(own.InStock), "expected_cash": euros(own.CashExpected), "counted_cash": euros(own.CashCounted),
		"difference": euros(own.CashCounted - own.CashExpected)} {
		require.Equal(t, want, b.TextOf(`[data-figure="`+fig+`"]`), fig)
	}
	require.Zero(t, b.Count(`a[href="/console/dashboard"]`), "a store member's menu has its own pages only")
	b.Open("/console/stores?store=" + other.Store)
	b.Page("store-member-other-store", "Your role may not do this.")
	require.NotContains(t, b.Text(), euros(other.CashCounted))
	b.Open("/console/dashboard")
	b.Page("store-member-dashboard", "Your role may not do this.")
	b.CheckConsole()
	shots, err := filepath.Glob(filepath.Join(b.Dir, "*.png"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(shots), 17, "a screenshot of every page")
}

// euros is cents as the console's English pages write them.
func euros(cents int64) string {
	units := strconv.FormatInt(cents/100, 10)
	var b strings.Builder
	for i, ch := range units {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return "€ " + b.String() + "." + strconv.FormatInt(cents%100+100, 10)[1:]
}
