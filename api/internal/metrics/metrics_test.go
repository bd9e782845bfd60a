package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExposition(t *testing.T) {
	r := New()
	done := r.Start()
	r.Observe("GET /v1/card/balance", "GET", 200, 3*time.Millisecond)
	r.Observe("GET /v1/card/balance", "GET", 200, 30*time.Millisecond)
	r.Observe("GET /v1/card/balance", "GET", 401, 10*time.Second)
	r.Inc("rate_limited")
	r.Inc("rate_limited")
	var b strings.Builder
	_, err := r.WriteTo(&b)
	require.NoError(t, err)
	out := b.String()
	for _, want := range []string{
		`loopcard_http_requests_total{route="GET /v1/card/balance",method="GET",code="200"} 2`,
		`loopcard_http_requests_total{route="GET /v1/card/balance",method="GET",code="401"} 1`,
		`loopcard_http_request_duration_seconds_bucket{route="GET /v1/card/balance",method="GET",code="200",le="0.0025"} 0`,
		`loopcard_http_request_duration_seconds_bucket{route="GET /v1/card/balance",method="GET",code="200",le="0.005"} 1`,
		`loopcard_http_request_duration_seconds_bucket{route="GET /v1/card/balance",method="GET",code="200",le="0.05"} 2`,
		`loopcard_http_request_duration_seconds_bucket{route="GET /v1/card/balance",method="GET",code="401",le="5"} 0`,
		`loopcard_http_request_duration_seconds_bucket{route="GET /v1/card/balance",method="GET",code="401",le="+Inf"} 1`,
		`loopcard_http_request_duration_seconds_count{route="GET /v1/card/balance",method="GET",code="200"} 2`,
		`loopcard_api_events_total{event="rate_limited"} 2`,
		`loopcard_http_requests_in_flight 1`,
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
			require.Regexp(t, `^# (HELP|TYPE) loopcard_\w+ .+$`, line)
			continue
		}
		require.Regexp(t, `^loopcard_\w+(\{[^}]*\})? [0-9.e+-]+$`, line)
	}
}
