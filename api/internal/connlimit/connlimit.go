// Package connlimit caps the connections a listener holds open, per remote
// address and in total: a connection over either cap is closed as soon as
// it is accepted, before any TLS or HTTP work, and the listener goes on
// accepting. An address is counted as AddrKey says: IPv4 by address, IPv6
// by /64 network.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Reason is why a connection was refused.
type Reason string

// The reasons a connection is refused.
const (
	PerAddr Reason = "per_address" // the cap per address (AddrKey) was reached
	Total   Reason = "total"       // the cap in total was reached
)

// AddrKey is the key a remote address is counted under, by caps and rate
// limits alike: an IPv4 address (or an IPv4-mapped IPv6 one) as itself, an
// IPv6 address as its /64 network ("2001:db8:1:2::/64"), since one
// subscriber usually holds a whole /64. Anything else that is not an IP
// address is its own key.
func AddrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// Listener is a net.Listener that holds at most PerAddr connections from
// one remote address (AddrKey) and at most Total in all. Build it with New.
type Listener struct {
	net.Listener
	perAddr, total int
	// OnRefuse, when not nil, is called (from Accept) with the reason of
	// every refused connection. Set it before the first Accept.
	OnRefuse func(Reason)

	mu    sync.Mutex
	open  int
	byIP  map[string]int
	refus atomic.Uint64
}

// New wraps ln. A cap of 0 or less means no cap.
func New(ln net.Listener, perAddr, total int) *Listener {
	return &Listener{Listener: ln, perAddr: perAddr, total: total, byIP: map[string]int{}}
}

// Accept returns the next connection within the caps; connections over a
// cap are closed and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := AddrKey(hostOf(c.RemoteAddr()))
		why := l.take(ip)
		if why == "" {
			return &conn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		// Counted before the close, so whoever sees the connection closed
		// also sees it counted.
		l.refus.Add(1)
		if l.OnRefuse != nil {
			l.OnRefuse(why)
		}
		_ = c.Close()
	}
}

// Open is how many accepted connections are open.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused is how many connections were closed for a cap.
func (l *Listener) Refused() uint64 { return l.refus.Load() }

// take takes a slot for ip, or says which cap is reached.
func (l *Listener) take(ip string) Reason {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.open >= l.total {
		return Total
	}
	if l.perAddr > 0 && l.byIP[ip] >= l.perAddr {
		return PerAddr
	}
	l.open++
	l.byIP[ip]++
	return ""
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
}

func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its slot back once, on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
