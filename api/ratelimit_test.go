package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter(10, func() time.Time { return now })
	for i := 0; i < 20; i++ {
		require.True(t, l.allow("a"), "burst of twice the rate")
	}
	require.False(t, l.allow("a"))
	require.True(t, l.allow("b"), "buckets are per key")
	now = now.Add(100 * time.Millisecond)
	require.True(t, l.allow("a"), "one token back after 1/rate")
	require.False(t, l.allow("a"))
	// Idle buckets are forgotten.
	now = now.Add(2 * time.Minute)
	require.True(t, l.allow("c"))
	require.Len(t, l.buckets, 1)
	unlimited := newLimiter(-1, time.Now)
	for i := 0; i < 1000; i++ {
		require.True(t, unlimited.allow("x"))
	}
}

// Issue 17 M1: a limiter remembers at most max keys however many distinct
// keys (addresses) come, forgetting the one seen least recently, and a key
// that keeps coming keeps its (empty) bucket.
func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter(1, func() time.Time { return now })
	l.max = 100
	require.True(t, l.allow("hot"))
	require.True(t, l.allow("hot"))
	require.False(t, l.allow("hot"), "burst of 2 spent")
	for i := range 10_000 {
		require.True(t, l.allow(fmt.Sprint("ip", i)), "a new key has a full bucket")
		if i%50 == 0 {
			require.False(t, l.allow("hot"), "a key in use is not forgotten")
		}
		require.LessOrEqual(t, len(l.buckets), 100)
		require.Equal(t, len(l.buckets), l.lru.Len())
	}
	require.Len(t, l.buckets, 100)
	require.False(t, l.allow("hot"))
	require.True(t, l.allow("ip0"), "forgotten, so full again")
}

func TestPINWatch(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := newPINWatch(3, 10*time.Minute)
	for i, want := range []bool{false, false, true, false} {
		_, alert := p.failure("10.0.0.1", fmt.Sprint("card", i), now)
		require.Equal(t, want, alert, i)
	}
	// The same card again does not count twice.
	n, _ := p.failure("10.0.0.2", "card", now)
	require.Equal(t, 1, n)
	n, _ = p.failure("10.0.0.2", "card", now)
	require.Equal(t, 1, n)
	// Old failures leave the window.
	n, _ = p.failure("10.0.0.1", "card9", now.Add(11*time.Minute))
	require.Equal(t, 1, n)
}

// Issue 17: the limit per address counts an IPv6 /64 as one address (a
// subscriber holds all of it) and IPv4 by address; the anonymous budget
// holds back requests without a staff token or terminal signature, once,
// whatever their addresses, and never /healthz.
func TestAdmit(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s := &Server{ipLimit: newLimiter(1, clock), now: clock, creds: newCredGuard(clock)}
	get := func(header ...string) *http.Request {
		r := httptest.NewRequest("GET", "/v1/card", nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}
	// A burst of 2 per address: the third request of one /64 is refused,
	// whichever of its addresses sends it.
	require.Empty(t, s.admit(get(), "2001:db8:1:2::1", false))
	require.Empty(t, s.admit(get(), "2001:db8:1:2:aaaa:bbbb:cccc:dddd", false))
	require.Equal(t, refusedPerAddr, s.admit(get(), "2001:db8:1:2::ffff", false))
	require.Empty(t, s.admit(get(), "2001:db8:1:3::1", false), "another /64")
	require.Empty(t, s.admit(get(), "192.0.2.1", false))
	require.Empty(t, s.admit(get(), "192.0.2.1", false))
	require.Equal(t, refusedPerAddr, s.admit(get(), "::ffff:192.0.2.1", false), "IPv4-mapped is the IPv4 address")
	require.Empty(t, s.admit(get(), "192.0.2.2", false), "IPv4 by address")

	// The anonymous budget: 3 in all, from fresh addresses each time.
	s.ipLimit = newLimiter(-1, clock)
	s.anonymous = rate.NewLimiter(1, 3)
	ip := 0
	next := func() string { ip++; return fmt.Sprintf("198.51.100.%d", ip) }
	for range 3 {
		require.Empty(t, s.admit(get("Authorization", "Card AAAA"), next(), false))
	}
	require.Equal(t, refusedAnonymous, s.admit(get(), next(), false))
	require.Equal(t, refusedAnonymous, s.admit(get("Authorization", "Card AAAA"), next(), false), "a card token is anonymous")
	require.Equal(t, refusedAnonymous, s.admit(get("Authorization", "Bearer not-a-token"), next(), false), "a malformed token too")
	tok := tokenPrefix + "1_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	require.Empty(t, s.admit(get("Authorization", "Bearer "+tok), next(), false), "a staff token's shape passes; authenticate checks it")
	require.Empty(t, s.admit(get("Signature-Input", `sig=("@method");keyid="1:t"`), next(), false), "a terminal's signature passes")
	require.Empty(t, s.admit(get(), next(), true), "/healthz passes")
	admitted := get().WithContext(context.WithValue(context.Background(), admittedKey{}, true))
	require.Empty(t, s.admit(admitted, next(), false), "a card page's own API calls are not charged twice")
	now = now.Add(time.Second)
	require.Empty(t, s.admit(get(), next(), false), "time refills the budget")
	require.Equal(t, refusedAnonymous, s.admit(get(), next(), false))
}

// BenchmarkAdmission is admission's cost per request, with the default
// limits: anonymous, and a terminal and a staff token that authenticated
// before (credGuard's lookups and the success recorded), the hot path of
// every signed upload and staff request.
func BenchmarkAdmission(b *testing.B) {
	clock := time.Now
	s := &Server{now: clock, limits: Limits{}}
	s.limits.defaults()
	s.ipLimit = newLimiter(-1, clock)
	s.anonymous = rate.NewLimiter(rate.Inf, 1)
	s.creds = newCredGuard(clock)
	s.creds.budget = rate.NewLimiter(rate.Limit(s.limits.FailedCredentials), s.limits.FailedCredentialsBurst)
	tok := tokenPrefix + "1_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, bc := range []struct{ name, header, value string }{
		{"anonymous", "Authorization", "Card AAAA"},
		{"terminal", "Signature-Input", `sig=("@method" "@target-uri");created=1800000000;nonce="abc";keyid="1:bar-1";alg="ed25519"`},
		{"staff", "Authorization", "Bearer " + tok},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("POST", "/v1/terminal/batches", nil)
			r.Header.Set(bc.header, bc.value)
			for b.Loop() {
				why, cred := s.admission(r, "192.0.2.1", false, true)
				if why != "" {
					b.Fatal(why)
				}
				if cred.ok() {
					s.creds.succeeded(cred)
				}
			}
		})
	}
}
