package api

import (
	"container/list"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/loopcard/loopcard/api/internal/connlimit"
)

// Reasons of a refusal by admit (the metrics' reason labels).
const (
	refusedPerAddr   = "per_address"
	refusedPerClient = "per_client"
	refusedAnonymous = "anonymous_budget"
	// refusedFailedBudget is a credential that had to take a token of the
	// failed-credentials budget before its lookup and found none;
	// refusedFailedCred one that failed in the last minutes, refused with
	// 401 (credGuard).
	refusedFailedBudget = "failed_credentials_budget"
	refusedFailedCred   = "failed_credential"
)

// admittedKey marks, in a request's context, a card page request that
// admit let through: the API requests the page makes in process are not
// charged to the anonymous budget a second time.
type admittedKey struct{}

// admit is the first thing done with a request, before any database work
// or body read: it takes a token of the limit of the sender's address
// (connlimit.AddrKey: an IPv6 address counts by its /64) and, for an
// anonymous request, one of the budget all anonymous requests share. It
// returns "" to let the request on, else the reason to refuse it. exempt
// requests (/healthz, a monitor's) take no token of the anonymous budget.
func (s *Server) admit(r *http.Request, ip string, exempt bool) string {
	why, _ := s.admission(r, ip, exempt, true)
	return why
}

// admission is admit that also returns the request's credential (a
// staff token or terminal signature) when withCredentials; without it (a
// card page, which no credential opens) every request is anonymous. A
// credential takes no token of the anonymous budget; one that failed
// recently, or must pay the failed-credentials budget, is refused here
// (credGuard.admit).
func (s *Server) admission(r *http.Request, ip string, exempt, withCredentials bool) (string, credential) {
	addr := connlimit.AddrKey(ip)
	if !s.ipLimit.allow("ip:" + addr) {
		return refusedPerAddr, credential{}
	}
	var cred credential
	if withCredentials {
		cred = credentialOf(r, addr)
	}
	if cred.ok() {
		return s.creds.admit(&cred, addr), cred
	}
	if exempt || s.anonymous == nil || r.Context().Value(admittedKey{}) != nil {
		return "", cred
	}
	if !s.anonymous.AllowN(s.now(), 1) {
		return refusedAnonymous, cred
	}
	return "", cred
}

// failedCredential records that c's credential failed to authenticate.
func (s *Server) failedCredential(c *call) {
	s.creds.fail(connlimit.AddrKey(c.ip), c.cred)
}

// refuse answers 429 with Retry-After (401 for a credential that failed
// recently), and nothing else: no audit record (that would be the
// database work the refusal spares) and no body read; an HTTP/1
// connection with a body on the way is closed rather than drained. The
// refusal is counted in the metrics by its reason.
func (s *Server) refuse(w http.ResponseWriter, c *call, why string) {
	s.metrics.RequestRefused(why)
	if c.r.ContentLength != 0 && c.r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	if why == refusedFailedCred {
		s.writeError(w, c, errFailedCredential)
		return
	}
	s.writeError(w, c, errRateLimited)
}

// limiterKeys is how many keys a limiter remembers at most; past it, the
// key seen least recently is forgotten (and starts again with a full
// bucket if it comes back).
const limiterKeys = 65536

// limiter is a token bucket (golang.org/x/time/rate) per key (an IP
// address or a client), refilled at rate per second up to twice the rate.
// It remembers at most max keys, and forgets, once a minute, the keys
// whose bucket is full again: they hold no state.
type limiter struct {
	rate  rate.Limit
	burst int
	max   int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket, in lru
	lru     list.List                // front: seen most recently
	swept   time.Time
}

type bucket struct {
	key string
	lim *rate.Limiter
}

func newLimiter(r float64, now func() time.Time) *limiter {
	l := &limiter{max: limiterKeys, now: now, buckets: map[string]*list.Element{}}
	if r < 0 {
		l.rate = rate.Inf
	} else {
		l.rate = rate.Limit(r)
		l.burst = max(1, int(math.Ceil(2*r)))
	}
	return l
}

// allow takes a token of key's bucket, reporting whether there was one.
func (l *limiter) allow(key string) bool {
	if l.rate == rate.Inf {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, e := range l.buckets {
			if e.Value.(*bucket).lim.TokensAt(now) >= float64(l.burst) {
				l.lru.Remove(e)
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	e := l.buckets[key]
	if e != nil {
		l.lru.MoveToFront(e)
	} else {
		if len(l.buckets) >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.buckets, old.Value.(*bucket).key)
		}
		e = l.lru.PushFront(&bucket{key: key, lim: rate.NewLimiter(l.rate, l.burst)})
		l.buckets[key] = e
	}
	return e.Value.(*bucket).lim.AllowN(now, 1)
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
