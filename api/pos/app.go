package pos

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/loopcard/loopcard/api/internal/csrf"
	"github.com/loopcard/loopcard/api/internal/httpstatus"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/personalize/reader"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/pos.css
var css []byte

//go:embed assets/pos.js
var js []byte

// CSP is the apps' Content-Security-Policy: styles and the one script from
// this server only, the script's polls to this server only, forms to this
// server only.
const CSP = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// The forms' double-submit guard, with the apps' own cookie.
var csrfGuard = csrf.Guard{Cookie: "__Host-lc_pos_csrf"}

// maxForm bounds a form post.
const maxForm = 8 << 10

// CardWait is how long a card operation waits for a card.
const CardWait = 60 * time.Second

// outcome is what a card operation did, for the result page.
type outcome struct {
	Kind    string // KindPayment, KindReturn, KindVoid, "balance", "sell", "topup"
	OK      bool
	Err     string // a message key when not OK
	Detail  string // the server's words, after err.refused
	Receipt *Receipt
	Balance *int64
	Store   *storeOutcome
}

// job is the one card operation under way: it waits for a card, then
// runs.
type job struct {
	Kind   string
	Amount int64
	cancel context.CancelFunc
	done   chan struct{}
	out    outcome
}

func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// runner runs card operations one at a time on the reader.
type runner struct {
	rd   reader.Reader
	wait time.Duration
	log  *slog.Logger

	mu  sync.Mutex
	cur *job
}

var errBusy = errors.New("pos: a card operation is under way")

// start begins a card operation: fn runs with the first card presented.
func (rn *runner) start(kind string, amount int64, fn func(ctx context.Context, card terminal.Card) outcome) error {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.cur != nil && !rn.cur.finished() {
		return errBusy
	}
	ctx, cancel := context.WithTimeout(context.Background(), rn.wait)
	j := &job{Kind: kind, Amount: amount, cancel: cancel, done: make(chan struct{})}
	rn.cur = j
	go func() {
		defer close(j.done)
		defer cancel()
		card, err := rn.rd.WaitForCard(ctx)
		if err != nil {
			key := "err.timeout"
			if errors.Is(err, context.Canceled) {
				key = "cancelled"
			}
			j.out = outcome{Kind: kind, Err: key}
			return
		}
		defer card.Close()
		j.out = fn(ctx, card)
		j.out.Kind = kind
		rn.log.Info("pos: card operation", "kind", kind, "ok", j.out.OK, "err", j.out.Err)
	}()
	return nil
}

// current is the operation under way or last finished (nil: none).
func (rn *runner) current() *job {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.cur
}

// cancel stops the operation under way, if it still waits.
func (rn *runner) cancel() {
	if j := rn.current(); j != nil {
		j.cancel()
		<-j.done
	}
}

// reset forgets the last operation once it has finished.
func (rn *runner) reset() {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.cur != nil && rn.cur.finished() {
		rn.cur = nil
	}
}

// cardErr is the message key of a card operation's error.
func cardErr(err error) string {
	var ue interface{ Timeout() bool }
	switch {
	case errors.Is(err, terminal.ErrInsufficient):
		return "err.insufficient"
	case errors.Is(err, terminal.ErrCardBlocked):
		return "err.blocked"
	case errors.Is(err, terminal.ErrUncertain):
		return "err.uncertain"
	case errors.Is(err, terminal.ErrUnresolved):
		return "err.unresolved"
	case errors.Is(err, terminal.ErrNoSessionKey):
		return "err.nokey"
	case errors.Is(err, ErrNotSupported):
		return "err.notsupported"
	case errors.Is(err, ErrMixedReturn):
		return "err.mixedreturn"
	case errors.Is(err, ErrOffline):
		return "err.needsonline"
	case errors.Is(err, terminal.ErrNothingToVoid):
		return "err.nopayment"
	case errors.Is(err, terminal.ErrNoMenu), errors.Is(err, terminal.ErrNotOnMenu):
		return "err.menu"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ue):
		return "err.timeout"
	}
	return "err.card"
}

// barErr is the message key of a bar operation's error, and the server's
// words when it refused it.
func barErr(err error) (key, detail string) {
	var he *terminal.HTTPError
	if errors.As(err, &he) {
		if he.Status >= 500 {
			return "err.needsonline", ""
		}
		return "err.refused", he.Message
	}
	return cardErr(err), ""
}

// page is what a template gets.
type page struct {
	T      texts
	Lang   Lang
	CSRF   string
	Path   string
	Mode   string // "bar" or "store"
	Title  string // a message key
	Error  string // a message key
	Notice string // a message key

	Online bool
	Unsent int
	Oldest string // age of the oldest unsent transaction
	Open   int    // the store's requests waiting for their card

	Menu       bool
	Categories []category
	Basket     []Line
	Total      int64

	Job     *job
	Result  *outcome
	Recent  []Receipt
	CanVoid bool

	Store *storeHome
	Close *dayClose
}

type category struct {
	Name     string
	Products []menu.Product
}

// Money formats cents in the page's language.
func (p *page) Money(v int64) string { return money(p.Lang, v) }

// Time formats an instant as the local clock time.
func (p *page) Time(t time.Time) string { return t.Local().Format("15:04:05") }

// Neg is -v (a returned item's quantity shown positive).
func (p *page) Neg(v int32) int32 { return -v }

// Abs is |v|.
func (p *page) Abs(v int64) int64 { return max(v, -v) }

// Deref is *v (0 for nil).
func (p *page) Deref(v *int64) int64 {
	if v == nil {
		return 0
	}
	return *v
}

// app is what both apps share: templates, the runner, the security
// headers.
type app struct {
	mode  string
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
	run   *runner
	// anyHost lets requests name any host (the app listens beyond
	// loopback); otherwise only loopback names are answered, against DNS
	// rebinding.
	anyHost bool
}

func newApp(mode string, rd reader.Reader, log *slog.Logger, anyHost bool, names ...string) (*app, error) {
	if rd == nil {
		return nil, errors.New("pos: a card reader is required")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a := &app{mode: mode, log: log, pages: map[string]*template.Template{}, mux: http.NewServeMux(),
		run: &runner{rd: rd, wait: CardWait, log: log}, anyHost: anyHost}
	for _, name := range append(names, "present", "result") {
		t, err := template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("pos: template %s: %w", name, err)
		}
		a.pages[name] = t
	}
	a.mux.HandleFunc("GET /assets/pos.css", a.asset(css, "text/css; charset=utf-8"))
	a.mux.HandleFunc("GET /assets/pos.js", a.asset(js, "text/javascript; charset=utf-8"))
	a.mux.HandleFunc("GET /present/state", a.presentState)
	a.mux.HandleFunc("POST /cancel", a.post(func(w http.ResponseWriter, r *http.Request) {
		a.run.cancel()
		http.Redirect(w, r, "/result", http.StatusSeeOther)
	}))
	return a, nil
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(h string) bool {
	host, _, err := net.SplitHostPort(h)
	if err != nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ServeHTTP serves one page with the security headers, an access log line
// and panic recovery.
func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &httpstatus.Writer{ResponseWriter: w}
	hd := sw.Header()
	id := httpstatus.PageHeaders(hd, CSP)
	hd.Set("Cache-Control", "no-store")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	_, pattern := a.mux.Handler(r)
	defer func() {
		a.log.Debug("access", "request_id", id, "route", pattern, "status", sw.Status, "duration", time.Since(start))
	}()
	defer httpstatus.RecoverPage(a.log, "pos: panic", id, sw)
	if !a.anyHost && !loopbackHost(r.Host) {
		http.Error(sw, "this till answers on loopback names only", http.StatusMisdirectedRequest)
		return
	}
	r.Body = http.MaxBytesReader(sw, r.Body, maxForm)
	a.mux.ServeHTTP(sw, csrfGuard.WithSlot(r))
}

func (a *app) asset(b []byte, ctype string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(b)
	}
}

// post guards a form post: parsed, and carrying the CSRF token.
func (a *app) post(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || !csrfGuard.Check(r) {
			a.log.Warn("pos: form refused (CSRF check)", "path", r.URL.Path)
			p := a.page(w, r, "sale")
			p.Error = "csrf"
			w.WriteHeader(http.StatusForbidden)
			a.render(w, "result", p)
			return
		}
		h(w, r)
	}
}

// page starts a page: language (a ?lang= sets the cookie) and token.
func (a *app) page(w http.ResponseWriter, r *http.Request, title string) *page {
	l, explicit := pickLang(r)
	if explicit {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	return &page{T: catalog[l], Lang: l, CSRF: csrfGuard.Token(w, r), Path: r.URL.Path, Mode: a.mode, Title: title}
}

func (a *app) render(w http.ResponseWriter, name string, p *page) {
	var buf strings.Builder
	if err := a.pages[name].Execute(&buf, p); err != nil {
		a.log.Error("pos: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, buf.String())
}

// present shows "present the card" while the operation waits.
func (a *app) present(w http.ResponseWriter, r *http.Request, p *page) {
	j := a.run.current()
	if j == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if j.finished() {
		http.Redirect(w, r, "/result", http.StatusSeeOther)
		return
	}
	p.Title, p.Job = "present", j
	a.render(w, "present", p)
}

// presentState answers the present page's script: {"done":true} once the
// operation finished. It waits up to 20 s for that (a long poll), so the
// screen changes as soon as the card is done.
func (a *app) presentState(w http.ResponseWriter, r *http.Request) {
	j := a.run.current()
	if j != nil {
		t := time.NewTimer(20 * time.Second)
		select {
		case <-j.done:
		case <-t.C:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"done":`+strconv.FormatBool(j == nil || j.finished())+`}`)
}

// result shows what the last operation did.
func (a *app) result(w http.ResponseWriter, r *http.Request, p *page) {
	j := a.run.current()
	if j == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !j.finished() {
		http.Redirect(w, r, "/present", http.StatusSeeOther)
		return
	}
	out := j.out
	p.Result = &out
	switch {
	case out.OK && out.Kind == KindPayment:
		p.Title = "paid"
	case out.OK:
		p.Title = "done"
	case out.Err == "cancelled":
		p.Title = "cancel"
	default:
		p.Title = "declined"
	}
	a.render(w, "result", p)
}

// parseEuros reads an amount typed in euros ("12", "12.5", "12,50") as
// cents, from 0 to 1,000.00.
func parseEuros(s string) (int64, bool) {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "€"))
	if s == "" {
		return 0, true
	}
	s = strings.ReplaceAll(s, ",", ".")
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || len(whole) > 4 || (hasFrac && (len(frac) < 1 || len(frac) > 2)) {
		return 0, false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f := int64(0)
	if hasFrac {
		f, _ = strconv.ParseInt(frac, 10, 64)
		if len(frac) == 1 {
			f *= 10
		}
	}
	v := w*100 + f
	return v, v <= 100_000
}
