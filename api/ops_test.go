package api_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
)

func TestOperations(t *testing.T) {
	e := newEnv(t, envOptions{limits: api.Limits{MaxBody: 1024, MaxBatchBody: 4096}})

	r := e.do(request{method: "GET", path: "/healthz"})
	require.Equal(t, 200, r.status)
	// A fresh server has written nothing yet: no seconds_since_last_write.
	require.JSONEq(t, `{"status":"ok","db_role":"primary"}`, string(r.body))
	require.Len(t, r.header.Get("X-Request-Id"), 24)

	r = e.do(request{method: "GET", path: "/v1/openapi.json"})
	require.Equal(t, 200, r.status)
	require.Equal(t, api.OpenAPI, r.body)

	t.Run("errors are minimal", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			req    request
			status int
			msg    string
		}{
			{"unknown path", request{method: "GET", path: "/v2/nothing"}, 404, "not found"},
			{"unknown method", request{method: "PUT", path: "/healthz"}, 404, "not found"},
			{"no credentials", request{method: "GET", path: "/v1/hq/batches"}, 401, "authentication required"},
			{"bad bearer", request{method: "GET", path: "/v1/hq/batches", bearer: "lc1_1_AAAA"}, 401, "invalid token"},
			{"unknown scheme", request{method: "GET", path: "/v1/hq/batches", header: map[string]string{"Authorization": "Basic eDp5"}}, 401, "unknown authorization scheme"},
			{"malformed JSON", request{method: "POST", path: "/v1/hq/stores", bearer: e.tokens["hq"], body: []byte(`{"store":`)}, 400, "malformed JSON body"},
			{"unknown field", request{method: "POST", path: "/v1/hq/stores", bearer: e.tokens["hq"], body: []byte(`{"store":"s","name":"n","x":1}`)}, 400, "malformed JSON body"},
			{"trailing data", request{method: "POST", path: "/v1/hq/stores", bearer: e.tokens["hq"], body: []byte(`{"store":"s","name":"n"} {}`)}, 400, "malformed JSON body"},
			{"SQL-looking id", request{method: "POST", path: "/v1/hq/stores", bearer: e.tokens["hq"], body: apitype.StoreRequest{Store: "x'; DROP TABLE stores;--", Name: "n"}}, 400, "store (a-z 0-9 . _ -) and name are required"},
			{"empty body", request{method: "POST", path: "/v1/hq/stores", bearer: e.tokens["hq"]}, 400, "a JSON body is required"},
			{"wrong media type", request{method: "POST", path: "/v1/hq/stores", bearer: e.tokens["hq"], body: []byte(`{}`), header: map[string]string{"Content-Type": "text/plain"}}, 415, "body must be application/json"},
			{"oversized body", request{method: "POST", path: "/v1/hq/stores", bearer: e.tokens["hq"], body: apitype.StoreRequest{Store: "big", Name: strings.Repeat("x", 2000)}}, 413, "request body too large"},
			{"unknown card", request{method: "GET", path: "/v1/card", card: "AAAAAAAAAAAAAAAAAAAAAA"}, 401, "invalid card token"},
			{"PIN without card", request{method: "GET", path: "/v1/card", pin: "123456"}, 401, "a PIN needs the card's token"},
			{"unknown card of a top-up", request{method: "POST", path: "/v1/stores/store-a/topups", bearer: e.tokens["store"], idem: newIdem(), body: apitype.TopUpRequest{Card: "0102030405", Amount: 5}}, 404, "not found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := e.fingerprint()
				r := e.do(tc.req)
				require.Equal(t, tc.status, r.status, string(r.body))
				var body map[string]string
				r.json(t, &body)
				require.Equal(t, map[string]string{"error": tc.msg, "request_id": r.header.Get("X-Request-Id")}, body)
				require.Equal(t, before, e.fingerprint(), "nothing changed")
			})
		}
	})

	t.Run("oversized batch refused before anything", func(t *testing.T) {
		term := e.enrolTerminal("bar-1")
		sk := e.sessionKey(term)
		var txs [][]byte
		for i := 0; i < 40; i++ {
			txs = append(txs, e.debit(term, e.cards[0], uint32(i+1), 1000-int64(i), 1))
		}
		before := e.fingerprint()
		r := e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID, body: apitype.BatchRequest{Transactions: txs}})
		require.Equal(t, http.StatusRequestEntityTooLarge, r.status)
		require.Equal(t, before, e.fingerprint())
		r = e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID, body: apitype.BatchRequest{Transactions: txs[:5]}})
		require.Equal(t, 200, r.status, string(r.body))
	})

	t.Run("TLS 1.2 refused", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), MaxVersion: tls.VersionTLS12}}
		defer tr.CloseIdleConnections()
		_, err := (&http.Client{Transport: tr}).Get(e.url + "/healthz")
		require.Error(t, err)
	})

	t.Run("metrics", func(t *testing.T) {
		r := e.do(request{method: "GET", path: "/metrics"})
		require.Equal(t, http.StatusUnauthorized, r.status, "the metrics are for HQ and auditors")
		require.NotContains(t, string(r.body), "loopcard_")
		r = e.do(request{method: "GET", path: "/metrics", bearer: e.tokens["auditor"]})
		require.Equal(t, 200, r.status)
		require.Contains(t, r.header.Get("Content-Type"), "text/plain; version=0.0.4")
		for _, want := range []string{
			`loopcard_http_requests_total{code="200",method="GET",route="GET /healthz"} 1`,
			`loopcard_http_requests_total{code="413",method="POST",route="POST /v1/hq/stores"} 1`,
			`loopcard_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
			`loopcard_http_requests_total{code="401",method="GET",route="GET /metrics"} 1`,
		} {
			require.True(t, strings.Contains(string(r.body), want+"\n"), "metrics lack %s", want)
		}
	})

	t.Run("access log and audit", func(t *testing.T) {
		var found int
		sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
		for sc.Scan() {
			var line map[string]any
			require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
			if line["msg"] == "access" {
				found++
				require.Len(t, line["request_id"], 24)
				require.NotEmpty(t, line["route"])
				require.NotZero(t, line["status"])
			}
		}
		require.Greater(t, found, 15)
		// Every refused request is audited, with where it came from.
		require.Equal(t, 0, e.auditCount(`remote_addr <> '127.0.0.1'`))
		require.GreaterOrEqual(t, e.auditCount(`status = 413 AND outcome = 'failed'`), 2)
		require.GreaterOrEqual(t, e.auditCount(`status = 401 AND outcome = 'denied' AND action = 'GET /v1/hq/batches'`), 3)
		// Public reads that succeed are not.
		require.Equal(t, 0, e.auditCount(`action = 'GET /healthz'`))
		// Bearer tokens never reach the log.
		for _, tok := range e.tokens {
			require.NotContains(t, e.logs.String(), tok)
			require.NotContains(t, e.logs.String(), tok[len(tok)-20:])
		}
	})
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t, envOptions{limits: api.Limits{PerIP: 5, PerClient: 2}})
	// A client gets a burst of twice its rate, then 429.
	codes := map[int]int{}
	for i := 0; i < 8; i++ {
		codes[e.do(request{method: "GET", path: "/v1/card", card: e.cards[0].token}).status]++
	}
	require.Equal(t, map[int]int{200: 4, 429: 4}, codes)
	// Another client from the same IP still gets through, until the IP's
	// bucket (10) is empty.
	codes = map[int]int{}
	for i := 0; i < 4; i++ {
		codes[e.do(request{method: "GET", path: "/v1/card", card: e.cards[1].token}).status]++
	}
	require.Equal(t, map[int]int{200: 2, 429: 2}, codes)
	r := e.do(request{method: "GET", path: "/healthz"})
	require.Equal(t, 429, r.status)
	require.Equal(t, "1", r.header.Get("Retry-After"))
	// Time refills the buckets.
	e.clock.Add(2 * time.Second)
	require.Equal(t, 200, e.do(request{method: "GET", path: "/v1/card", card: e.cards[0].token}).status)
}

// TestGracefulShutdown starts a request, shuts the server down while its
// body is still coming, and checks that the request still completes.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, envOptions{})
	body := []byte(`{"store":"late","name":"Late Store"}`)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1"})
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /v1/hq/stores HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		e.tokens["hq"], len(body), body[:10])
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // the server is reading the body
	stopped := make(chan error, 1)
	go func() { stopped <- e.shutdown() }()
	time.Sleep(100 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("server stopped with a request in flight")
	default:
	}
	_, err = conn.Write(body[10:])
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 201, resp.StatusCode)
	require.NoError(t, <-stopped)
	var n int
	require.NoError(t, e.pool.QueryRow(t.Context(), `SELECT count(*) FROM stores WHERE store_id = 'late'`).Scan(&n))
	require.Equal(t, 1, n)
	// New connections are refused.
	_, err = tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), &tls.Config{RootCAs: e.ca.Pool(), ServerName: "127.0.0.1"})
	require.Error(t, err)
	_ = bytes.MinRead
}
