package api_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
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
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/httpsig"
)

// Issue 17 H1: made-up method names, thousands of them, once made a series
// each in /metrics (3,500 of 15 KB took it to 789 MB). Against the real
// server, the page keeps its series and its size.
func TestAbuseMetricsBounded(t *testing.T) {
	e := newEnv(t, envOptions{})
	scrape := func() (size, samples int) {
		t.Helper()
		r := e.do(request{method: "GET", path: "/metrics", bearer: e.tokens["hq"]})
		require.Equal(t, 200, r.status)
		for line := range strings.SplitSeq(strings.TrimSpace(string(r.body)), "\n") {
			if !strings.HasPrefix(line, "#") {
				samples++
			}
		}
		return len(r.body), samples
	}
	odd := func(i int) string { return fmt.Sprintf("X%06d%s", i, strings.Repeat("Q", 12<<10)) }
	paths := []string{"/healthz", "/v1/terminal/batches", "/nowhere/at/all"}
	// Every series this test makes exists before the baseline.
	for _, p := range paths {
		require.Equal(t, 404, e.do(request{method: odd(0), path: p}).status)
	}
	scrape()
	size0, samples0 := scrape()

	const n = 3000
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				req, err := http.NewRequest(odd(i), e.url+paths[i%len(paths)], nil)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := e.client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 404 {
					t.Errorf("method %d: status %d", i, resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	size1, samples1 := scrape()
	t.Logf("/metrics: %d bytes and %d samples before %d odd methods, %d bytes and %d samples after", size0, samples0, n, size1, samples1)
	require.Equal(t, samples0, samples1, "no series added")
	require.Less(t, size1, size0+2<<10, "only counter values grew")
	require.Less(t, size1, 64<<10)
	r := e.do(request{method: "GET", path: "/metrics", bearer: e.tokens["auditor"]})
	require.Contains(t, string(r.body), fmt.Sprintf(`loopcard_http_requests_total{code="404",method="other",route="unmatched"} %d`+"\n", n+len(paths)))
	require.NotContains(t, string(r.body), "QQQQ")
	require.NotContains(t, e.logs.String(), "QQQQ", "the access log names the method by its label too")
}

// Issue 17 L6: the metrics show security counters; only HQ and auditors
// see them.
func TestAbuseMetricsNotPublic(t *testing.T) {
	e := newEnv(t, envOptions{cards: 1})
	for _, tc := range []struct {
		name   string
		req    request
		status int
	}{
		{"anonymous", request{}, http.StatusUnauthorized},
		{"store", request{bearer: e.tokens["store"]}, http.StatusForbidden},
		{"card", request{card: e.cards[0].token}, http.StatusForbidden},
		{"hq", request{bearer: e.tokens["hq"]}, http.StatusOK},
		{"auditor", request{bearer: e.tokens["auditor"]}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.method, tc.req.path = "GET", "/metrics"
			r := e.do(tc.req)
			require.Equal(t, tc.status, r.status)
			require.Equal(t, tc.status == http.StatusOK, strings.Contains(string(r.body), "loopcard_http_requests_total"))
		})
	}
}

// countingListener counts the bytes the server reads from its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, read: l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// Issue 17 H2: bodies up to 4 MiB were read before authentication; 100
// anonymous stalled uploads to /v1/terminal/batches took the server from
// 31 MB to 965 MB. Against the server's own http.Server, with every byte
// it reads from a connection counted: strangers' uploads are refused
// before their bodies are read.
func TestAbuseBodiesAfterAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{cards: 1})
	term := e.enrolTerminal("bar-1")
	sk := e.sessionKey(term)

	// read counts what the server reads from its connections. (The
	// handler is not wrapped: net/http reads a body on after the handler
	// when it does not know the body's type.)
	var read atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := e.srv.HTTPServer(nil)
	go func() { _ = hs.Serve(countingListener{Listener: ln, read: &read}) }()
	t.Cleanup(func() { _ = hs.Close() })
	addr := ln.Addr().String()

	// upload opens a connection, sends head and then up to size bytes of
	// body in the background (blocking once the socket's buffers are full),
	// and returns the status line of the answer.
	upload := func(head string, size int) (string, func()) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = io.WriteString(c, head)
		require.NoError(t, err)
		go func() { _, _ = io.Copy(c, io.LimitReader(zeros{}, int64(size))) }()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		return strings.TrimSpace(line), func() { c.Close() }
	}
	const body = 4 << 20
	head := func(path string, extra ...string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
			path, addr, body, strings.Join(extra, ""))
	}

	t.Run("100 anonymous uploads", func(t *testing.T) {
		read.Store(0)
		var closers []func()
		for range 100 {
			line, closeConn := upload(head("/v1/terminal/batches"), body)
			closers = append(closers, closeConn)
			require.Equal(t, "HTTP/1.1 401 Unauthorized", line)
		}
		for _, c := range closers {
			c()
		}
		t.Logf("100 anonymous 4 MiB uploads: the server read %d bytes", read.Load())
		require.Less(t, read.Load(), int64(100*16<<10), "at most the head and a buffer per connection")
	})

	t.Run("a forged signature", func(t *testing.T) {
		// A signature by a key no terminal enrolled, over another body.
		_, key, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		req, err := http.NewRequest("POST", "http://"+addr+"/v1/terminal/batches", nil)
		require.NoError(t, err)
		require.NoError(t, httpsig.NewSigner(key, "1:ghost").Sign(req, []byte("{}")))
		var extra []string
		for _, h := range []string{"Content-Digest", "Signature-Input", "Signature"} {
			extra = append(extra, h+": "+req.Header.Get(h)+"\r\n")
		}
		read.Store(0)
		line, closeConn := upload(head("/v1/terminal/batches", extra...), body)
		defer closeConn()
		require.Equal(t, "HTTP/1.1 401 Unauthorized", line)
		require.Less(t, read.Load(), int64(16<<10))
	})

	t.Run("anonymous bodies are small", func(t *testing.T) {
		// Login is public: a declared 4 MiB is refused at once, a chunked
		// body once 8 KiB were read.
		read.Store(0)
		line, closeConn := upload(head("/v1/profile/login"), body)
		defer closeConn()
		require.Equal(t, "HTTP/1.1 413 Request Entity Too Large", line)
		require.Less(t, read.Load(), int64(16<<10))

		read.Store(0)
		big := bytes.Repeat([]byte(" "), body)
		req, err := http.NewRequest("POST", "http://"+addr+"/v1/profile/login", io.MultiReader(bytes.NewReader(big)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil { // the server may close before the client sent all
			resp.Body.Close()
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		}
		// The API reads 8 KiB and a byte, net/http up to 256 KiB more into
		// io.Discard before it closes the connection.
		t.Logf("a chunked 4 MiB login: the server read %d bytes", read.Load())
		require.Less(t, read.Load(), int64(1<<20))
	})

	t.Run("a terminal's body must be the one it signed", func(t *testing.T) {
		tx := e.debit(term, e.cards[0], 1, 1000, 1)
		signed, _ := e.newRequest(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		other, err := http.NewRequest("POST", signed.URL.String(), bytes.NewReader([]byte(`{"transactions":[]}`)))
		require.NoError(t, err)
		other.Header = signed.Header.Clone()
		before := e.fingerprint()
		r := e.send(other)
		require.Equal(t, http.StatusUnauthorized, r.status, string(r.body))
		require.Contains(t, string(r.body), "bad request signature")
		require.Equal(t, before, e.fingerprint())
		// The terminal's own signed upload goes through.
		r = e.do(request{method: "POST", path: "/v1/terminal/batches", terminal: term, session: sk.KeyID,
			body: apitype.BatchRequest{Transactions: [][]byte{tx}}})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
	})
}

// zeros is an endless body.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Issue 17 M1: 19,983 idle HTTP/2 connections from one address once took
// every file descriptor. Against the real server: connection N+1 from one
// address is refused while another address is still served, the total cap
// holds, and a closed connection gives its slot back.
func TestAbuseConnectionCaps(t *testing.T) {
	const perAddr, total = 4, 6
	e := newEnv(t, envOptions{limits: api.Limits{MaxConnsPerAddr: perAddr, MaxConns: total}})
	addr := strings.TrimPrefix(e.url, "https://")
	// dial completes a TLS handshake (HTTP/2 offered) from the loopback
	// address from, which means the server accepted the connection; a
	// refused one fails the handshake.
	dial := func(from string) (*tls.Conn, error) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: e.ca.Pool(), NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13})
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
		return c, err
	}
	healthz := func(from string) error {
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext,
			TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(e.url + "/healthz")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != 200 {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}

	var held []*tls.Conn
	for i := range perAddr {
		c, err := dial("127.0.0.5")
		require.NoError(t, err, "connection %d from one address", i+1)
		require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
		held = append(held, c)
	}
	_, err := dial("127.0.0.5")
	require.Error(t, err, "connection N+1 from one address is refused")
	require.NoError(t, healthz("127.0.0.6"), "another address is served") // its connection stays open: 5 in all
	_, err = dial("127.0.0.7")
	require.NoError(t, err) // 6 in all
	_, err = dial("127.0.0.8")
	require.Error(t, err, "the total cap holds")
	require.Error(t, healthz("127.0.0.8"))

	// A connection closed by its client gives its slot back once the
	// server has seen the close.
	require.NoError(t, held[0].Close())
	require.Eventually(t, func() bool {
		c, err := dial("127.0.0.8")
		if err == nil {
			held[0] = c
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
}

// Issue 17 M1: the HTTP/2 limits the server announces in its SETTINGS:
// streams open at once on a connection and the per-stream receive window,
// which bound what one connection may make the server hold.
func TestAbuseHTTP2Settings(t *testing.T) {
	e := newEnv(t, envOptions{})
	c, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), &tls.Config{RootCAs: e.ca.Pool(), NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13})
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// The client preface and an empty SETTINGS frame.
	_, err = c.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0))
	require.NoError(t, err)
	var hdr [9]byte
	_, err = io.ReadFull(c, hdr[:])
	require.NoError(t, err)
	require.EqualValues(t, 4, hdr[3], "the server's first frame is SETTINGS")
	payload := make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2]))
	_, err = io.ReadFull(c, payload)
	require.NoError(t, err)
	settings := map[uint16]uint32{}
	for p := payload; len(p) >= 6; p = p[6:] {
		settings[binary.BigEndian.Uint16(p)] = binary.BigEndian.Uint32(p[2:])
	}
	require.EqualValues(t, 100, settings[0x3], "SETTINGS_MAX_CONCURRENT_STREAMS")
	require.EqualValues(t, 256<<10, settings[0x4], "SETTINGS_INITIAL_WINDOW_SIZE")
}
