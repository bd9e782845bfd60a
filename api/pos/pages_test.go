package pos

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/personalize/reader"
)

// fakeTill is a Till with a menu and nothing behind it.
type fakeTill struct{ menu menu.Menu }

func (f *fakeTill) Menu() (menu.Menu, bool) { return f.menu, true }
func (f *fakeTill) Pay(context.Context, terminal.Card, []Line) (Receipt, error) {
	return Receipt{}, ErrNotSupported
}
func (f *fakeTill) ReturnDeposit(context.Context, terminal.Card, []Line) (Receipt, error) {
	return Receipt{}, ErrNotSupported
}
func (f *fakeTill) VoidLast(context.Context, terminal.Card) (Receipt, error) {
	return Receipt{}, ErrNotSupported
}
func (f *fakeTill) Balance(context.Context, terminal.Card) (int64, error) { return 0, ErrNotSupported }
func (f *fakeTill) Unsent() (int, time.Time)                              { return 0, time.Time{} }
func (f *fakeTill) Recent(int) []Receipt                                  { return nil }
func (f *fakeTill) Online() bool                                          { return true }

// noCard is a reader where no card ever comes.
type noCard struct{}

func (noCard) WaitForCard(ctx context.Context) (reader.Card, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (noCard) Name() string { return "none" }
func (noCard) Close() error { return nil }

func newTestBar(t *testing.T) *Bar {
	t.Helper()
	m := menu.Menu{Products: []menu.Product{{ID: "beer", Name: "Beer", Price: 350, VATRateBP: 2100, Category: "Drinks"},
		{ID: "cup", Name: "Cup", Price: 100, Category: "Deposit", Deposit: true}}}
	require.NoError(t, menu.Validate(m.Products))
	b, err := NewBar(BarOptions{Till: &fakeTill{menu: m}, Reader: noCard{}})
	require.NoError(t, err)
	return b
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// session gets the sale page and returns its CSRF cookie and token.
func session(t *testing.T, h http.Handler) (*http.Cookie, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1:8470/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var c *http.Cookie
	for _, k := range rec.Result().Cookies() {
		if k.Name == csrfGuard.Cookie {
			c = k
		}
	}
	require.NotNil(t, c)
	m := csrfField.FindStringSubmatch(rec.Body.String())
	require.NotNil(t, m)
	return c, m[1]
}

func post(h http.Handler, path string, form url.Values, c *http.Cookie, headers map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "http://127.0.0.1:8470"+path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		r.AddCookie(c)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func (b *Bar) lines() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.basket)
}

// TestFormsNeedCSRF posts to the basket and to the charge without the
// token, with a wrong one, and from another site: each is refused (403)
// and changes nothing; with the token the basket changes.
func TestFormsNeedCSRF(t *testing.T) {
	b := newTestBar(t)
	c, tok := session(t, b)
	add := url.Values{"op": {"add"}, "product": {"beer"}}
	for name, tc := range map[string]struct {
		form    url.Values
		cookie  *http.Cookie
		headers map[string]string
	}{
		"no token":   {add, c, nil},
		"no cookie":  {with(add, "csrf", tok), nil, nil},
		"wrong":      {with(add, "csrf", strings.Repeat("A", len(tok))), c, nil},
		"cross-site": {with(add, "csrf", tok), c, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"origin":     {with(add, "csrf", tok), c, map[string]string{"Origin": "http://evil.example"}},
	} {
		rec := post(b, "/basket", tc.form, tc.cookie, tc.headers)
		require.Equal(t, http.StatusForbidden, rec.Code, name)
		require.Zero(t, b.lines(), name)
		rec = post(b, "/charge", with(url.Values{}, "csrf", tc.form.Get("csrf")), tc.cookie, tc.headers)
		require.Equal(t, http.StatusForbidden, rec.Code, name)
		require.Nil(t, b.run.current(), name)
	}
	rec := post(b, "/basket", with(add, "csrf", tok), c, nil)
	require.Equal(t, http.StatusSeeOther, rec.Code)
	require.Equal(t, 1, b.lines())
	// A product that is not on the menu, or a return of one that is no
	// deposit, changes nothing.
	post(b, "/basket", url.Values{"op": {"add"}, "product": {"wine"}, "csrf": {tok}}, c, nil)
	post(b, "/basket", url.Values{"op": {"return"}, "product": {"beer"}, "csrf": {tok}}, c, nil)
	require.Equal(t, 1, b.lines())
	post(b, "/basket", url.Values{"op": {"return"}, "product": {"cup"}, "csrf": {tok}}, c, nil)
	require.Equal(t, 2, b.lines())
}

func with(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = vv
	}
	out.Set(k, val)
	return out
}

// TestLoopbackOnly: a request naming another host (DNS rebinding) is
// refused; every answer has the policy.
func TestLoopbackOnly(t *testing.T) {
	b := newTestBar(t)
	for host, want := range map[string]int{"127.0.0.1:8470": 200, "localhost:8470": 200, "[::1]:8470": 200,
		"evil.example:8470": http.StatusMisdirectedRequest, "192.168.1.5:8470": http.StatusMisdirectedRequest} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, r)
		require.Equal(t, want, rec.Code, host)
		require.Equal(t, CSP, rec.Header().Get("Content-Security-Policy"))
	}
}

// TestMessagesComplete: every message has both languages, and every
// message a template names exists.
func TestMessagesComplete(t *testing.T) {
	for k, v := range messages {
		require.NotEmpty(t, v[0], k)
		require.NotEmpty(t, v[1], k)
	}
	files, err := filepath.Glob("templates/*.html")
	require.NoError(t, err)
	re := regexp.MustCompile(`\.T\.([a-z0-9]+)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			require.Contains(t, messages, m[1], f)
		}
	}
	src, err := os.ReadFile("app.go")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`"(err\.[a-z]+)"`).FindAllStringSubmatch(string(src), -1) {
		require.Contains(t, messages, m[1])
	}
}

func TestParseEuros(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "12": 1200, "12.5": 1250, "12,50": 1250, "€ 3.05": 305, "1000": 100000, "0.01": 1} {
		v, ok := parseEuros(in)
		require.True(t, ok, in)
		require.Equal(t, want, v, in)
	}
	for _, in := range []string{"abc", "1.234", "-5", "1000.01", "12.", ".5", "1e3", "99999", "1 000"} {
		_, ok := parseEuros(in)
		require.False(t, ok, in)
	}
}

// TestLoadMenuFile: a menu file is read as `loopcard menu set` reads it,
// JSON or CSV, and a bad one is refused with the product named.
func TestLoadMenuFile(t *testing.T) {
	dir := t.TempDir()
	load := func(name, text string) (menu.Menu, error) {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return LoadMenuFile(p)
	}
	m, err := load("m.csv", "id,name,price,vat_rate_bp,category,age_restricted,deposit\nbeer,Beer,350,2100,Drinks,true,false\ncup,Cup,100,0,Deposit,false,true\n")
	require.NoError(t, err)
	require.Equal(t, []menu.Product{{ID: "beer", Name: "Beer", Price: 350, VATRateBP: 2100, Category: "Drinks", AgeRestricted: true},
		{ID: "cup", Name: "Cup", Price: 100, Category: "Deposit", Deposit: true}}, m.Products)
	require.Zero(t, m.Version, "a local file's menu has no version")
	_, err = load("m.json", `{"products":[{"id":"beer","name":"Beer","price":350,"vat_rate_bp":2100,"category":"Drinks","colour":"red"}]}`)
	require.ErrorContains(t, err, "colour", "unknown fields are refused")
	_, err = load("bad.json", `{"products":[{"id":"Beer!","name":"Beer","price":350,"vat_rate_bp":2100}]}`)
	require.ErrorIs(t, err, menu.ErrInvalid)
}

func TestMoney(t *testing.T) {
	require.Equal(t, "€ 1,234.50", money(English, 123450))
	require.Equal(t, "€ 1.234,50", money(Dutch, 123450))
	require.Equal(t, "−€ 1.00", money(English, -100))
	require.Equal(t, "€ 0.05", money(English, 5))
}

// TestPresentStateWaits: the state poll answers at once without an
// operation, and done once a cancelled one ends.
func TestPresentStateWaits(t *testing.T) {
	b := newTestBar(t)
	get := func() string {
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/present/state?wait=1", nil))
		body, _ := io.ReadAll(rec.Body)
		return string(body)
	}
	require.Equal(t, `{"done":true}`, get())
	require.NoError(t, b.run.start("balance", 0, func(context.Context, terminal.Card) outcome { return outcome{OK: true} }))
	require.ErrorIs(t, b.run.start("balance", 0, nil), errBusy, "one card operation at a time")
	go b.run.cancel()
	require.Equal(t, `{"done":true}`, get())
	require.Equal(t, "cancelled", b.run.current().out.Err)
}
