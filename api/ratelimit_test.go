package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
