package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/benchseed"
)

// The console bench (-console, scripts/bench console): an event of
// consoleCards cards with consoleTxs terminal transactions over three
// days, at consoleMerchants bars with consoleTerminals terminals, and a
// signed-in hq staff member's dashboard against /healthz in the same run.
const (
	consoleMerchants = 20
	consoleTerminals = 200
	consoleDays      = 3
)

// seedConsole fills the ledger with the bench's event (ledger/benchseed)
// and adds the signed-in hq staff member.
func seedConsole(ctx context.Context, l *ledger.Ledger, pool *pgxpool.Pool, h *keys.HSM, nCards, nTxs int, s *seed) error {
	start := time.Now()
	if err := benchseed.Seed(ctx, l, pool, org, benchseed.Event{Cards: nCards, Txs: nTxs,
		Merchants: consoleMerchants, Terminals: consoleTerminals, Days: consoleDays}); err != nil {
		return err
	}
	seeded := time.Since(start)
	rolled := time.Now()
	if err := l.RollUp(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "console bench: rolled up the dashboard's totals in %s\n", time.Since(rolled).Round(time.Millisecond))
	pw := "bench password " + strconv.FormatInt(time.Now().UnixNano(), 36)
	enr, err := api.AddStaff(ctx, pool, h, api.NewStaff{Org: org, Name: "hq", Role: api.RoleHQ, Password: []byte(pw)}, time.Now())
	if err != nil {
		return err
	}
	s.Staff = &benchStaff{Name: "hq", Password: pw, TOTP: enr.TOTPSecret}
	fmt.Fprintf(os.Stderr, "console bench: seeded %d cards and %d transactions in %s\n", nCards, nTxs, seeded.Round(time.Millisecond))
	return nil
}

// benchStaff is the hq staff member the driver signs in as.
type benchStaff struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	TOTP     string `json:"totp"`
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// driveConsole signs in and measures GET /console/dashboard against
// /healthz, one request at a time (the console has one user at a time, and
// its page's latency is what it shows), alternating phases.
func driveConsole(nCards, nTxs int, d time.Duration) error {
	srv, err := startServer("-console", fmt.Sprintf("-cards=%d", nCards), fmt.Sprintf("-txs=%d", nTxs))
	if err != nil {
		return err
	}
	defer srv.stop()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Timeout: 30 * time.Second, Jar: jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.ca, MinVersion: tls.VersionTLS13}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, []byte, error) {
		resp, err := c.Get(srv.seed.URL + path)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	_, page, err := get("/console/login")
	if err != nil {
		return err
	}
	m := csrfInput.FindSubmatch(page)
	if m == nil {
		return errors.New("no CSRF token on the sign-in page")
	}
	st := srv.seed.Staff
	code, err := api.TOTPCode(st.TOTP, time.Now())
	if err != nil {
		return err
	}
	resp, err := c.PostForm(srv.seed.URL+"/console/login", url.Values{"csrf": {string(m[1])}, "org": {strconv.Itoa(org)},
		"name": {st.Name}, "password": {st.Password}, "code": {code}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("sign-in: status %d", resp.StatusCode)
	}
	status, page, err := get("/console/dashboard")
	if err != nil || status != 200 {
		return fmt.Errorf("dashboard: %d %v", status, err)
	}
	if !strings.Contains(string(page), "bar-19") {
		return errors.New("the dashboard does not show the sales")
	}
	fmt.Printf("dashboard page: %d B\n", len(page))
	phase := func(path string, d time.Duration) ([]time.Duration, error) {
		var lat []time.Duration
		start := time.Now()
		for time.Since(start) < d {
			t := time.Now()
			status, _, err := get(path)
			if err != nil {
				return nil, err
			}
			if status != 200 {
				return nil, fmt.Errorf("%s: status %d", path, status)
			}
			lat = append(lat, time.Since(t))
		}
		return lat, nil
	}
	if _, err := phase("/console/dashboard", 2*time.Second); err != nil { // warm-up
		return err
	}
	// Alternating phases, so that the machine's drift hits both alike.
	var hz, db []time.Duration
	for range 4 {
		h, err := phase("/healthz", d/4)
		if err != nil {
			return err
		}
		b, err := phase("/console/dashboard", d/4)
		if err != nil {
			return err
		}
		hz, db = append(hz, h...), append(db, b...)
	}
	h, b := summarize(hz, 0, d/2), summarize(db, 0, d/2)
	fmt.Printf("summary: %d cards, %d terminal transactions: healthz p50 %s p99 %s (%d requests); dashboard p50 %s p99 %s (%d requests)\n",
		nCards, nTxs, h.p50, h.p99, len(hz), b.p50, b.p99, len(db))
	return nil
}
