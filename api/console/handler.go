package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/loopcard/loopcard/api/internal/httpstatus"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/console.css
var css []byte

var funcs = template.FuncMap{
	// short cuts s to n characters, marking the cut with "…".
	"short": func(n int, s string) string {
		r := []rune(s)
		if len(r) <= n {
			return s
		}
		return string(r[:n-1]) + "…"
	},
	"deref": func(v *int64) int64 {
		if v == nil {
			return 0
		}
		return *v
	},
}

// Options configure the console.
type Options struct {
	// Backend answers for the pages; required.
	Backend Backend
	// Logger receives the access log and failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock of "since" figures; nil is time.Now.
	Now func() time.Time
}

// Handler serves the console. Create it with New.
type Handler struct {
	be    Backend
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// Prefix is where the console lives.
const Prefix = "/console/"

// Serves reports whether path is the console's.
func Serves(path string) bool { return path == "/console" || strings.HasPrefix(path, Prefix) }

// CSP is the console's Content-Security-Policy: no script, styles and
// images from this server only, forms to this server only.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New returns the console's handler.
func New(o Options) (*Handler, error) {
	if o.Backend == nil {
		return nil, errors.New("console: a Backend is required")
	}
	h := &Handler{be: o.Backend, log: o.Logger, now: o.Now, pages: map[string]*template.Template{}}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if h.now == nil {
		h.now = time.Now
	}
	for _, name := range []string{"login", "dashboard", "alerts", "cards", "terminals", "stores", "keys", "audit", "batches", "refunds", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	m := http.NewServeMux()
	if err := h.infoBooth(m); err != nil {
		return nil, err
	}
	m.HandleFunc("GET /console", h.home)
	m.HandleFunc("GET /console/{$}", h.home)
	m.HandleFunc("GET /console/login", h.loginForm)
	m.HandleFunc("POST /console/login", h.login)
	m.HandleFunc("POST /console/logout", h.logout)
	m.HandleFunc("GET /console/dashboard", h.dashboard)
	m.HandleFunc("GET /console/alerts", h.alerts)
	m.HandleFunc("POST /console/alerts/{alert}/review", h.review)
	m.HandleFunc("GET /console/cards", h.cards)
	m.HandleFunc("POST /console/cards/{card}/unblock", h.cardAction(h.be.Unblock, "1"))
	m.HandleFunc("POST /console/cards/{card}/block", h.cardAction(h.be.Block, "block"))
	m.HandleFunc("GET /console/terminals", h.terminals)
	m.HandleFunc("POST /console/terminals", h.registerTerminal)
	m.HandleFunc("POST /console/terminals/{terminal}/revoke", h.revokeTerminal)
	m.HandleFunc("POST /console/terminals/{terminal}/session-keys/revoke", h.revokeSessionKeys)
	m.HandleFunc("GET /console/stores", h.stores)
	m.HandleFunc("GET /console/keys", h.keys)
	m.HandleFunc("GET /console/audit", h.audit)
	m.HandleFunc("GET /console/audit/export", h.auditExport)
	m.HandleFunc("GET /console/audit/verify", h.audit)
	m.HandleFunc("GET /console/batches", h.batches)
	m.HandleFunc("GET /console/refunds", h.refunds)
	m.HandleFunc("POST /console/payouts/review", h.runPayout)
	m.HandleFunc("POST /console/payouts/approve", h.runPayout)
	m.HandleFunc("GET /console/payouts/{payout}/file", h.payoutFile)
	m.HandleFunc("GET /console/assets/console.css", h.asset)
	m.HandleFunc("/", h.notFound)
	h.mux = m
	return h, nil
}

// maxRows is the most rows a list shows (newest or most urgent first), to
// keep a page small; the API's lists have them all.
const maxRows = 50

// firstRows keeps the first maxRows of rows and says how many more there
// were.
func firstRows[T any](rows []T) ([]T, int) {
	if len(rows) > maxRows {
		return rows[:maxRows], len(rows) - maxRows
	}
	return rows, 0
}

// termPage is how many terminals one page of the terminals list shows.
const termPage = 50

// maxForm bounds a form post.
const maxForm = 16 << 10

// ServeHTTP serves one page with the security headers, an access log line
// naming the route, and panic recovery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &httpstatus.Writer{ResponseWriter: w}
	hd := sw.Header()
	id := httpstatus.PageHeaders(hd, CSP)
	hd.Set("Cache-Control", "no-store")
	hd.Set("Strict-Transport-Security", "max-age=31536000")
	_, pattern := h.mux.Handler(r)
	defer func() {
		h.log.Info("access", "request_id", id, "route", pattern, "status", sw.Status, "duration", time.Since(start))
	}()
	defer httpstatus.RecoverPage(h.log, "console: panic", id, sw)
	r.Body = http.MaxBytesReader(sw, r.Body, maxForm)
	h.mux.ServeHTTP(sw, withCSRFSlot(r))
}

// page is what a template gets.
type page struct {
	T      texts
	Lang   Lang
	Path   string
	CSRF   string
	Staff  *Staff
	Title  string // a message key
	Error  string // a message key
	Notice string // a message key
	now    time.Time
	Booth  *booth // the info booth's pages (booth.go)

	LoginOrg, LoginName string

	Dash   *Dashboard
	Chart  *chart
	Events []string

	Alerts []Alert
	// Held are held terminal transactions (the alerts page), HeldAll
	// how many are held in all.
	Held    []HeldTx
	HeldAll int
	// More is how many rows a list left out to keep the page small.
	More int

	CardQuery string
	Card      *Card

	Terminals []Terminal
	// TermCounts are the dashboard's counts of the event's terminals.
	TermCounts TermCounts
	// PageNo and Pages place a paged list (the terminals).
	PageNo, Pages int
	Enrolment     *Enrolment
	NewTerm       NewTerminal

	FromDay, ToDay string
	Days           []StoreDay
	Keys           []Key
	Audit          []AuditEntry
	NextAudit      int64 // the after= of the next page; 0: none
	Verify         *Verification
	Batches        []Batch
	Refunds        []Refund
	Waiting        int
	Payouts        []Payout
	// Run is a reviewed payout run (to approve) or the one just booked;
	// Debtor the account it pays from.
	Run    *PayoutRun
	Debtor Debtor

	// Store is the one store the stores page shows (a store member's own).
	Store string
}

// LatestDay is the latest of the one store's days the stores page shows,
// whose figures it puts first; nil when it shows every store or none.
func (p *page) LatestDay() *StoreDay {
	if p.Store == "" || len(p.Days) == 0 {
		return nil
	}
	latest := &p.Days[0]
	for i := range p.Days {
		if p.Days[i].Day.After(latest.Day) {
			latest = &p.Days[i]
		}
	}
	return latest
}

// Prev and Next are the neighbouring page numbers of a paged list.
func (p *page) Prev() int { return p.PageNo - 1 }
func (p *page) Next() int { return p.PageNo + 1 }

// Day formats a day (UTC).
func (p *page) Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Money formats cents in the page's language.
func (p *page) Money(cents int64) string { return money(p.Lang, cents) }

// timeOf reads a time.Time or a *time.Time; nil is the zero time.
func timeOf(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case *time.Time:
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// Time formats a time (UTC) to the minute.
func (p *page) Time(v any) string { return timeOf(v).UTC().Format("2006-01-02 15:04") }

// Since is how long ago a time was, to the minute.
func (p *page) Since(v any) string {
	d := p.now.Sub(timeOf(v)).Round(time.Minute)
	if d < 0 {
		d = 0
	}
	hrs, mins := int(d/time.Hour), int(d%time.Hour/time.Minute)
	if hrs > 0 {
		return fmt.Sprintf("%d h %02d min", hrs, mins)
	}
	return fmt.Sprintf("%d min", mins)
}

// Silent says an active terminal has not uploaded (or, never having
// uploaded, not enrolled) for SilentAfter or longer.
func (p *page) Silent(t Terminal) bool {
	if t.Status != "active" {
		return false
	}
	last := t.LastUpload
	if last == nil {
		last = t.EnrolledAt
	}
	return last != nil && p.now.Sub(*last) >= SilentAfter
}

// TermCounts counts an event's terminals, and those that need attention:
// Silent, with a queue, or (not revoked) never uploaded.
type TermCounts struct {
	All, Attention, Silent, Queued, Never int
}

// Attention says a terminal needs a look: active and silent for
// SilentAfter, with transactions waiting in its queue, or (not revoked)
// never uploaded.
func (p *page) Attention(t Terminal) bool {
	return p.Silent(t) || t.Queued > 0 || (t.LastUpload == nil && t.Status != "revoked")
}

// countTerminals counts ts and keeps those needing attention (Attention),
// at most maxRows of them; More says how many more need it.
func (p *page) countTerminals(ts []Terminal) []Terminal {
	var keep []Terminal
	for _, t := range ts {
		p.TermCounts.All++
		if p.Silent(t) {
			p.TermCounts.Silent++
		}
		if t.Queued > 0 {
			p.TermCounts.Queued++
		}
		if t.LastUpload == nil && t.Status != "revoked" {
			p.TermCounts.Never++
		}
		if p.Attention(t) {
			p.TermCounts.Attention++
			keep = append(keep, t)
		}
	}
	keep, p.More = firstRows(keep)
	return keep
}

func (h *Handler) newPage(w http.ResponseWriter, r *http.Request, title string) *page {
	l, explicit := pickLang(r)
	if explicit {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: "/", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
	}
	return &page{T: textsByLang[l], Lang: l, Path: r.URL.Path, CSRF: csrfToken(w, r), Title: title, now: h.now()}
}

// render writes the page with status, or an error page when the template
// fails.
func (h *Handler) render(w http.ResponseWriter, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders err as a message page, or sends the browser to sign in.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, p *page, err error) {
	status, key := http.StatusInternalServerError, "err.internal"
	switch {
	case errors.Is(err, ErrSession):
		h.clearSession(w)
		if r.Method == http.MethodGet {
			http.Redirect(w, r, "/console/login?ended=1", http.StatusSeeOther)
			return
		}
		status, key = http.StatusUnauthorized, "err.session"
		p.Staff = nil
	case errors.Is(err, ErrForbidden):
		status, key = http.StatusForbidden, "err.forbidden"
	case errors.Is(err, ErrNotFound):
		status, key = http.StatusNotFound, "err.notfound"
	case errors.Is(err, ErrConflict):
		status, key = http.StatusConflict, "err.conflict"
	case errors.Is(err, ErrInvalid):
		status, key = http.StatusBadRequest, "err.invalid"
	default:
		h.log.Error("console: request failed", "path_route", p.Path, "err", err)
	}
	p.Error = key
	h.render(w, status, "message", p)
}

func (h *Handler) setSession(w http.ResponseWriter, s Secret) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.Reveal(), Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
}

func (h *Handler) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func sessionOf(r *http.Request) Secret {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return Secret{}
	}
	return NewSecret(c.Value)
}

// signedIn finds the staff member of the request's session. Without one
// it answers (a redirect to sign in, or 401 to a post) and returns false.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, p *page) (context.Context, bool) {
	s := sessionOf(r)
	if s.IsZero() {
		h.fail(w, r, p, ErrSession)
		return nil, false
	}
	ctx, st, err := h.be.Session(r.Context(), s)
	if err != nil {
		h.fail(w, r, p, err)
		return nil, false
	}
	p.Staff = &st
	return ctx, true
}

// posted parses a form post and checks its CSRF token.
func (h *Handler) posted(w http.ResponseWriter, r *http.Request, p *page) bool {
	if err := r.ParseForm(); err != nil || !checkCSRF(r) {
		p.Error = "err.csrf"
		h.render(w, http.StatusForbidden, "message", p)
		return false
	}
	return true
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, h.landing(r, sessionOf(r)), http.StatusSeeOther)
}

// landing is the first page of the session's staff member: a store
// member's is its store's days, everyone else's the dashboard.
func (h *Handler) landing(r *http.Request, s Secret) string {
	if !s.IsZero() {
		if _, st, err := h.be.Session(r.Context(), s); err == nil && st.Role == "store" {
			return "/console/stores"
		}
	}
	return "/console/dashboard"
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "signin")
	p.LoginOrg = "1"
	if r.URL.Query().Get("ended") != "" {
		p.Error = "err.session"
	}
	h.render(w, http.StatusOK, "login", p)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "signin")
	if !h.posted(w, r, p) {
		return
	}
	f := r.PostForm
	p.LoginOrg, p.LoginName = f.Get("org"), f.Get("name")
	org, err := strconv.ParseInt(p.LoginOrg, 10, 64)
	pw := NewSecret(f.Get("password"))
	var sess Secret
	if err == nil && org > 0 && p.LoginName != "" && !pw.IsZero() {
		sess, err = h.be.Login(r.Context(), r.RemoteAddr, org, p.LoginName, pw, strings.TrimSpace(f.Get("code")))
	} else {
		err = ErrLogin
	}
	switch {
	case errors.Is(err, ErrLogin):
		p.Error = "err.login"
		h.render(w, http.StatusUnauthorized, "login", p)
		return
	case err != nil:
		h.fail(w, r, p, err)
		return
	}
	h.setSession(w, sess)
	http.Redirect(w, r, h.landing(r, sess), http.StatusSeeOther)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "signout")
	if !h.posted(w, r, p) {
		return
	}
	if s := sessionOf(r); !s.IsZero() {
		if err := h.be.Logout(r.Context(), r.RemoteAddr, s); err != nil {
			h.fail(w, r, p, err)
			return
		}
	}
	h.clearSession(w)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "dashboard")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	events, err := h.be.Events(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	p.Events = events
	if len(events) == 0 {
		h.render(w, http.StatusOK, "dashboard", p)
		return
	}
	event := r.URL.Query().Get("event")
	if event == "" {
		event = events[0]
	}
	d, err := h.be.Dashboard(ctx, r.RemoteAddr, event)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	d.Hourly = foldMerchants(lastHours(d.Hourly, chartHours), merchantColours, p.T["othermerchants"])
	d.Terminals = p.countTerminals(d.Terminals)
	p.Dash = &d
	p.Chart = salesChart(d.Hourly, p.Money)
	h.render(w, http.StatusOK, "dashboard", p)
}

func (h *Handler) alerts(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "alerts")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	as, err := h.be.Alerts(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	as, p.More = firstRows(as)
	p.Alerts = as
	held, all, err := h.be.HeldTxs(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	held, _ = firstRows(held)
	p.Held, p.HeldAll = held, all
	if r.URL.Query().Get("done") != "" {
		p.Notice = "done"
	}
	h.render(w, http.StatusOK, "alerts", p)
}

func (h *Handler) review(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "alerts")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	if err := h.be.Review(ctx, r.RemoteAddr, r.PathValue("alert"), r.PostForm.Get("reason")); err != nil {
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/console/alerts?done=1", http.StatusSeeOther)
}

func (h *Handler) cards(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "cards")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	p.CardQuery = strings.ToLower(strings.TrimSpace(r.URL.Query().Get("card")))
	switch r.URL.Query().Get("done") {
	case "":
	case "block":
		p.Notice = "doneblock"
	default:
		p.Notice = "done"
	}
	if p.CardQuery != "" {
		c, err := h.be.Card(ctx, r.RemoteAddr, p.CardQuery)
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		c.Entries, p.More = firstRows(c.Entries)
		p.Card = &c
	}
	h.render(w, http.StatusOK, "cards", p)
}

// cardAction runs one of HQ's actions on a card (unblock: POST
// /v1/hq/cards/{card}/unblock; block, of a lost or stolen card: .../block)
// with the form's reason, and shows the card again with what was done.
func (h *Handler) cardAction(act func(ctx context.Context, from, card, reason string) error, done string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := h.newPage(w, r, "cards")
		if !h.posted(w, r, p) {
			return
		}
		ctx, ok := h.signedIn(w, r, p)
		if !ok {
			return
		}
		card := r.PathValue("card")
		if err := act(ctx, r.RemoteAddr, card, r.PostForm.Get("reason")); err != nil {
			h.fail(w, r, p, err)
			return
		}
		http.Redirect(w, r, "/console/cards?done="+done+"&card="+url.QueryEscape(card), http.StatusSeeOther)
	}
}

func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(css)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "nav")
	p.Error = "err.notfoundpg"
	h.render(w, http.StatusNotFound, "message", p)
}

func (h *Handler) terminals(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "terminals")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	h.showTerminals(ctx, w, r, p, http.StatusOK)
}

func (h *Handler) showTerminals(ctx context.Context, w http.ResponseWriter, r *http.Request, p *page, status int) {
	p.PageNo = 1
	if n := r.URL.Query().Get("page"); n != "" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > 1000 {
			h.fail(w, r, p, ErrInvalid)
			return
		}
		p.PageNo = v
	}
	ts, err := h.be.Terminals(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	p.Pages = max(1, (len(ts)+termPage-1)/termPage)
	from := min(len(ts), (p.PageNo-1)*termPage)
	p.Terminals = ts[from:min(len(ts), from+termPage)]
	if p.Events, err = h.be.Events(ctx, r.RemoteAddr); err != nil {
		h.fail(w, r, p, err)
		return
	}
	if r.URL.Query().Get("done") != "" {
		p.Notice = "done"
	}
	h.render(w, status, "terminals", p)
}

// registerTerminal registers a terminal and shows its enrolment token on
// the page that answers the post: once, never in an address.
func (h *Handler) registerTerminal(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "terminals")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	f := r.PostForm
	p.NewTerm = NewTerminal{ID: strings.TrimSpace(f.Get("terminal")), Merchant: strings.TrimSpace(f.Get("merchant")), Event: f.Get("event")}
	if hrs := f.Get("ttl_hours"); hrs != "" {
		n, err := strconv.Atoi(hrs)
		if err != nil || n < 1 || n > 720 {
			h.fail(w, r, p, ErrInvalid)
			return
		}
		p.NewTerm.TTL = time.Duration(n) * time.Hour
	}
	enr, err := h.be.RegisterTerminal(ctx, r.RemoteAddr, p.NewTerm)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	p.Enrolment = &enr
	p.NewTerm = NewTerminal{}
	h.showTerminals(ctx, w, r, p, http.StatusCreated)
}

func (h *Handler) revokeTerminal(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "terminals")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	if err := h.be.RevokeTerminal(ctx, r.RemoteAddr, r.PathValue("terminal")); err != nil {
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/console/terminals?done=1", http.StatusSeeOther)
}

func (h *Handler) revokeSessionKeys(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "terminals")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	if _, err := h.be.RevokeSessionKeys(ctx, r.RemoteAddr, r.PathValue("terminal")); err != nil {
		h.fail(w, r, p, err)
		return
	}
	http.Redirect(w, r, "/console/terminals?done=1", http.StatusSeeOther)
}

func (h *Handler) stores(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "stores")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	p.FromDay, p.ToDay = r.URL.Query().Get("from"), r.URL.Query().Get("to")
	// A store member sees its own store; HQ and auditors every store, or
	// one. The API holds a store member to its own store.
	p.Store = r.URL.Query().Get("store")
	if p.Store == "" && p.Staff.Role == "store" {
		p.Store = p.Staff.Store
	}
	var days []StoreDay
	var err error
	if p.Store != "" {
		days, err = h.be.OneStoreDays(ctx, r.RemoteAddr, p.Store, p.FromDay, p.ToDay)
	} else {
		days, err = h.be.StoreDays(ctx, r.RemoteAddr, p.FromDay, p.ToDay)
	}
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	days, p.More = firstRows(days)
	p.Days = days
	h.render(w, http.StatusOK, "stores", p)
}

func (h *Handler) keys(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "keys")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	ks, err := h.be.Keys(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	p.Keys = ks
	h.render(w, http.StatusOK, "keys", p)
}

// auditPage is how many audit records one page shows. The page shortens
// each record's texts (short); the whole record is in the audit export.
// 40 records of the longest texts, every character escaped, keep a page
// under 100 kB.
const auditPage = 40

func (h *Handler) audit(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "audit")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	var after int64
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			h.fail(w, r, p, ErrInvalid)
			return
		}
		after = n
	}
	if r.URL.Path == "/console/audit/verify" {
		v, err := h.be.AuditVerify(ctx, r.RemoteAddr)
		if err != nil {
			h.fail(w, r, p, err)
			return
		}
		p.Verify = &v
	}
	recs, err := h.be.Audit(ctx, r.RemoteAddr, after)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	if len(recs) > auditPage {
		recs = recs[:auditPage]
		p.NextAudit = recs[len(recs)-1].ID
	}
	p.Audit = recs
	h.render(w, http.StatusOK, "audit", p)
}

// auditExport downloads the signed export of the custody log (GET
// /v1/audit/export), for the offline auditor.
func (h *Handler) auditExport(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "audit")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	if err := h.be.AuditExport(ctx, r.RemoteAddr, w); err != nil {
		h.fail(w, r, p, err)
	}
}

func (h *Handler) batches(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "batches")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	bs, err := h.be.Batches(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	bs, p.More = firstRows(bs)
	p.Batches = bs
	h.render(w, http.StatusOK, "batches", p)
}

func (h *Handler) refunds(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "refunds")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	h.showRefunds(ctx, w, r, p, http.StatusOK)
}

func (h *Handler) showRefunds(ctx context.Context, w http.ResponseWriter, r *http.Request, p *page, status int) {
	rs, waiting, err := h.be.Refunds(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	rs, p.More = firstRows(rs)
	p.Refunds, p.Waiting = rs, waiting
	ps, err := h.be.Payouts(ctx, r.RemoteAddr)
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	ps, _ = firstRows(ps)
	p.Payouts = ps
	if id := r.URL.Query().Get("payout"); id != "" {
		for _, x := range ps {
			if x.ID == id {
				p.Notice = "payoutbooked"
				p.Run = &PayoutRun{Booked: true, ID: x.ID, Count: x.Count, Total: x.Total}
			}
		}
	}
	h.render(w, status, "refunds", p)
}

// runPayout reviews a payout run (POST /console/payouts/review: a dry
// run, shown with its lines and a form to approve its plan) or books the
// reviewed one (.../approve), then shows the refunds page with the run
// and its file to download.
func (h *Handler) runPayout(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "refunds")
	if !h.posted(w, r, p) {
		return
	}
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	f := r.PostForm
	p.Debtor = Debtor{Name: strings.TrimSpace(f.Get("debtor_name")), IBAN: strings.TrimSpace(f.Get("debtor_iban")), BIC: strings.TrimSpace(f.Get("debtor_bic"))}
	plan := ""
	if strings.HasSuffix(r.URL.Path, "/approve") {
		if plan = f.Get("plan"); plan == "" {
			h.fail(w, r, p, ErrInvalid)
			return
		}
	}
	run, err := h.be.RunPayout(ctx, r.RemoteAddr, p.Debtor, plan)
	if errors.Is(err, ErrConflict) {
		p.Error = "err.payoutchanged"
		h.render(w, http.StatusConflict, "message", p)
		return
	}
	if err != nil {
		h.fail(w, r, p, err)
		return
	}
	if run.Booked {
		http.Redirect(w, r, "/console/refunds?payout="+url.QueryEscape(run.ID), http.StatusSeeOther)
		return
	}
	run.Lines, _ = firstRows(run.Lines)
	p.Run = &run
	h.showRefunds(ctx, w, r, p, http.StatusOK)
}

// payoutFile downloads a booked run's pain.001 file (GET
// /v1/hq/payouts/{payout}/file), as often as HQ needs it.
func (h *Handler) payoutFile(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "refunds")
	ctx, ok := h.signedIn(w, r, p)
	if !ok {
		return
	}
	if err := h.be.PayoutFile(ctx, r.RemoteAddr, r.PathValue("payout"), w); err != nil {
		h.fail(w, r, p, err)
	}
}
