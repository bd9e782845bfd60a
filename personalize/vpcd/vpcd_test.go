package vpcd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/reader/pcsctest"
	"github.com/loopcard/loopcard/personalize/vpcd"
)

// fakeVPCD plays the vpcd driver's side of the protocol: it listens and
// exchanges length-prefixed messages with the card that connects.
type fakeVPCD struct {
	ln    net.Listener
	conns chan net.Conn
}

func newFakeVPCD(t *testing.T) *fakeVPCD {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeVPCD{ln: ln, conns: make(chan net.Conn, 4)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(f.conns)
				return
			}
			f.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeVPCD) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no card connected")
		return nil
	}
}

func send(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	_, err := c.Write(append(b, msg...))
	require.NoError(t, err)
}

func recv(t *testing.T, c net.Conn) []byte {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	var hdr [2]byte
	_, err := io.ReadFull(c, hdr[:])
	require.NoError(t, err)
	msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	_, err = io.ReadFull(c, msg)
	require.NoError(t, err)
	return msg
}

// plainCard is a card without a UID: the bridge passes FF CA to it.
type plainCard struct {
	mu  sync.Mutex
	log []string
}

func (c *plainCard) ATR() []byte { return []byte{0x3B, 0x00} }
func (c *plainCard) PowerOn()    { c.record("on") }
func (c *plainCard) PowerOff()   { c.record("off") }
func (c *plainCard) Transmit(apdu []byte) []byte {
	c.record("apdu")
	return []byte{0x6A, 0x81}
}

func (c *plainCard) record(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, s)
}

func (c *plainCard) events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.log...)
}

var uid = []byte{0x04, 0x78, 0x2E, 0x21, 0x80, 0x1D, 0x80}

func TestProtocol(t *testing.T) {
	f := newFakeVPCD(t)
	card := pcsctest.NewEchoCard(uid)
	conn, err := vpcd.Connect(context.Background(), f.ln.Addr().String(), card, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	srv := f.accept(t)

	long := bytes.Repeat([]byte{0xA5}, 250)
	tests := []struct {
		name string
		msg  []byte
		want []byte // nil: no answer expected
	}{
		{"get ATR", []byte{4}, pcsctest.EchoATR},
		{"power on", []byte{1}, nil},
		{"GetVersion", []byte{0x90, 0x60, 0x00, 0x00, 0x00}, pcsctest.VersionFrames(uid)[0]},
		{"GetVersion more", []byte{0x90, 0xAF, 0x00, 0x00, 0x00}, pcsctest.VersionFrames(uid)[1]},
		{"reset abandons the chain", []byte{2}, nil},
		{"no chain after reset", []byte{0x90, 0xAF, 0x00, 0x00, 0x00}, []byte{0x91, 0x1C}},
		{"UID from the bridge", []byte{0xFF, 0xCA, 0x00, 0x00, 0x00}, append(bytes.Clone(uid), 0x90, 0x00)},
		{"UID with exact Le", []byte{0xFF, 0xCA, 0x00, 0x00, 0x07}, append(bytes.Clone(uid), 0x90, 0x00)},
		{"UID with short Le", []byte{0xFF, 0xCA, 0x00, 0x00, 0x04}, []byte{0x6C, 0x07}},
		{"long APDU", append([]byte{0x00, 0xD6, 0x00, 0x00, 250}, long...), append(bytes.Clone(long), 0x90, 0x00)},
		{"unknown control is ignored", []byte{9}, nil},
		{"power off", []byte{0}, nil},
		{"ATR while off", []byte{4}, pcsctest.EchoATR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, srv, tt.msg)
			if tt.want != nil {
				require.Equal(t, tt.want, recv(t, srv))
			}
		})
	}
	// Controls have no answer: the next message's answer is the next thing
	// on the wire, and the power events reached the card.
	send(t, srv, []byte{4})
	require.Equal(t, pcsctest.EchoATR, recv(t, srv))
	on, off := card.PowerCounts()
	require.Equal(t, 2, on, "power on + reset")
	require.Equal(t, 2, off, "reset + power off")
}

func TestUIDGoesToCardsWithoutOne(t *testing.T) {
	f := newFakeVPCD(t)
	card := &plainCard{}
	conn, err := vpcd.Connect(context.Background(), f.ln.Addr().String(), card, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	srv := f.accept(t)

	// An APDU without a prior power on powers the card first.
	send(t, srv, []byte{0xFF, 0xCA, 0x00, 0x00, 0x00})
	require.Equal(t, []byte{0x6A, 0x81}, recv(t, srv))
	require.Equal(t, []string{"on", "apdu"}, card.events())
}

func TestEndOfConnection(t *testing.T) {
	tests := []struct {
		name string
		end  func(conn *vpcd.Conn, srv net.Conn)
		want error
	}{
		{"card removed", func(conn *vpcd.Conn, _ net.Conn) { require.NoError(t, conn.Close()) }, vpcd.ErrClosed},
		{"vpcd gone", func(_ *vpcd.Conn, srv net.Conn) { srv.Close() }, io.EOF},
		{"vpcd gone mid-message", func(_ *vpcd.Conn, srv net.Conn) {
			srv.Write([]byte{0x00, 0x05, 0x90})
			srv.Close()
		}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeVPCD(t)
			card := &plainCard{}
			conn, err := vpcd.Connect(context.Background(), f.ln.Addr().String(), card, nil)
			require.NoError(t, err)
			srv := f.accept(t)
			send(t, srv, []byte{1})
			send(t, srv, []byte{4})
			recv(t, srv)
			tt.end(conn, srv)
			select {
			case <-conn.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("connection did not end")
			}
			require.ErrorIs(t, conn.Err(), tt.want)
			require.Equal(t, []string{"on", "off"}, card.events(), "the card left the field unpowered")
			require.NoError(t, conn.Close(), "Close after the end")
		})
	}
}

func TestConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, err = vpcd.Connect(context.Background(), addr, &plainCard{}, nil)
	require.ErrorContains(t, err, addr)
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve runs vpcd.Serve with an EchoCard until the test ends; its result
// arrives on the returned channel.
func serve(t *testing.T, ctx context.Context, cancel context.CancelFunc, addr string, logs *logBuffer) <-chan error {
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		done <- vpcd.Serve(ctx, addr, pcsctest.NewEchoCard(uid), 20*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	return done
}

func TestServeReconnects(t *testing.T) {
	f := newFakeVPCD(t)
	var logs logBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := serve(t, ctx, cancel, f.ln.Addr().String(), &logs)

	for i := range 3 {
		srv := f.accept(t)
		send(t, srv, []byte{4})
		require.Equal(t, pcsctest.EchoATR, recv(t, srv), "connection %d", i)
		srv.Close() // vpcd restarts
	}
	srv := f.accept(t)
	send(t, srv, []byte{4})
	require.Equal(t, pcsctest.EchoATR, recv(t, srv))
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// The card was taken out of the slot when Serve returned.
	require.NoError(t, srv.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := srv.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF)
	require.Contains(t, logs.String(), "card inserted")
	require.Contains(t, logs.String(), "vpcd disconnected")
	require.Contains(t, logs.String(), "card removed")
}

func TestServeWaitsForVPCD(t *testing.T) {
	// Reserve a port, then free it: nothing listens there until the fake
	// vpcd starts on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()

	var logs logBuffer
	ctx, cancel := context.WithCancel(context.Background())
	serve(t, ctx, cancel, addr, &logs)
	time.Sleep(100 * time.Millisecond)
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	defer ln.Close()
	require.NoError(t, ln.(*net.TCPListener).SetDeadline(time.Now().Add(5*time.Second)))
	srv, err := ln.Accept()
	require.NoError(t, err)
	defer srv.Close()
	send(t, srv, []byte{4})
	require.Equal(t, pcsctest.EchoATR, recv(t, srv))
	require.Equal(t, 1, bytes.Count([]byte(logs.String()), []byte("waiting for vpcd")), "logged once while waiting")
}
