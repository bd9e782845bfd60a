package pos_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/pos"
	"github.com/loopcard/loopcard/api/terminal"
)

// BenchmarkTapToPaid measures, in one run against the same terminal, card
// (a vcard in a vpcd slot through pcscd) and API, a payment of one
// product from the press of "Charge" to the paid page through the bar app
// (the form post, the card operation, the page's long poll and the result
// page, over HTTP on loopback; a version 2 transaction with the line of
// the menu the terminal synced), against the bare `terminal pay` path (wait
// for the card, write pending loads, debit of an amount) and the same with
// the line item (terminal.Items and Pay), without the app. The card stays
// on the reader; each payment is 1 cent.
func BenchmarkTapToPaid(b *testing.B) {
	ctx := context.Background()
	w := newWorld(b)
	version := w.setMenu(b, `{"products":[{"id":"mint","name":"Mint","price":1,"vat_rate_bp":900,"category":"Sweets"}]}`)
	term := w.terminal(b) // it synced the menu
	m, ok := term.Menu()
	require.True(b, ok)
	require.Equal(b, version, m.Version)
	rd := w.reader(b)
	w.insert(b, 0)

	b.Run("terminal-pay", func(b *testing.B) {
		for b.Loop() {
			card, err := rd.WaitForCard(ctx)
			require.NoError(b, err)
			_, err = term.WritePendingLoads(ctx, card, term.ConfirmLoad)
			require.NoError(b, err)
			_, err = term.Debit(card, 1)
			require.NoError(b, err)
			card.Close()
		}
	})
	b.Run("terminal-pay-items", func(b *testing.B) {
		for b.Loop() {
			card, err := rd.WaitForCard(ctx)
			require.NoError(b, err)
			_, err = term.WritePendingLoads(ctx, card, term.ConfirmLoad)
			require.NoError(b, err)
			items, err := term.Items([]terminal.Line{{Product: "mint", Quantity: 1}})
			require.NoError(b, err)
			_, err = term.Pay(card, items)
			require.NoError(b, err)
			card.Close()
		}
	})

	till := pos.NewTerminalTill(term, nil)
	bar, err := pos.NewBar(pos.BarOptions{Till: till, Reader: rd})
	require.NoError(b, err)
	base := serve(b, bar)
	cl := &posClient{b: b, base: base, hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	cl.start()
	b.Run("pos", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			cl.post("/basket", url.Values{"op": {"add"}, "product": {"mint"}})
			b.StartTimer()
			// Tap to paid: Charge, the present page's poll, the result.
			cl.post("/charge", nil)
			cl.get("/present/state?wait=1", `{"done":true}`)
			cl.get("/result", "Paid")
			b.StopTimer()
			cl.post("/new", nil)
			b.StartTimer()
		}
	})
	require.Eventually(b, func() bool { n, _ := till.Unsent(); _, err := term.Upload(ctx); return n == 0 && err == nil },
		30*time.Second, 100*time.Millisecond)
}

// posClient is a browser's requests to the app: the CSRF cookie and token.
type posClient struct {
	b      *testing.B
	base   string
	hc     *http.Client
	cookie string
	token  string
}

func (c *posClient) start() {
	resp, err := c.hc.Get(c.base + "/")
	require.NoError(c.b, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, k := range resp.Cookies() {
		if strings.HasPrefix(k.Name, "__Host-") {
			c.cookie = k.Name + "=" + k.Value
		}
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	require.NotNil(c.b, m)
	c.token = string(m[1])
}

func (c *posClient) post(path string, form url.Values) {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", c.token)
	req, err := http.NewRequest("POST", c.base+path, strings.NewReader(form.Encode()))
	require.NoError(c.b, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", c.cookie)
	resp, err := c.hc.Do(req)
	require.NoError(c.b, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(c.b, http.StatusSeeOther, resp.StatusCode, path)
}

func (c *posClient) get(path, want string) {
	req, err := http.NewRequest("GET", c.base+path, nil)
	require.NoError(c.b, err)
	req.Header.Set("Cookie", c.cookie)
	resp, err := c.hc.Do(req)
	require.NoError(c.b, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(c.b, string(body), want, path)
}
