package connlimit

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The caps hold by count: connection N+1 from one address is closed, a
// connection from another address is not, until the total is reached; a
// closed connection gives its slot back.
func TestCaps(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := New(inner, 3, 5)
	var refusedBy sync.Map // Reason → *atomic.Int64
	ln.OnRefuse = func(r Reason) {
		n, _ := refusedBy.LoadOrStore(r, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	refusals := func(r Reason) int64 {
		n, ok := refusedBy.Load(r)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		require.NoError(t, err)
		return c
	}
	// refused reports whether the server closed c: a read gets EOF (or a
	// reset) instead of the byte an accepted connection echoes back.
	refused := func(c net.Conn) bool {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Write([]byte{1})
		if err != nil {
			return true
		}
		_, err = c.Read(make([]byte, 1))
		return err != nil
	}
	// accept dials from and reports whether the server accepted: the
	// server side echoes one byte on every connection it accepts.
	var server []net.Conn
	accept := func(from string, want bool) net.Conn {
		t.Helper()
		c := dial(from)
		t.Cleanup(func() { _ = c.Close() })
		done := make(chan bool, 1)
		go func() { done <- refused(c) }()
		for {
			select {
			case r := <-done:
				require.Equal(t, !want, r, "from %s", from)
				return c
			case s, ok := <-accepted:
				require.True(t, ok)
				server = append(server, s)
				go func() { _, _ = io.CopyN(s, s, 1) }()
			}
		}
	}
	for range 3 {
		accept("127.0.0.1", true)
	}
	accept("127.0.0.1", false)
	require.EqualValues(t, 1, ln.Refused())
	accept("127.0.0.2", true)
	accept("127.0.0.3", true)
	require.Equal(t, 5, ln.Open())
	accept("127.0.0.4", false)
	require.EqualValues(t, 2, ln.Refused())
	require.EqualValues(t, 1, refusals(PerAddr))
	require.EqualValues(t, 1, refusals(Total))

	// Closing the server side of one connection gives its slot back.
	require.NoError(t, server[0].Close())
	_ = server[0].Close()
	require.Equal(t, 4, ln.Open(), "a second Close gives no second slot")
	accept("127.0.0.4", true)
	accept("127.0.0.4", false)
}

// Issue 17: an IPv6 subscriber holds a /64 and may use any address of it;
// caps and limits count the /64 as one address, and IPv4 by address.
func TestAddrKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"127.0.0.1", "127.0.0.1"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"not an address", "not an address"},
	} {
		require.Equal(t, tc.want, AddrKey(tc.in), tc.in)
	}
	require.Equal(t, AddrKey("2001:db8::a:b:c:d"), AddrKey("2001:db8::1"), "one /64")
	require.NotEqual(t, AddrKey("192.0.2.7"), AddrKey("192.0.2.8"))
}
