// Package connlimit caps the connections a listener holds open, per remote
// address and in total: a connection over either cap is closed as soon as
// it is accepted, before any TLS or HTTP work, and the listener goes on
// accepting.
package connlimit

import (
	"net"
	"sync"
	"sync/atomic"
)

// Listener is a net.Listener that holds at most PerAddr connections from
// one remote IP address and at most Total in all. Build it with New.
type Listener struct {
	net.Listener
	perAddr, total int

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
		ip := hostOf(c.RemoteAddr())
		if l.take(ip) {
			return &conn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		l.refus.Add(1)
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

func (l *Listener) take(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.open >= l.total {
		return false
	}
	if l.perAddr > 0 && l.byIP[ip] >= l.perAddr {
		return false
	}
	l.open++
	l.byIP[ip]++
	return true
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
