package main

import (
	"context"
	"crypto/rand"
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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
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

// seedConsole populates the ledger fast: the cards through the ledger's
// bulk registration, their credit and top-ups written directly, and the
// terminal transactions with COPY through the ledger's triggers (they post
// the debits, as an upload does).
func seedConsole(ctx context.Context, l *ledger.Ledger, pool *pgxpool.Pool, h *keys.HSM, nCards, nTxs int, s *seed) error {
	start := time.Now()
	if err := l.CreateOrganizer(ctx, org, "Bench"); err != nil {
		return err
	}
	if err := l.AddEvent(ctx, org, "fest", "Fest", time.Time{}); err != nil {
		return err
	}
	if err := l.AddStore(ctx, org, "store", "Store"); err != nil {
		return err
	}
	merchantAccount := make([]int64, consoleMerchants)
	for m := range consoleMerchants {
		id := fmt.Sprintf("bar-%02d", m)
		if err := l.AddMerchant(ctx, org, id, "Bar"); err != nil {
			return err
		}
		if err := pool.QueryRow(ctx, `SELECT account_id FROM accounts WHERE org_id = $1 AND kind = 'merchant' AND ref = $2`, org, id).
			Scan(&merchantAccount[m]); err != nil {
			return err
		}
	}
	for i := range consoleTerminals {
		if _, err := l.CreateTerminal(ctx, org, fmt.Sprintf("term-%03d", i), fmt.Sprintf("bar-%02d", i%consoleMerchants), time.Hour); err != nil {
			return err
		}
	}
	cards := make([][]byte, nCards)
	for i := range cards {
		cards[i] = []byte{0x04, 0x70, 0x20, 0x30, byte(i >> 16), byte(i >> 8), byte(i)}
	}
	for i := 0; i < len(cards); i += 10_000 {
		if err := l.RegisterCards(ctx, org, "fest", cards[i:min(i+10_000, len(cards))]); err != nil {
			return err
		}
	}
	// Every card's credit: a top-up each (one in ten online, one in fifty
	// still pending), the loaded ones on the card. Balances change only
	// through postings (a trigger guards them): written here as a
	// replica would, which skips the guard.
	const credit = 10_000
	rows := make([][]any, nCards)
	for i, c := range cards {
		var id [16]byte
		_, _ = rand.Read(id[:])
		ch, status, store := "cash", "loaded", "store"
		if i%10 == 0 {
			ch, store = "online", ""
		}
		if i%50 == 1 {
			status = "pending"
		}
		rows[i] = []any{int64(org), pgtype.UUID{Bytes: id, Valid: true}, c, ch, store, int64(credit), status}
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"topups"}, []string{"org_id", "topup_id", "card_id", "channel", "store_id", "amount", "status"},
		pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts a SET balance = a.side * $2 FROM cards c
		WHERE c.org_id = $1 AND a.org_id = c.org_id AND a.account_id = c.account_id`, org, credit); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	cardAccount := make([]int64, nCards)
	{
		r, err := pool.Query(ctx, `SELECT c.card_id, c.account_id FROM cards c WHERE c.org_id = $1`, org)
		if err != nil {
			return err
		}
		byID := map[string]int64{}
		var id []byte
		var acc int64
		if _, err := pgx.ForEachRow(r, []any{&id, &acc}, func() error { byID[string(id)] = acc; return nil }); err != nil {
			return err
		}
		for i, c := range cards {
			cardAccount[i] = byID[string(c)]
		}
	}
	// The transactions: each terminal's in its own sequence, spread over
	// the days; one in a thousand held (a revoked terminal's).
	t0 := time.Now().Add(-consoleDays * 24 * time.Hour).Truncate(time.Hour)
	span := int64(consoleDays * 24 * time.Hour)
	seqs := make([]int64, consoleTerminals)
	sig := make([]byte, 64)
	const chunk = 50_000
	for done := 0; done < nTxs; done += chunk {
		n := min(chunk, nTxs-done)
		rows := make([][]any, n)
		for k := range n {
			i := done + k
			term := i % consoleTerminals
			seqs[term]++
			card := (i * 7919) % nCards
			var id [16]byte
			_, _ = rand.Read(id[:])
			amount := int64(1 + i%9)
			status, reason := "posted", ""
			var ca, ma any = cardAccount[card], merchantAccount[term%consoleMerchants]
			if i%1000 == 999 {
				status, reason, ca, ma = "held", "terminal_revoked", nil, nil
			}
			at := t0.Add(time.Duration(int64(i) * span / int64(nTxs))).Truncate(time.Millisecond)
			rows[k] = []any{int64(org), pgtype.UUID{Bytes: id, Valid: true}, fmt.Sprintf("term-%03d", term), seqs[term], cards[card], int64(i / nCards),
				amount, int64(credit), int64(credit) - amount, fmt.Sprintf("bar-%02d", term%consoleMerchants), at, sig, status, reason, false, ca, ma}
		}
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{"terminal_txs"}, []string{"org_id", "txn_id", "terminal_id", "terminal_seq", "card_id", "card_seq",
			"amount", "balance_before", "balance_after", "merchant_id", "at", "signature", "status", "hold_reason", "chained",
			"card_account", "merchant_account"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return err
	}
	pw := "bench password " + strconv.FormatInt(time.Now().UnixNano(), 36)
	enr, err := api.AddStaff(ctx, pool, h, api.NewStaff{Org: org, Name: "hq", Role: api.RoleHQ, Password: []byte(pw)}, time.Now())
	if err != nil {
		return err
	}
	s.Staff = &benchStaff{Name: "hq", Password: pw, TOTP: enr.TOTPSecret}
	fmt.Fprintf(os.Stderr, "console bench: seeded %d cards and %d transactions in %s\n", nCards, nTxs, time.Since(start).Round(time.Millisecond))
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
