// Package metrics keeps the API's request metrics and writes them in the
// Prometheus text exposition format (version 0.0.4): a request counter and a
// latency histogram by route pattern, method and status code, the requests
// in flight, and named event counters (rate-limited, audit failures,
// alerts).
package metrics

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Buckets are the latency histogram's upper bounds in seconds.
var Buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type reqKey struct {
	route, method string
	code          int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

// Registry holds the metrics of one server. It is safe for concurrent use.
type Registry struct {
	inFlight atomic.Int64

	mu       sync.Mutex
	requests map[reqKey]*histogram
	events   map[string]uint64
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{requests: map[reqKey]*histogram{}, events: map[string]uint64{}}
}

// Start counts a request in flight; call the returned function when it ends.
func (r *Registry) Start() func() {
	r.inFlight.Add(1)
	return func() { r.inFlight.Add(-1) }
}

// Observe records one finished request.
func (r *Registry) Observe(route, method string, code int, d time.Duration) {
	s := d.Seconds()
	k := reqKey{route, method, code}
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.requests[k]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(Buckets))}
		r.requests[k] = h
	}
	for i, b := range Buckets {
		if s <= b {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += s
}

// Inc adds one to the event counter name (a Prometheus label value).
func (r *Registry) Inc(name string) {
	r.mu.Lock()
	r.events[name]++
	r.mu.Unlock()
}

// Event returns the event counter name.
func (r *Registry) Event(name string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[name]
}

func label(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func float(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// WriteTo writes every metric in the text exposition format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	r.mu.Lock()
	keys := make([]reqKey, 0, len(r.requests))
	for k := range r.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b reqKey) int {
		if c := strings.Compare(a.route, b.route); c != 0 {
			return c
		}
		if c := strings.Compare(a.method, b.method); c != 0 {
			return c
		}
		return a.code - b.code
	})
	b.WriteString("# HELP loopcard_http_requests_total Requests served, by route pattern, method and status code.\n")
	b.WriteString("# TYPE loopcard_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "loopcard_http_requests_total{route=\"%s\",method=\"%s\",code=\"%d\"} %d\n", label(k.route), k.method, k.code, r.requests[k].count)
	}
	b.WriteString("# HELP loopcard_http_request_duration_seconds Time to serve a request.\n")
	b.WriteString("# TYPE loopcard_http_request_duration_seconds histogram\n")
	for _, k := range keys {
		h := r.requests[k]
		lbl := fmt.Sprintf("route=\"%s\",method=\"%s\",code=\"%d\"", label(k.route), k.method, k.code)
		var cum uint64
		for i, bound := range Buckets {
			cum += h.counts[i]
			fmt.Fprintf(&b, "loopcard_http_request_duration_seconds_bucket{%s,le=\"%s\"} %d\n", lbl, float(bound), cum)
		}
		fmt.Fprintf(&b, "loopcard_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", lbl, h.count)
		fmt.Fprintf(&b, "loopcard_http_request_duration_seconds_sum{%s} %s\n", lbl, float(h.sum))
		fmt.Fprintf(&b, "loopcard_http_request_duration_seconds_count{%s} %d\n", lbl, h.count)
	}
	names := make([]string, 0, len(r.events))
	for n := range r.events {
		names = append(names, n)
	}
	slices.Sort(names)
	b.WriteString("# HELP loopcard_api_events_total Notable API events: refusals, alerts.\n")
	b.WriteString("# TYPE loopcard_api_events_total counter\n")
	for _, n := range names {
		fmt.Fprintf(&b, "loopcard_api_events_total{event=\"%s\"} %d\n", label(n), r.events[n])
	}
	r.mu.Unlock()
	b.WriteString("# HELP loopcard_http_requests_in_flight Requests being served.\n")
	b.WriteString("# TYPE loopcard_http_requests_in_flight gauge\n")
	fmt.Fprintf(&b, "loopcard_http_requests_in_flight %d\n", r.inFlight.Load())
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
