package api_test

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
)

// fromAddr is a client whose connections come from the loopback address
// ip (any of 127.0.0.0/8), one connection per request.
func (e *env) fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), MinVersion: tls.VersionTLS13}}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// sendFrom sends r from the loopback address ip and returns the status
// and the Retry-After header.
func (e *env) sendFrom(ip string, r request) (int, string) {
	e.t.Helper()
	req, _ := e.newRequest(r)
	resp, err := e.fromAddr(ip).Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

func randomCardToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Issue 17, build point 1: bots scanning card pages from thousands of
// addresses took a ticketing site down. Against the real server, from
// 1,500 loopback addresses (each far under its own limit): the anonymous
// requests (card pages, card lookups, webhooks) share one budget; once it
// is spent, a request from a fresh address is refused with 429 and
// Retry-After without a database connection taken or its body read,
// while HQ, a store, a terminal and /healthz go on. The server's clock
// stands still, so the budget does not refill: counts are exact.
func TestAbuseAnonymousBudget(t *testing.T) {
	const budget = 120
	e := newEnv(t, envOptions{cards: 1, noRollUp: true, limits: api.Limits{PerIP: 5, Anonymous: 1, AnonymousBurst: budget}})
	term := e.enrolTerminal("bar-1") // the enrolment is anonymous: one of the budget
	sk := e.sessionKey(term)

	// The flood: 1,500 addresses, one request each, taking turns at a card
	// page, a card lookup by token and the payment webhook.
	const addrs = 1500
	kinds := []func() request{
		func() request { return request{method: "GET", path: "/c/" + randomCardToken()} },
		func() request { return request{method: "GET", path: "/v1/card", card: randomCardToken()} },
		func() request {
			return request{method: "POST", path: "/v1/payments/webhook", body: []byte(`{"id":"evt_1","type":"payment.succeeded"}`)}
		},
	}
	var refused, served atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= addrs {
					return
				}
				ip := fmt.Sprintf("127.20.%d.%d", i/250, 1+i%250)
				req, _ := e.newRequest(kinds[i%len(kinds)]())
				resp, err := e.fromAddr(ip).Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
					if resp.Header.Get("Retry-After") == "" {
						t.Errorf("%s: 429 without Retry-After", ip)
					}
				} else {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d anonymous requests from %d addresses: %d served, %d refused", addrs, addrs, served.Load(), refused.Load())
	require.EqualValues(t, budget-1, served.Load(), "the budget, less the enrolment, and not one more")
	require.EqualValues(t, addrs-(budget-1), refused.Load())

	// With the budget spent, fresh addresses: no database connection is
	// taken for the refusals (pgxpool counts every acquisition).
	acquired := e.pool.Stat().AcquireCount()
	for i, r := range []request{
		{method: "GET", path: "/c/" + e.cards[0].token},
		{method: "GET", path: "/v1/card", card: e.cards[0].token},
		{method: "GET", path: "/v1/card/history", card: e.cards[0].token, pin: "123456"},
		{method: "POST", path: "/v1/payments/webhook", body: []byte(`{}`)},
		{method: "GET", path: "/nowhere"},
	} {
		status, retry := e.sendFrom(fmt.Sprintf("127.30.0.%d", i+1), r)
		require.Equal(t, http.StatusTooManyRequests, status, "%s %s", r.method, r.path)
		require.Equal(t, "1", retry)
	}
	// A webhook whose body never comes: the refusal does not wait for it.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.30.0.99")}, Timeout: 10 * time.Second}
	addr := strings.TrimPrefix(e.url, "https://")
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: e.ca.Pool(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS13})
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /v1/payments/webhook HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 8000\r\n\r\n", addr)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 429 Too Many Requests", strings.TrimSpace(line), "answered before a byte of the body was sent")
	require.Equal(t, acquired, e.pool.Stat().AcquireCount(), "no database work for a refusal")

	// Staff, a store, a terminal and /healthz, each from a fresh address,
	// are served.
	for i, r := range []request{
		{method: "GET", path: "/healthz"},
		{method: "GET", path: "/v1/hq/stores", bearer: e.tokens["hq"]},
		{method: "GET", path: "/v1/stores/store-a/pending-loads?card=" + hex.EncodeToString(e.cards[0].uid), bearer: e.tokens["store"]},
		{method: "GET", path: "/v1/terminal/pending-loads?card=" + hex.EncodeToString(e.cards[0].uid), terminal: term, session: sk.KeyID},
	} {
		status, _ := e.sendFrom(fmt.Sprintf("127.40.0.%d", i+1), r)
		require.Equal(t, http.StatusOK, status, "%s %s", r.method, r.path)
	}

	// The refusals are counted, by reason, on /metrics; none was audited.
	m := e.do(request{method: "GET", path: "/metrics", bearer: e.tokens["hq"]})
	require.Equal(t, http.StatusOK, m.status)
	require.Contains(t, string(m.body), fmt.Sprintf(`loopcard_requests_refused_total{reason="anonymous_budget"} %d`+"\n", refused.Load()+6))
	require.Contains(t, string(m.body), `loopcard_requests_refused_total{reason="per_address"} 0`+"\n")
	require.Equal(t, 0, e.auditCount(`status = 429`))
}

// Issue 17: a refused connection is counted on /metrics by the cap it
// reached.
func TestAbuseConnectionRefusalsCounted(t *testing.T) {
	e := newEnv(t, envOptions{limits: api.Limits{MaxConnsPerAddr: 2, MaxConns: 3}})
	addr := strings.TrimPrefix(e.url, "https://")
	var held []*tls.Conn
	dial := func(from string) error {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: e.ca.Pool(), MinVersion: tls.VersionTLS13})
		if err == nil {
			held = append(held, c)
			t.Cleanup(func() { _ = c.Close() })
		}
		return err
	}
	require.NoError(t, dial("127.0.0.5"))
	require.NoError(t, dial("127.0.0.5"))
	require.Error(t, dial("127.0.0.5"), "per address")
	require.Error(t, dial("127.0.0.5"), "per address")
	require.NoError(t, dial("127.0.0.6"))
	require.Error(t, dial("127.0.0.7"), "in total")
	// The metrics come through a fresh connection: close one first.
	require.NoError(t, held[0].Close())
	var body string
	require.Eventually(t, func() bool {
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.8")}}).DialContext,
			TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), MinVersion: tls.VersionTLS13}}
		defer tr.CloseIdleConnections()
		req, _ := e.newRequest(request{method: "GET", path: "/metrics", bearer: e.tokens["hq"]})
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, body, `loopcard_connections_refused_total{reason="per_address"} 2`+"\n")
	require.Regexp(t, `loopcard_connections_refused_total\{reason="total"\} [1-9]`, body)
}
