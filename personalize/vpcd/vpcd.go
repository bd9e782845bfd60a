// Package vpcd puts a card into a vsmartcard vpcd reader slot: it connects to
// the TCP port on which the vpcd PC/SC driver listens and answers the driver's
// power, reset, ATR and APDU messages from a Card, so that pcscd and every
// PC/SC application see the card in a real reader slot.
//
// The wire format is vpcd's: each message is a 2-byte big-endian length and
// then that many bytes. A 1-byte message is a control (0 power off, 1 power
// on, 2 reset, 4 get ATR, answered with the ATR); anything longer is a command
// APDU, answered with the response APDU.
//
// vpcd sends the length and the payload in two writes without TCP_NODELAY, so
// with Nagle's algorithm on its side and delayed acknowledgements on ours every
// exchange would wait 40 ms or more. A Conn therefore sets TCP_NODELAY and
// re-arms TCP_QUICKACK before every read.
package vpcd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Card is the card in the slot. The bridge calls it from one goroutine at a
// time.
type Card interface {
	// ATR returns the answer to reset.
	ATR() []byte
	// Transmit answers one command APDU with a whole response APDU, status
	// word included.
	Transmit(apdu []byte) []byte
	// PowerOn and PowerOff switch the field; a power off in the middle of
	// a transaction is a tear.
	PowerOn()
	PowerOff()
}

// UIDer is implemented by cards that have a contactless UID. For such cards
// the bridge answers the PC/SC pseudo-APDU GET DATA (FF CA 00 00 Le) itself,
// as a contactless reader does, instead of passing it to the card.
type UIDer interface {
	UID() []byte
}

// Message types of the vpcd protocol.
const (
	ctrlPowerOff = 0
	ctrlPowerOn  = 1
	ctrlReset    = 2
	ctrlGetATR   = 4
)

// maxMessage is the largest payload the 2-byte length can carry.
const maxMessage = 0xFFFF

// ErrClosed is returned by Conn.Wait after Close removed the card.
var ErrClosed = errors.New("vpcd: card removed")

// Conn is one card sitting in a vpcd slot: from Connect until Close (the
// card is taken out) or until vpcd drops the connection.
type Conn struct {
	conn   *net.TCPConn
	card   Card
	log    *slog.Logger
	done   chan struct{}
	once   sync.Once
	closed chan struct{}
	err    error // set before done is closed
}

// Connect inserts card into the vpcd slot listening at addr (host:port) and
// serves vpcd's requests in a goroutine until Close or until the connection
// ends; then the card is powered off, as a card taken out of the field. A nil
// logger discards logs.
func Connect(ctx context.Context, addr string, card Card, logger *slog.Logger) (*Conn, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("vpcd: connect to %s: %w", addr, err)
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("vpcd: connect to %s: not a TCP connection", addr)
	}
	if err := tc.SetNoDelay(true); err != nil {
		tc.Close()
		return nil, fmt.Errorf("vpcd: set TCP_NODELAY: %w", err)
	}
	c := &Conn{
		conn:   tc,
		card:   card,
		log:    logger,
		done:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	go c.serve()
	return c, nil
}

// Close takes the card out of the slot: it closes the connection, which vpcd
// reports to pcscd as a card removal, powers the card off (a tear, if an
// exchange was under way) and waits until the serving goroutine has stopped
// calling the card. Close is idempotent.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		c.conn.Close()
	})
	<-c.done
	return nil
}

// Done is closed when the card has left the slot, by Close or because vpcd
// went away.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err reports why the card left the slot, once Done is closed: ErrClosed after
// Close, io.EOF when vpcd closed the connection, or the I/O error.
func (c *Conn) Err() error {
	<-c.done
	return c.err
}

func (c *Conn) serve() {
	s := &session{rw: c.conn, card: c.card, log: c.log, beforeRead: c.quickAck}
	err := s.loop()
	// Out of the slot, out of the field: the card loses power.
	c.card.PowerOff()
	select {
	case <-c.closed:
		err = ErrClosed
	default:
		c.conn.Close()
	}
	c.err = err
	close(c.done)
}

// session answers vpcd's messages on rw. beforeRead runs before every read.
type session struct {
	rw         io.ReadWriter
	card       Card
	log        *slog.Logger
	beforeRead func() error
}

func (s *session) loop() error {
	var hdr [2]byte
	buf := make([]byte, maxMessage)
	out := make([]byte, 0, 2+maxMessage)
	powered := false
	for {
		if err := s.readFull(hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		msg := buf[:n]
		if err := s.readFull(msg); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		var resp []byte
		reply := true
		switch {
		case n == 1 && msg[0] == ctrlPowerOff:
			s.card.PowerOff()
			powered = false
			reply = false
		case n == 1 && msg[0] == ctrlPowerOn:
			s.card.PowerOn()
			powered = true
			reply = false
		case n == 1 && msg[0] == ctrlReset:
			s.card.PowerOff()
			s.card.PowerOn()
			powered = true
			reply = false
		case n == 1 && msg[0] == ctrlGetATR:
			resp = s.card.ATR()
		case n == 1:
			s.log.Warn("vpcd: unknown control message", "control", msg[0])
			reply = false
		case n == 0:
			reply = false
		default:
			if !powered {
				// vpcd powers the card before the first APDU; a
				// driver that does not is answered as if it had.
				s.card.PowerOn()
				powered = true
			}
			resp = s.transmit(msg)
		}
		if !reply {
			continue
		}
		if len(resp) > maxMessage {
			return fmt.Errorf("vpcd: response of %d bytes does not fit a message", len(resp))
		}
		out = binary.BigEndian.AppendUint16(out[:0], uint16(len(resp)))
		out = append(out, resp...)
		if _, err := s.rw.Write(out); err != nil {
			return fmt.Errorf("vpcd: write: %w", err)
		}
	}
}

// getUID is the PC/SC pseudo-APDU GET DATA for the UID (PC/SC part 3,
// 3.2.2.1.3): FF CA 00 00 Le.
var getUID = []byte{0xFF, 0xCA, 0x00, 0x00}

func (s *session) transmit(apdu []byte) []byte {
	if u, ok := s.card.(UIDer); ok && len(apdu) == 5 && bytes.Equal(apdu[:4], getUID) {
		uid := u.UID()
		le := int(apdu[4])
		if le != 0 && le < len(uid) {
			return []byte{0x6C, byte(len(uid))}
		}
		return append(bytes.Clone(uid), 0x90, 0x00)
	}
	return s.card.Transmit(apdu)
}

// readFull re-arms TCP_QUICKACK and reads exactly len(p) bytes.
func (s *session) readFull(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if err := s.beforeRead(); err != nil {
		return err
	}
	_, err := io.ReadFull(s.rw, p)
	if err != nil {
		return fmt.Errorf("vpcd: read: %w", err)
	}
	return nil
}

// Serve keeps card in the vpcd slot at addr until ctx is done: it connects,
// serves, and when vpcd goes away (pcscd restarted) connects again, retrying
// every retry interval (a zero retry means one second). It logs connection
// events and returns nil when ctx is done.
func Serve(ctx context.Context, addr string, card Card, retry time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if retry <= 0 {
		retry = time.Second
	}
	logger = logger.With("vpcd", addr)
	waiting := false
	for {
		c, err := Connect(ctx, addr, card, logger)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !waiting {
				logger.Info("waiting for vpcd", "err", err)
				waiting = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retry):
			}
			continue
		}
		waiting = false
		logger.Info("card inserted")
		select {
		case <-ctx.Done():
			c.Close()
			logger.Info("card removed")
			return nil
		case <-c.Done():
			logger.Info("vpcd disconnected", "err", c.Err())
		}
	}
}
