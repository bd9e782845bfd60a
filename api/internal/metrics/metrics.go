// Package metrics keeps the API's request metrics in a Prometheus registry
// (prometheus/client_golang) and writes them in the text exposition
// format: a request counter and a latency histogram by route pattern,
// method and status code, the requests in flight, named event counters
// (audit failures, alerts), the connections and requests refused by a
// cap, a rate limit or the anonymous budget, and the Go runtime's and the
// process's own figures.
//
// Every label value comes from a fixed set, so that no client can add a
// series: the method is one of the standard ones or "other", the route
// one of those given to New or "unmatched", a refusal's reason one of
// ConnReasons or RequestReasons.
package metrics

import (
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Buckets are the latency histogram's upper bounds in seconds.
var Buckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Unmatched is the route label of every request to a route not given to
// New.
const Unmatched = "unmatched"

// Other is the method label of every method but the standard ones.
const Other = "other"

// ConnReasons are the reason labels of refused connections: over the cap
// per address, over the cap in total.
var ConnReasons = []string{"per_address", "total"}

// RequestReasons are the reason labels of requests refused before any
// work: over the rate limit of their address, of their client (after
// authentication), with the budget of all anonymous requests spent, with
// the budget of failed credentials spent, or a credential that failed in
// the last minutes (the one refusal answered 401, not 429).
var RequestReasons = []string{"per_address", "per_client", "anonymous_budget", "failed_credentials_budget", "failed_credential"}

var knownMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Method is the label of an HTTP method: itself if it is one of GET,
// HEAD, POST, PUT, PATCH, DELETE and OPTIONS, else Other.
func Method(m string) string {
	if slices.Contains(knownMethods, m) {
		return m
	}
	return Other
}

// Registry holds the metrics of one server. It is safe for concurrent use.
type Registry struct {
	reg      *prometheus.Registry
	routes   map[string]bool
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	events   *prometheus.CounterVec
	inFlight prometheus.Gauge
	connRef  *prometheus.CounterVec
	reqRef   *prometheus.CounterVec
}

// New returns an empty registry whose route labels are routes (route
// patterns such as "GET /healthz") and Unmatched.
func New(routes ...string) *Registry {
	r := &Registry{
		reg:    prometheus.NewRegistry(),
		routes: map[string]bool{Unmatched: true},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loopcard_http_requests_total",
			Help: "Requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "loopcard_http_request_duration_seconds",
			Help:    "Time to serve a request.",
			Buckets: Buckets,
		}, []string{"route", "method", "code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loopcard_api_events_total",
			Help: "Notable API events: refusals, alerts.",
		}, []string{"event"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "loopcard_http_requests_in_flight",
			Help: "Requests being served.",
		}),
	}
	r.connRef = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loopcard_connections_refused_total",
		Help: "Connections closed as soon as accepted, by the cap reached (per_address, total).",
	}, []string{"reason"})
	r.reqRef = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "loopcard_requests_refused_total",
		Help: "Requests refused before any work, by reason (per_address, per_client, anonymous_budget, failed_credentials_budget: 429; failed_credential: 401).",
	}, []string{"reason"})
	for _, rt := range routes {
		r.routes[rt] = true
	}
	// Every series of the refusals exists from the start, at 0.
	for _, why := range ConnReasons {
		r.connRef.WithLabelValues(why)
	}
	for _, why := range RequestReasons {
		r.reqRef.WithLabelValues(why)
	}
	r.reg.MustRegister(r.requests, r.duration, r.events, r.inFlight, r.connRef, r.reqRef,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Start counts a request in flight; call the returned function when it ends.
func (r *Registry) Start() func() {
	r.inFlight.Inc()
	return r.inFlight.Dec
}

// Observe records one finished request. A route not given to New counts
// as Unmatched, a method as Method says.
func (r *Registry) Observe(route, method string, code int, d time.Duration) {
	if !r.routes[route] {
		route = Unmatched
	}
	if code < 100 || code > 999 {
		code = 0
	}
	lv := []string{route, Method(method), strconv.Itoa(code)}
	r.requests.WithLabelValues(lv...).Inc()
	r.duration.WithLabelValues(lv...).Observe(d.Seconds())
}

// Inc adds one to the event counter name, which must be a name the server
// chose (never a client's string).
func (r *Registry) Inc(name string) { r.events.WithLabelValues(name).Inc() }

// ConnRefused counts a refused connection; why is one of ConnReasons
// (anything else panics: it is the server's word, never a client's).
func (r *Registry) ConnRefused(why string) {
	r.connRef.WithLabelValues(mustBeOneOf(why, ConnReasons)).Inc()
}

// RequestRefused counts a refused request; why is one of RequestReasons
// (anything else panics).
func (r *Registry) RequestRefused(why string) {
	r.reqRef.WithLabelValues(mustBeOneOf(why, RequestReasons)).Inc()
}

func mustBeOneOf(v string, set []string) string {
	if !slices.Contains(set, v) {
		panic("metrics: unknown reason " + strconv.Quote(v))
	}
	return v
}

// ContentType is the media type WriteTo writes.
var ContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))

// WriteTo writes every metric in the text exposition format. No lock is
// held while it writes.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	mfs, err := r.reg.Gather()
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: w}
	enc := expfmt.NewEncoder(cw, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
