package api_test

import (
	"bufio"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAccessLogHasNoTokens requests card pages and API paths that carry a
// card's QR token or a bearer token in the path, through the whole server,
// and checks that no log line holds either (whole or a recognisable part).
func TestAccessLogHasNoTokens(t *testing.T) {
	e := newEnv(t, envOptions{cards: 1})
	card := e.cards[0].token
	bearer := e.tokens["hq"]
	esc := url.PathEscape
	for _, tc := range []struct {
		method, path string
	}{
		{"GET", "/c/" + card},
		{"GET", "/c/" + card + "?lang=nl"},
		{"GET", "/c/" + card + "/refund"},
		{"GET", "/c/" + card + "/claim"},
		{"GET", "/c/" + card + "/login"},
		{"POST", "/c/" + card + "/history"},
		{"GET", "/c/" + card + "/no-such-page"},
		{"GET", "//c/" + card},
		{"GET", "/C/" + card},
		{"GET", "/c" + card},
		{"GET", "/v1/card/" + card},
		{"GET", "/v1/card/" + card + "/history"},
		{"GET", "/v1/" + esc(bearer)},
		{"GET", "/v1/hq/terminals/" + esc(bearer)},
		{"DELETE", "/v1/hq/terminals/" + esc(bearer)},
		{"POST", "/v1/terminal/loads/" + esc(card) + "/written"},
		{"GET", "/account/" + card},
		{"GET", "/assets/cardpage/" + card},
		{"DELETE", "/v1/hq/terminals/bar-9"},
	} {
		r := e.do(request{method: tc.method, path: tc.path})
		require.NotZero(t, r.status, tc.path)
	}
	logs := e.logs.String()
	var access int
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, secret := range []string{card, card[:12], card[len(card)-12:], bearer, bearer[len(bearer)-20:]} {
			require.NotContains(t, line, secret, "a token in a log line")
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		if m["msg"] == "access" || m["msg"] == "cardpage access" {
			access++
			require.NotContains(t, m, "path")
			require.NotEmpty(t, m["route"])
		}
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, access, 19, "every request has an access log line")
	// The matched route is named, with its wildcards that are not secret.
	require.Contains(t, logs, `"route":"GET /c/{token}"`)
	require.Contains(t, logs, `"route":"DELETE /v1/hq/terminals/{terminal}"`)
	require.Contains(t, logs, `"route":"unmatched"`)
	require.Contains(t, logs, `"terminal":"bar-9"`)
	require.Contains(t, logs, `"terminal":"(malformed)"`)
}
