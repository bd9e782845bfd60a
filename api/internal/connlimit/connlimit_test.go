package connlimit

import (
	"io"
	"net"
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

	// Closing the server side of one connection gives its slot back.
	require.NoError(t, server[0].Close())
	_ = server[0].Close()
	require.Equal(t, 4, ln.Open(), "a second Close gives no second slot")
	accept("127.0.0.4", true)
	accept("127.0.0.4", false)
}
