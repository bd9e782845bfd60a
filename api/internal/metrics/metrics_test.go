package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExposition(t *testing.T) {
	r := New("GET /v1/card/balance")
	done := r.Start()
	r.Observe("GET /v1/card/balance", "GET", 200, 3*time.Millisecond)
	r.Observe("GET /v1/card/balance", "GET", 200, 30*time.Millisecond)
	r.Observe("GET /v1/card/balance", "GET", 401, 10*time.Second)
	r.Inc("rate_limited")
	r.Inc("rate_limited")
	r.ConnRefused("total")
	r.RequestRefused("anonymous_budget")
	r.RequestRefused("anonymous_budget")
	require.Panics(t, func() { r.RequestRefused("made up") })
	var b strings.Builder
	_, err := r.WriteTo(&b)
	require.NoError(t, err)
	out := b.String()
	for _, want := range []string{
		`loopcard_http_requests_total{code="200",method="GET",route="GET /v1/card/balance"} 2`,
		`loopcard_http_requests_total{code="401",method="GET",route="GET /v1/card/balance"} 1`,
		`loopcard_http_request_duration_seconds_bucket{code="200",method="GET",route="GET /v1/card/balance",le="0.0025"} 0`,
		`loopcard_http_request_duration_seconds_bucket{code="200",method="GET",route="GET /v1/card/balance",le="0.005"} 1`,
		`loopcard_http_request_duration_seconds_bucket{code="200",method="GET",route="GET /v1/card/balance",le="0.05"} 2`,
		`loopcard_http_request_duration_seconds_bucket{code="401",method="GET",route="GET /v1/card/balance",le="5"} 0`,
		`loopcard_http_request_duration_seconds_bucket{code="401",method="GET",route="GET /v1/card/balance",le="+Inf"} 1`,
		`loopcard_http_request_duration_seconds_count{code="200",method="GET",route="GET /v1/card/balance"} 2`,
		`loopcard_api_events_total{event="rate_limited"} 2`,
		`loopcard_http_requests_in_flight 1`,
		`loopcard_connections_refused_total{reason="per_address"} 0`,
		`loopcard_connections_refused_total{reason="total"} 1`,
		`loopcard_requests_refused_total{reason="anonymous_budget"} 2`,
		`loopcard_requests_refused_total{reason="per_address"} 0`,
		`loopcard_requests_refused_total{reason="per_client"} 0`,
	} {
		require.Contains(t, out, want+"\n")
	}
	done()
	b.Reset()
	_, err = r.WriteTo(&b)
	require.NoError(t, err)
	require.Contains(t, b.String(), "loopcard_http_requests_in_flight 0\n")
	// Every sample line is NAME{labels} VALUE or NAME VALUE.
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if strings.HasPrefix(line, "#") {
			require.Regexp(t, `^# (HELP|TYPE) \w+ .+$`, line)
			continue
		}
		require.Regexp(t, `^\w+(\{[^}]*\})? [0-9.e+-]+$`, line)
	}
}

// No client can add a series: an unknown method is "other", an unknown
// route "unmatched", whatever they are.
func TestBoundedLabels(t *testing.T) {
	r := New("GET /healthz")
	// size is the page's size and number of samples.
	size := func() (int, int) {
		var b strings.Builder
		_, err := r.WriteTo(&b)
		require.NoError(t, err)
		return b.Len(), strings.Count(b.String(), "\n") - strings.Count(b.String(), "# ")
	}
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW"} {
		r.Observe("GET /healthz", m, 200, time.Millisecond)
		r.Observe("/nowhere", m, 404, time.Millisecond)
	}
	before, samples := size()
	for i := range 5000 {
		method := fmt.Sprintf("X%d%s", i, strings.Repeat("Y", 1000))
		r.Observe("GET /healthz", method, 200, time.Millisecond)
		r.Observe(fmt.Sprintf("/x/%d", i), method, 404, time.Millisecond)
	}
	after, samplesAfter := size()
	// Only values change (a few digits each).
	require.Equal(t, samples, samplesAfter, "no new series")
	require.Less(t, after, before+1000, "the page grew from %d to %d bytes", before, after)
	var b strings.Builder
	_, _ = r.WriteTo(&b)
	require.Contains(t, b.String(), `loopcard_http_requests_total{code="200",method="other",route="GET /healthz"} 5001`+"\n")
	require.Contains(t, b.String(), `loopcard_http_requests_total{code="404",method="other",route="unmatched"} 5001`+"\n")
	require.NotContains(t, b.String(), "YYYY")
	require.Equal(t, "other", Method("get"))
	require.Equal(t, "PATCH", Method("PATCH"))
}
