package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The abuse benchmark (scripts/bench abuse): the server runs with serve's
// default limits; for each abuse of issue 17 the driver measures the
// server process's resident memory (VmRSS from /proc, sampled every
// 100 ms) and /healthz p50/p99 (at healthzRate from an address of its
// own) for d without the abuse, then for d under it.

// healthzRate is the rate of /healthz probes, well under the limit of one
// address (200/s).
const healthzRate = 100

// Loopback addresses of the driver's clients: the prober, the /metrics
// reader and each abuse have their own.
const (
	proberAddr  = "127.0.0.2"
	metricsAddr = "127.0.0.3"
)

// abuse is one abuse: start begins it and returns once it is under way;
// the function it returns ends it and says what it did.
type abuse struct {
	name  string
	start func(ctx context.Context) (stop func() string, err error)
}

// phase is what one measured stretch gave.
type phase struct {
	rssPeak  int64 // bytes
	p50, p99 time.Duration
	probes   int
	failed   int
}

func (p phase) String() string {
	return fmt.Sprintf("rss %5.1f MB  healthz p50 %8s p99 %8s (%d probes, %d failed)",
		float64(p.rssPeak)/(1<<20), p.p50, p.p99, p.probes, p.failed)
}

type abuseDriver struct {
	url string
	pid int
	hq  string
	tc  *tls.Config
}

func driveAbuse(d time.Duration, nAddrs int) error {
	srv, err := startServer("-abuse", "-cards=20", "-clients=1", "-batch=1")
	if err != nil {
		return err
	}
	defer srv.stop()
	ad := &abuseDriver{url: srv.seed.URL, pid: srv.cmd.Process.Pid, hq: srv.seed.HQToken,
		tc: &tls.Config{RootCAs: srv.ca, MinVersion: tls.VersionTLS13}}
	abuses := []abuse{
		{"odd methods", ad.oddMethods},
		{"100 stalled bodies", ad.stalledBodies},
		{"connection flood, one address", ad.connFlood},
		{fmt.Sprintf("anonymous flood, %d addresses", nAddrs), func(ctx context.Context) (func() string, error) {
			return ad.anonymousFlood(ctx, nAddrs)
		}},
	}
	// A first stretch warms the server up (connections, pools, caches).
	ad.measure(min(d, 2*time.Second))
	type row struct {
		name          string
		without, with phase
		note          string
	}
	var rows []row
	for _, a := range abuses {
		without := ad.measure(d)
		fmt.Printf("%-34s without: %s\n", a.name, without)
		ctx, cancel := context.WithCancel(context.Background())
		stop, err := a.start(ctx)
		if err != nil {
			cancel()
			return fmt.Errorf("%s: %w", a.name, err)
		}
		with := ad.measure(d)
		cancel()
		note := stop()
		fmt.Printf("%-34s with:    %s\n%-34s         %s\n", a.name, with, "", note)
		rows = append(rows, row{a.name, without, with, note})
		time.Sleep(time.Second) // the server sees the abuse's connections close
	}
	fmt.Println()
	fmt.Printf("%-34s %19s %23s %23s\n", "abuse", "rss MB", "healthz p50", "healthz p99")
	for _, r := range rows {
		fmt.Printf("%-34s %7.1f → %7.1f %10s → %10s %10s → %10s\n", r.name,
			float64(r.without.rssPeak)/(1<<20), float64(r.with.rssPeak)/(1<<20), r.without.p50, r.with.p50, r.without.p99, r.with.p99)
	}
	var sum []string
	for _, r := range rows {
		key := strings.Fields(r.name)[0]
		if key == "100" {
			key = "stalled"
		}
		sum = append(sum, fmt.Sprintf("%s_rss_mb=%.0f/%.0f %s_healthz_p99=%s/%s", key,
			float64(r.without.rssPeak)/(1<<20), float64(r.with.rssPeak)/(1<<20), key, r.without.p99, r.with.p99))
	}
	fmt.Println("summary (without/with):", strings.Join(sum, " "))
	return nil
}

// client is an HTTPS client whose connections come from the loopback
// address from.
func (ad *abuseDriver) client(from string, conns int) *http.Client {
	dl := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dl.DialContext,
		TLSClientConfig: ad.tc.Clone(), MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
}

// rss is the server process's resident memory in bytes.
func (ad *abuseDriver) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ad.pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// measure probes /healthz at healthzRate (open loop) and samples the
// server's memory for d.
func (ad *abuseDriver) measure(d time.Duration) phase {
	c := ad.client(proberAddr, 16)
	defer c.CloseIdleConnections()
	var p phase
	var mu sync.Mutex
	var lat []time.Duration
	done := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		peak := ad.rss()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				sampled <- max(peak, ad.rss())
				return
			case <-t.C:
				peak = max(peak, ad.rss())
			}
		}
	}()
	var wg sync.WaitGroup
	interval := time.Second / healthzRate
	start := time.Now()
	for i := 0; i < int(d/interval); i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			t := time.Now()
			resp, err := c.Get(ad.url + "/healthz")
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			p.probes++
			if !ok {
				p.failed++
				return
			}
			lat = append(lat, time.Since(t))
		})
	}
	wg.Wait()
	close(done)
	p.rssPeak = <-sampled
	slices.Sort(lat)
	if len(lat) > 0 {
		p.p50 = lat[len(lat)*50/100].Round(10 * time.Microsecond)
		p.p99 = lat[min(len(lat)-1, len(lat)*99/100)].Round(10 * time.Microsecond)
	}
	return p
}

// metricsSize is the size of /metrics, read with the HQ token.
func (ad *abuseDriver) metricsSize() int {
	c := ad.client(metricsAddr, 1)
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("GET", ad.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+ad.hq)
	resp, err := c.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return len(b)
}

// statusCounts counts answers by status code.
type statusCounts struct {
	mu sync.Mutex
	m  map[int]int
}

func (s *statusCounts) add(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[int]int{}
	}
	s.m[code]++
}

func (s *statusCounts) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := slices.Sorted(func(yield func(int) bool) {
		for c := range s.m {
			if !yield(c) {
				return
			}
		}
	})
	var parts []string
	total := 0
	for _, c := range codes {
		total += s.m[c]
		name := strconv.Itoa(c)
		if c == 0 {
			name = "error"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, s.m[c]))
	}
	return fmt.Sprintf("%d requests (%s)", total, strings.Join(parts, ", "))
}

// oddMethods sends requests with made-up 12 KiB method names from 16
// addresses as fast as they are answered (issue 17 H1 took /metrics to
// 789 MB this way).
func (ad *abuseDriver) oddMethods(ctx context.Context) (func() string, error) {
	before := ad.metricsSize()
	var counts statusCounts
	var wg sync.WaitGroup
	var n atomic.Int64
	paths := []string{"/healthz", "/v1/terminal/batches", "/nowhere/at/all", "/metrics"}
	for w := range 16 {
		c := ad.client(fmt.Sprintf("127.1.0.%d", w+1), 2)
		wg.Go(func() {
			defer c.CloseIdleConnections()
			for ctx.Err() == nil {
				i := n.Add(1)
				method := fmt.Sprintf("X%08d%s", i, strings.Repeat("Q", 12<<10))
				req, _ := http.NewRequestWithContext(ctx, method, ad.url+paths[i%int64(len(paths))], nil)
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						counts.add(0)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				counts.add(resp.StatusCode)
			}
		})
	}
	return func() string {
		wg.Wait()
		return fmt.Sprintf("%s; /metrics %d → %d bytes", &counts, before, ad.metricsSize())
	}, nil
}

// stalledBodies opens 100 connections, each announcing a 4 MiB upload to
// /v1/terminal/batches without credentials, sends 64 KiB of it and stalls
// (issue 17 H2 took the server from 31 MB to 965 MB this way).
func (ad *abuseDriver) stalledBodies(ctx context.Context) (func() string, error) {
	addr := strings.TrimPrefix(ad.url, "https://")
	var conns []net.Conn
	var answers statusCounts
	var wg sync.WaitGroup
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range 100 {
		dl := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.2.0.1")}, Timeout: 10 * time.Second}
		tc := ad.tc.Clone()
		tc.NextProtos = []string{"http/1.1"}
		c, err := tls.DialWithDialer(dl, "tcp", addr, tc)
		if err != nil {
			closeAll()
			return nil, err
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "POST /v1/terminal/batches HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, 4<<20); err != nil {
			closeAll()
			return nil, err
		}
		wg.Go(func() {
			_, _ = c.Write(make([]byte, 64<<10))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				answers.add(0)
				return
			}
			f := strings.Fields(line)
			code := 0
			if len(f) > 1 {
				code, _ = strconv.Atoi(f[1])
			}
			answers.add(code)
		})
	}
	return func() string {
		closeAll()
		wg.Wait()
		return fmt.Sprintf("100 stalled 4 MiB uploads, answers: %s", &answers)
	}, nil
}

// connFlood dials from one address, again and again, completing TLS and
// the HTTP/2 preface and holding every connection the server keeps
// (issue 17 M1: 19,983 idle HTTP/2 connections took every descriptor).
func (ad *abuseDriver) connFlood(ctx context.Context) (func() string, error) {
	addr := strings.TrimPrefix(ad.url, "https://")
	var mu sync.Mutex
	var held []net.Conn
	var tries, refused atomic.Int64
	var wg sync.WaitGroup
	preface := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil && tries.Add(1) <= 20000 {
				dl := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.3.0.1")}, Timeout: 10 * time.Second}
				tc := ad.tc.Clone()
				tc.NextProtos = []string{"h2"}
				c, err := tls.DialWithDialer(dl, "tcp", addr, tc)
				if err == nil {
					_, err = c.Write(preface)
				}
				if err != nil {
					refused.Add(1)
					if c != nil {
						c.Close()
					}
					continue
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		})
	}
	// Under way once the cap is reached.
	for deadline := time.Now().Add(10 * time.Second); refused.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return func() string {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
		return fmt.Sprintf("%d connections tried from one address: %d held open, %d refused", min(tries.Load(), 20000), len(held), refused.Load())
	}, nil
}

// anonymousFlood sends anonymous requests from n addresses (one
// keep-alive connection each), taking turns at a card page, a card lookup
// with a made-up token and the payment webhook: bots scanning card pages
// from thousands of addresses.
func (ad *abuseDriver) anonymousFlood(ctx context.Context, n int) (func() string, error) {
	const workers = 64
	var counts statusCounts
	var wg sync.WaitGroup
	var started atomic.Int64
	token := func() string {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for w := range workers {
		wg.Go(func() {
			var clients []*http.Client
			for i := w; i < n; i += workers {
				clients = append(clients, ad.client(fmt.Sprintf("127.4.%d.%d", i/250, 1+i%250), 1))
			}
			defer func() {
				for _, c := range clients {
					c.CloseIdleConnections()
				}
			}()
			for k := 0; ctx.Err() == nil; k++ {
				c := clients[k%len(clients)]
				var req *http.Request
				switch k % 3 {
				case 0:
					req, _ = http.NewRequestWithContext(ctx, "GET", ad.url+"/c/"+token(), nil)
				case 1:
					req, _ = http.NewRequestWithContext(ctx, "GET", ad.url+"/v1/card", nil)
					req.Header.Set("Authorization", "Card "+token())
				default:
					req, _ = http.NewRequestWithContext(ctx, "POST", ad.url+"/v1/payments/webhook", strings.NewReader(`{"id":"evt_1"}`))
					req.Header.Set("Content-Type", "application/json")
				}
				resp, err := c.Do(req)
				started.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						counts.add(0)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				counts.add(resp.StatusCode)
			}
		})
	}
	// Under way once most addresses have sent.
	for deadline := time.Now().Add(30 * time.Second); started.Load() < int64(n) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return func() string {
		wg.Wait()
		return fmt.Sprintf("%s from %d addresses", &counts, n)
	}, nil
}
