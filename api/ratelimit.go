package api

import (
	"sync"
	"time"
)

// limiter is a token bucket per key (an IP address or a client), refilled
// at rate per second up to twice the rate.
type limiter struct {
	rate float64
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, now: now, buckets: map[string]*bucket{}}
}

// allow takes a token of key's bucket, reporting whether there was one.
func (l *limiter) allow(key string) bool {
	if l.rate < 0 {
		return true
	}
	burst := 2 * l.rate
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		// Forget buckets that are full again: they hold no state.
		for k, b := range l.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*l.rate >= burst {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// pinWatch counts, per client, the distinct cards with a PIN failure in a
// sliding window, to raise an alert when one client tries many cards.
type pinWatch struct {
	threshold int
	window    time.Duration

	mu    sync.Mutex
	seen  map[string]map[string]time.Time // client → card → last failure
	fired map[string]time.Time
}

func newPINWatch(threshold int, window time.Duration) *pinWatch {
	return &pinWatch{threshold: threshold, window: window, seen: map[string]map[string]time.Time{}, fired: map[string]time.Time{}}
}

// failure records a failure of card from client and reports whether the
// client has now reached the threshold (once per window).
func (p *pinWatch) failure(client, card string, now time.Time) (count int, alert bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.seen[client]
	if m == nil {
		m = map[string]time.Time{}
		p.seen[client] = m
	}
	m[card] = now
	for c, t := range m {
		if now.Sub(t) > p.window {
			delete(m, c)
		}
	}
	// Forget clients whose failures are all old, so the map stays small.
	if len(p.seen) > 10000 {
		for cl, cards := range p.seen {
			for c, t := range cards {
				if now.Sub(t) > p.window {
					delete(cards, c)
				}
			}
			if len(cards) == 0 && cl != client {
				delete(p.seen, cl)
				delete(p.fired, cl)
			}
		}
	}
	if len(m) >= p.threshold && now.Sub(p.fired[client]) > p.window {
		p.fired[client] = now
		return len(m), true
	}
	return len(m), false
}
