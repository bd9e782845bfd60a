package api

import (
	"net/http"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Failed credentials (issue 17, build point 1). A forged but well-formed
// staff token or terminal signature skips the anonymous budget, and would
// otherwise cost a database lookup and an audit record each. Each failure
// takes a token of the failed-credentials budget (Limits.FailedCredentials),
// and for a while:
//   - the credential itself (a token's hash: unknown, revoked or expired
//     for good; a key id no active terminal has) is refused with 401
//     before any lookup, and without a record;
//   - a credential from the failure's address must take a token of the
//     budget before it is looked up, and is refused with 429 when none
//     is left;
//   - while the budget is spent, so must every credential: fresh
//     forgeries from fresh addresses cost nothing either.
//
// Staff tokens that authenticated in the window, and terminals that did
// from the same address (a key id is no secret), go on free: their
// requests pay two map lookups, no more. Each set is bounded (failedKeys);
// past it the least recently used entry is forgotten.
//
// A terminal's key id is refused for failedTerminalWindow only: a terminal
// registered again and enrolled through another server is not shut out
// for long (one that enrols through this server is forgotten at once).
const (
	failedWindow         = 10 * time.Minute
	failedTerminalWindow = time.Minute
	failedKeys           = 65536
)

// credential is what admission saw of a request's staff token or
// terminal signature, before anything was looked up. The zero credential
// is none.
type credential struct {
	key string // "b" + token hash, or "t" + key id ("t" alone: none given)
	// good is the key under which the credential counts as authenticated:
	// a token's key, a key id with the sender's address.
	good string
	// paid reports that admission took a token of the budget for it: its
	// failure does not take a second one.
	paid bool
	// failed is set by authentication to the key to refuse from now on
	// (credGuard.failed): a token that is unknown, revoked or expired, a
	// key id of no active terminal. It stays empty for a bad signature
	// under an active terminal's key id: refusing that id would let anyone
	// shut the terminal out.
	failed string
}

func (c credential) ok() bool { return c.key != "" }

// bearerCredential and terminalCredential are the credential of a
// token's hash and of a terminal's key id.
func bearerCredential(hash []byte) credential    { return credential{key: "b" + string(hash)} }
func terminalCredential(keyID string) credential { return credential{key: "t" + keyID} }

// credentialOf is r's staff (or profile) bearer token of the right shape
// or terminal's request signature, from address addr (connlimit.AddrKey).
// Nothing is looked up here; authenticate checks the credential afterwards
// as for every request. A card's token is no such credential: anyone
// scanning card pages has one to try.
func credentialOf(r *http.Request, addr string) credential {
	if in := r.Header.Get("Signature-Input"); in != "" || r.Header.Get("Signature") != "" {
		c := terminalCredential(signatureKeyID(in))
		c.good = c.key + "@" + addr
		return c
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return credential{}
	}
	_, hash, ok := parseBearer(strings.TrimSpace(tok))
	if !ok {
		return credential{}
	}
	c := bearerCredential(hash)
	c.good = c.key
	return c
}

// signatureKeyID is the keyid parameter of a Signature-Input header, ""
// when there is none. It is only a cache key: httpsig parses the header
// for the check, and a header read otherwise here only misses the cache.
func signatureKeyID(h string) string {
	_, rest, ok := strings.Cut(h, `keyid="`)
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, `"`)
	if !ok || len(id) > 200 {
		return ""
	}
	return id
}

// credGuard remembers failed and recently good credentials and budgets
// failures.
type credGuard struct {
	now func() time.Time
	// budget is the failed-credentials budget; nil: none.
	budget *rate.Limiter
	// Each maps a key to when it stops counting.
	failed *lru.Cache[string, time.Time] // credential.failed
	addrs  *lru.Cache[string, time.Time] // address (connlimit.AddrKey) of a failure
	good   *lru.Cache[string, time.Time] // credential.good
}

func newCredGuard(now func() time.Time) *credGuard {
	mk := func() *lru.Cache[string, time.Time] {
		c, err := lru.New[string, time.Time](failedKeys)
		if err != nil {
			panic(err) // only for a size <= 0
		}
		return c
	}
	return &credGuard{now: now, failed: mk(), addrs: mk(), good: mk()}
}

// admit decides on a credential from addr before it is looked up:
// refusedFailedCred for one that failed recently, refusedFailedBudget
// when it must take a token of the budget and none is left, else "" (and
// cred.paid set when it took one).
func (g *credGuard) admit(cred *credential, addr string) string {
	if g.recent(g.failed, cred.key) {
		return refusedFailedCred
	}
	if g.budget == nil {
		return ""
	}
	now := g.now()
	if g.budget.TokensAt(now) >= 1 && !g.recent(g.addrs, addr) {
		return ""
	}
	if g.recent(g.good, cred.good) {
		return ""
	}
	if !g.budget.AllowN(now, 1) {
		return refusedFailedBudget
	}
	cred.paid = true
	return ""
}

// recent reports whether key is in c and has not run out.
func (g *credGuard) recent(c *lru.Cache[string, time.Time], key string) bool {
	until, ok := c.Get(key)
	if !ok {
		return false
	}
	now := g.now()
	if !now.Before(until) || until.Sub(now) > failedWindow {
		c.Remove(key)
		return false
	}
	return true
}

// fail records a failed credential from addr and charges it to the
// budget unless admit did.
func (g *credGuard) fail(addr string, cred credential) {
	now := g.now()
	g.addrs.Add(addr, now.Add(failedWindow))
	if cred.failed != "" {
		window := failedWindow
		if cred.failed[0] == 't' {
			window = failedTerminalWindow
		}
		g.failed.Add(cred.failed, now.Add(window))
	}
	if g.budget != nil && !cred.paid {
		g.budget.AllowN(now, 1)
	}
}

// succeeded records a credential that authenticated. The time is
// renewed only every half window: steady requests read the set and
// seldom write it.
func (g *credGuard) succeeded(cred credential) {
	now := g.now()
	if until, ok := g.good.Get(cred.good); !ok || until.Sub(now) < failedWindow/2 || until.Sub(now) > failedWindow {
		g.good.Add(cred.good, now.Add(failedWindow))
	}
}

// forget removes a terminal's key id from the failed credentials: the
// terminal has just enrolled.
func (g *credGuard) forget(keyID string) { g.failed.Remove(terminalCredential(keyID).key) }
