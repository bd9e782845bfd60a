package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/console"
	"github.com/loopcard/loopcard/api/internal/httpstatus"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize/batch"
)

// staffPrincipalKey holds, in an in-process request's context, the
// principal of a console session (consoleBackend.Session).
type staffPrincipalKey struct{}

// consoleRoute is the route label of the console pages in metrics.
const consoleRoute = "console"

// withConsole puts the HQ console (package console, under /console/) in
// front of h. Its pages are admitted as the card pages are (the limit per
// address and the anonymous budget), and everything they show or change
// goes through h, the API's whole chain (authorization by the role
// matrix, audit), as a request of the signed-in staff member.
func (s *Server) withConsole(h http.Handler) (http.Handler, error) {
	pages, err := console.New(console.Options{Backend: &consoleBackend{s: s, api: h}, Logger: s.log, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("api: console: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !console.Serves(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		done := s.metrics.Start()
		defer done()
		sw := &httpstatus.Writer{ResponseWriter: w}
		defer func() {
			status := sw.Status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.Observe(consoleRoute, r.Method, status, time.Since(start))
		}()
		if why := s.admit(r, remoteIP(r), false); why != "" {
			s.metrics.RequestRefused(why)
			sw.Header().Set("Retry-After", "1")
			http.Error(sw, "too many requests", http.StatusTooManyRequests)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), admittedKey{}, true))
		pages.ServeHTTP(sw, r)
	}), nil
}

// consoleBackend is the API as the console sees it. Sign-in and sessions
// are its own (api_staff, api_staff_sessions); every other call is one
// request through the API's handler, in process, carrying the session's
// principal, so the role matrix, the organizer's scoping and the audit
// are the API's.
type consoleBackend struct {
	s   *Server
	api http.Handler
}

func (b *consoleBackend) Login(ctx context.Context, from string, org int64, name string, pw console.Secret, code string) (console.Secret, error) {
	tok, _, err := b.s.staffLogin(ctx, ipOf(from), org, name, []byte(pw.Reveal()), code)
	switch {
	case errors.Is(err, ErrStaffLogin):
		return console.Secret{}, console.ErrLogin
	case err != nil:
		return console.Secret{}, err
	}
	return console.NewSecret(tok), nil
}

func (b *consoleBackend) Session(ctx context.Context, sess console.Secret) (context.Context, console.Staff, error) {
	p, err := b.s.staffSession(ctx, sess.Reveal())
	if errors.Is(err, ErrStaffSession) {
		return nil, console.Staff{}, console.ErrSession
	}
	if err != nil {
		return nil, console.Staff{}, err
	}
	return context.WithValue(ctx, staffPrincipalKey{}, p), console.Staff{Org: p.org, Name: p.staff, Role: string(p.role), Store: p.store}, nil
}

func (b *consoleBackend) Logout(ctx context.Context, from string, sess console.Secret) error {
	return b.s.staffLogout(ctx, ipOf(from), sess.Reveal())
}

func ipOf(from string) string {
	return remoteIP(&http.Request{RemoteAddr: from})
}

// staffOf is the principal a Session put in ctx.
func staffOf(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(staffPrincipalKey{}).(principal)
	return p, ok
}

// do sends one request through the API as the session's staff member and
// decodes the answer into out. A refusal is mapped to console's errors.
func (b *consoleBackend) do(ctx context.Context, from, method, path string, in, out any) error {
	if _, ok := staffOf(ctx); !ok {
		return console.ErrSession
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("api: console request: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("api: console request: %w", err)
	}
	req.RemoteAddr = from
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k, ok := ctx.Value(consoleIdemKey{}).(string); ok {
		req.Header.Set("Idempotency-Key", k)
	}
	rec := &recorder{header: http.Header{}}
	b.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		return consoleError(method, path, rec.status, rec.body.Bytes())
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("api: console: %s %s answer: %w", method, path, err)
	}
	return nil
}

// consoleError maps an API refusal to console's errors.
func consoleError(method, path string, status int, body []byte) error {
	switch status {
	case http.StatusUnauthorized:
		return console.ErrSession
	case http.StatusForbidden:
		return console.ErrForbidden
	case http.StatusNotFound:
		return console.ErrNotFound
	case http.StatusConflict:
		return console.ErrConflict
	case http.StatusBadRequest:
		return console.ErrInvalid
	}
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	return fmt.Errorf("api: console: %s %s: %d %s (request %s)", method, path, status, eb.Error, eb.RequestID)
}

// Events lists the organizer's events, for the roles that may read their
// reports (GET /v1/hq/reports/events/{event}: hq and auditor).
func (b *consoleBackend) Events(ctx context.Context, from string) ([]string, error) {
	p, ok := staffOf(ctx)
	if !ok {
		return nil, console.ErrSession
	}
	if p.role != RoleHQ && p.role != RoleAuditor {
		b.s.writeAudit(ctx, ipOf(from), AuditRecord{Org: p.org, Actor: p.actor(), Action: "GET /console/dashboard",
			Refused: true, Detail: "forbidden"})
		return nil, console.ErrForbidden
	}
	evs, err := b.s.ledger.Events(ctx, p.org)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out, nil
}

func (b *consoleBackend) Dashboard(ctx context.Context, from, event string) (console.Dashboard, error) {
	if !terminaltx.ValidID(event) {
		return console.Dashboard{}, console.ErrNotFound
	}
	// The two requests side by side: the page waits for the slower.
	var ts struct {
		Terminals []apitype.TerminalInfo `json:"terminals"`
	}
	terr := make(chan error, 1)
	go func() { terr <- b.do(ctx, from, "GET", "/v1/hq/terminals", nil, &ts) }()
	var rep ledger.EventReport
	err := b.do(ctx, from, "GET", "/v1/hq/reports/events/"+url.PathEscape(event), nil, &rep)
	if err2 := <-terr; err == nil {
		err = err2
	}
	if err != nil {
		return console.Dashboard{}, err
	}
	d := console.Dashboard{Event: rep.Event, CardsWithMoney: rep.CardsWithMoney, Outstanding: rep.Outstanding,
		PendingLoads: rep.PendingLoads, HeldTxs: rep.HeldTxs, OpenAlerts: rep.Alerts}
	for _, s := range rep.Sales {
		d.Sales = append(d.Sales, console.Sales{Merchant: s.Merchant, Count: s.Count, Amount: s.Amount})
	}
	for _, h := range rep.Hourly {
		d.Hourly = append(d.Hourly, console.HourSales{Hour: h.Hour, Merchant: h.Merchant, Count: h.Count, Amount: h.Amount})
	}
	for _, t := range rep.TopUps {
		d.TopUps = append(d.TopUps, console.TopUps{Channel: t.Channel, Status: t.Status, Count: t.Count, Amount: t.Amount})
	}
	for _, t := range ts.Terminals {
		if t.Event != "" && t.Event != event {
			continue
		}
		d.Terminals = append(d.Terminals, console.Terminal{ID: t.Terminal, Merchant: t.Merchant, Event: t.Event, Status: t.Status,
			EnrolledAt: t.EnrolledAt, LastUpload: t.LastUpload, Queued: t.Queued, OldestUnsent: t.OldestUnsentAt})
	}
	return d, nil
}

func (b *consoleBackend) Alerts(ctx context.Context, from string) ([]console.Alert, error) {
	var as struct {
		Alerts []apitype.AlertRecord `json:"alerts"`
	}
	if err := b.do(ctx, from, "GET", "/v1/hq/alerts", nil, &as); err != nil {
		return nil, err
	}
	out := make([]console.Alert, 0, len(as.Alerts))
	for _, a := range as.Alerts {
		out = append(out, console.Alert{Source: a.Source, ID: a.ID, Kind: a.Kind, State: a.State, Blocking: a.Blocking,
			Card: a.Card, Actor: a.Actor, Detail: a.Detail, RaisedAt: a.RaisedAt, ReviewedBy: a.ReviewedBy, ReviewReason: a.ReviewReason})
	}
	// Open alerts first, newest first within each.
	slices.SortStableFunc(out, func(x, y console.Alert) int {
		if (x.State == "reviewed") != (y.State == "reviewed") {
			if x.State == "reviewed" {
				return 1
			}
			return -1
		}
		return y.RaisedAt.Compare(x.RaisedAt)
	})
	return out, nil
}

func (b *consoleBackend) HeldTxs(ctx context.Context, from string) ([]console.HeldTx, int, error) {
	var out apitype.HeldTxsResponse
	if err := b.do(ctx, from, "GET", "/v1/hq/held-transactions", nil, &out); err != nil {
		return nil, 0, err
	}
	hs := make([]console.HeldTx, 0, len(out.Transactions))
	for _, h := range out.Transactions {
		hs = append(hs, console.HeldTx{Terminal: h.Terminal, Merchant: h.Merchant, Card: h.Card, Reason: h.Reason, Amount: h.Amount,
			At: h.At, ReceivedAt: h.ReceivedAt})
	}
	return hs, out.Held, nil
}

func (b *consoleBackend) Review(ctx context.Context, from, alert, reason string) error {
	if _, ok := parseUUID(alert); !ok {
		return console.ErrNotFound
	}
	return b.do(ctx, from, "POST", "/v1/hq/alerts/"+url.PathEscape(alert)+"/review", apitype.ReviewRequest{Reason: reason}, nil)
}

func (b *consoleBackend) Unblock(ctx context.Context, from, card, reason string) error {
	if _, ok := parseCardID(card); !ok {
		return console.ErrNotFound
	}
	return b.do(ctx, from, "POST", "/v1/hq/cards/"+url.PathEscape(card)+"/unblock", apitype.ReviewRequest{Reason: reason}, nil)
}

func (b *consoleBackend) Block(ctx context.Context, from, card, reason string) error {
	if _, ok := parseCardID(card); !ok {
		return console.ErrNotFound
	}
	return b.do(ctx, from, "POST", "/v1/hq/cards/"+url.PathEscape(card)+"/block", apitype.BlockRequest{Reason: reason}, nil)
}

func (b *consoleBackend) Card(ctx context.Context, from, card string) (console.Card, error) {
	if _, ok := parseCardID(card); !ok {
		return console.Card{}, console.ErrNotFound
	}
	var h apitype.History
	if err := b.do(ctx, from, "GET", "/v1/hq/cards/"+url.PathEscape(card), nil, &h); err != nil {
		return console.Card{}, err
	}
	c := console.Card{ID: h.Card, Event: h.Event, Status: h.Status, Balance: h.Balance, Pending: h.Pending}
	for _, p := range h.Payments {
		c.Entries = append(c.Entries, console.Entry{ID: p.ID, At: p.At, Where: p.Merchant, Amount: -p.Amount, Status: p.Status})
	}
	for _, t := range h.TopUps {
		c.Entries = append(c.Entries, console.Entry{At: t.At, TopUp: true, Where: t.Channel, Amount: t.Amount, Status: t.Status})
	}
	slices.SortStableFunc(c.Entries, func(x, y console.Entry) int { return y.At.Compare(x.At) })
	return c, nil
}

func (b *consoleBackend) Terminals(ctx context.Context, from string) ([]console.Terminal, error) {
	var ts struct {
		Terminals []apitype.TerminalInfo `json:"terminals"`
	}
	if err := b.do(ctx, from, "GET", "/v1/hq/terminals", nil, &ts); err != nil {
		return nil, err
	}
	out := make([]console.Terminal, 0, len(ts.Terminals))
	for _, t := range ts.Terminals {
		out = append(out, console.Terminal{ID: t.Terminal, Merchant: t.Merchant, Event: t.Event, Status: t.Status,
			EnrolledAt: t.EnrolledAt, LastUpload: t.LastUpload, SessionKeys: t.SessionKeys, Queued: t.Queued, OldestUnsent: t.OldestUnsentAt})
	}
	return out, nil
}

func (b *consoleBackend) RegisterTerminal(ctx context.Context, from string, t console.NewTerminal) (console.Enrolment, error) {
	var tr apitype.TerminalResponse
	err := b.do(ctx, from, "POST", "/v1/hq/terminals", apitype.TerminalRequest{Terminal: t.ID, Merchant: t.Merchant, Event: t.Event,
		TTL: int64(t.TTL / time.Second)}, &tr)
	if err != nil {
		return console.Enrolment{}, err
	}
	return console.Enrolment{Terminal: tr.Terminal, Token: console.NewSecret(tr.EnrolmentToken), ExpiresAt: tr.TokenExpiresAt,
		Target: tr.EnrolmentTarget}, nil
}

func (b *consoleBackend) RevokeTerminal(ctx context.Context, from, terminal string) error {
	if !terminaltx.ValidID(terminal) {
		return console.ErrNotFound
	}
	return b.do(ctx, from, "DELETE", "/v1/hq/terminals/"+url.PathEscape(terminal), nil, nil)
}

func (b *consoleBackend) RevokeSessionKeys(ctx context.Context, from, terminal string) (int, error) {
	if !terminaltx.ValidID(terminal) {
		return 0, console.ErrNotFound
	}
	var out struct {
		Revoked int `json:"revoked"`
	}
	err := b.do(ctx, from, "DELETE", "/v1/hq/terminals/"+url.PathEscape(terminal)+"/session-keys", nil, &out)
	return out.Revoked, err
}

func (b *consoleBackend) StoreDays(ctx context.Context, from, fromDay, toDay string) ([]console.StoreDay, error) {
	return b.storeDays(ctx, from, "/v1/hq/reports/store-days", fromDay, toDay)
}

func (b *consoleBackend) OneStoreDays(ctx context.Context, from, store, fromDay, toDay string) ([]console.StoreDay, error) {
	if !terminaltx.ValidID(store) {
		return nil, console.ErrNotFound
	}
	return b.storeDays(ctx, from, "/v1/stores/"+url.PathEscape(store)+"/days", fromDay, toDay)
}

func (b *consoleBackend) storeDays(ctx context.Context, from, path, fromDay, toDay string) ([]console.StoreDay, error) {
	q := url.Values{}
	if fromDay != "" {
		q.Set("from", fromDay)
	}
	if toDay != "" {
		q.Set("to", toDay)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Days []ledger.StoreDayReport `json:"days"`
	}
	if err := b.do(ctx, from, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	days := make([]console.StoreDay, 0, len(out.Days))
	for _, d := range out.Days {
		days = append(days, console.StoreDay{Store: d.Store, Day: d.Day, ExpectedCash: d.ExpectedCash, CountedCash: d.CountedCash,
			Difference: d.Difference, CardsReceived: d.CardsReceived, CardsSold: d.CardsSold, CardsInStock: d.CardsInStock,
			PendingLoads: d.PendingLoads})
	}
	return days, nil
}

func (b *consoleBackend) Keys(ctx context.Context, from string) ([]console.Key, error) {
	var out apitype.OrganizerKeysResponse
	if err := b.do(ctx, from, "GET", "/v1/hq/keys", nil, &out); err != nil {
		return nil, err
	}
	ks := make([]console.Key, 0, len(out.Keys))
	for _, k := range out.Keys {
		ks = append(ks, console.Key{Event: k.Event, Kind: k.Kind, BaseKey: k.BaseKey, KCV: k.KCV})
	}
	return ks, nil
}

func (b *consoleBackend) Audit(ctx context.Context, from string, after int64) ([]console.AuditEntry, error) {
	var out struct {
		Records []apitype.AuditRecord `json:"records"`
	}
	if err := b.do(ctx, from, "GET", "/v1/audit/records?after="+strconv.FormatInt(after, 10), nil, &out); err != nil {
		return nil, err
	}
	recs := make([]console.AuditEntry, 0, len(out.Records))
	for _, a := range out.Records {
		recs = append(recs, console.AuditEntry{ID: a.ID, At: a.At, Actor: a.Actor, Action: a.Action, Target: a.Target,
			Remote: a.Remote, Outcome: a.Outcome, Status: a.Status, Detail: a.Detail})
	}
	return recs, nil
}

func (b *consoleBackend) AuditVerify(ctx context.Context, from string) (console.Verification, error) {
	var v apitype.AuditVerification
	if err := b.do(ctx, from, "GET", "/v1/audit/verify", nil, &v); err != nil {
		return console.Verification{}, err
	}
	return console.Verification{OK: v.OK, At: v.VerifiedAt, Entries: v.Entries, Size: v.Size, Checkpoints: v.Checkpoints, Root: v.Root,
		Failure: v.Failure, Checked: v.Checked, OpenHandovers: v.OpenHandovers, Discrepancies: v.Discrepancies}, nil
}

func (b *consoleBackend) Batches(ctx context.Context, from string) ([]console.Batch, error) {
	var out struct {
		Batches []batch.Batch `json:"batches"`
	}
	if err := b.do(ctx, from, "GET", "/v1/hq/batches", nil, &out); err != nil {
		return nil, err
	}
	bs := make([]console.Batch, 0, len(out.Batches))
	for _, x := range out.Batches {
		bs = append(bs, console.Batch{No: x.No, Event: x.Event, Status: x.Status, Count: x.Count, Done: x.Done,
			CreatedAt: x.CreatedAt, CompletedAt: x.CompletedAt})
	}
	// Newest first.
	slices.Reverse(bs)
	return bs, nil
}

// AuditExport streams GET /v1/audit/export to w: the API's answer passes
// through once it is a success; a refusal is returned for the page.
func (b *consoleBackend) AuditExport(ctx context.Context, from string, w http.ResponseWriter) error {
	if _, ok := staffOf(ctx); !ok {
		return console.ErrSession
	}
	const path = "/v1/audit/export"
	req, err := http.NewRequestWithContext(ctx, "GET", path, http.NoBody)
	if err != nil {
		return fmt.Errorf("api: console request: %w", err)
	}
	req.RemoteAddr = from
	pw := &passWriter{w: w, header: http.Header{}}
	b.api.ServeHTTP(pw, req)
	if pw.status >= 300 {
		return consoleError("GET", path, pw.status, pw.refusal.Bytes())
	}
	return nil
}

// passWriter passes a successful in-process answer on to w (its body, its
// type and file name) and keeps a refusal.
type passWriter struct {
	w       http.ResponseWriter
	header  http.Header
	status  int
	refusal bytes.Buffer
}

func (p *passWriter) Header() http.Header { return p.header }

func (p *passWriter) WriteHeader(code int) {
	if p.status != 0 {
		return
	}
	p.status = code
	if code < 300 {
		for _, h := range []string{"Content-Type", "Content-Disposition"} {
			if v := p.header.Get(h); v != "" {
				p.w.Header().Set(h, v)
			}
		}
		p.w.WriteHeader(code)
	}
}

func (p *passWriter) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.WriteHeader(http.StatusOK)
	}
	if p.status >= 300 {
		return p.refusal.Write(b)
	}
	return p.w.Write(b)
}

func (b *consoleBackend) Refunds(ctx context.Context, from string) ([]console.Refund, int, error) {
	var out apitype.RefundsResponse
	if err := b.do(ctx, from, "GET", "/v1/hq/refunds", nil, &out); err != nil {
		return nil, 0, err
	}
	rs := make([]console.Refund, 0, len(out.Refunds))
	for _, r := range out.Refunds {
		rs = append(rs, console.Refund{ID: r.ID, Card: r.Card, Status: r.Status, Amount: r.Amount, RequestedAt: r.RequestedAt})
	}
	return rs, out.Waiting, nil
}

func (b *consoleBackend) Payouts(ctx context.Context, from string) ([]console.Payout, error) {
	var out apitype.PayoutList
	if err := b.do(ctx, from, "GET", "/v1/hq/payouts", nil, &out); err != nil {
		return nil, err
	}
	ps := make([]console.Payout, 0, len(out.Payouts))
	for _, p := range out.Payouts {
		ps = append(ps, console.Payout{ID: p.ID, At: p.At, Count: p.Count, Total: p.Total, File: p.File})
	}
	return ps, nil
}

func (b *consoleBackend) RunPayout(ctx context.Context, from string, d console.Debtor, plan string) (console.PayoutRun, error) {
	var out apitype.PayoutRun
	err := b.do(ctx, from, "POST", "/v1/hq/payouts", apitype.PayoutRequest{DebtorName: d.Name, DebtorIBAN: d.IBAN, DebtorBIC: d.BIC,
		DryRun: plan == "", Approve: plan}, &out)
	if err != nil {
		return console.PayoutRun{}, err
	}
	run := console.PayoutRun{Booked: out.Booked, ID: out.ID, Plan: out.Plan, Count: out.Count, Total: out.Total, SEPATotal: out.SEPATotal,
		Waiting: out.Waiting}
	for _, l := range out.Lines {
		run.Lines = append(run.Lines, console.PayoutLine{Refund: l.Refund, Card: l.Card, Amount: l.Amount, SEPA: l.SEPA})
	}
	return run, nil
}

// PayoutFile streams GET /v1/hq/payouts/{payout}/file to w.
func (b *consoleBackend) PayoutFile(ctx context.Context, from, payout string, w http.ResponseWriter) error {
	if _, ok := staffOf(ctx); !ok {
		return console.ErrSession
	}
	if _, ok := parseUUID(payout); !ok {
		return console.ErrNotFound
	}
	path := "/v1/hq/payouts/" + url.PathEscape(payout) + "/file"
	req, err := http.NewRequestWithContext(ctx, "GET", path, http.NoBody)
	if err != nil {
		return fmt.Errorf("api: console request: %w", err)
	}
	req.RemoteAddr = from
	pw := &passWriter{w: w, header: http.Header{}}
	b.api.ServeHTTP(pw, req)
	if pw.status >= 300 {
		return consoleError("GET", path, pw.status, pw.refusal.Bytes())
	}
	return nil
}

var _ console.Backend = (*consoleBackend)(nil)
