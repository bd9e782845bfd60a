// Package pcsc is the reader.Reader for PC/SC readers, through pcscd and
// libpcsclite (github.com/ebfe/scard): list readers, select one by name or
// index, wait for a card with SCardGetStatusChange, exchange APDUs and notice
// when the card leaves.
//
// libpcsclite finds pcscd through the PCSCLITE_CSOCK_NAME environment
// variable, read once per process when the first context is established.
package pcsc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ebfe/scard"

	"github.com/loopcard/loopcard/personalize/reader"
)

// pollInterval bounds every blocking SCardGetStatusChange so that a
// cancellation that slips between two calls is still seen; SCardCancel makes
// the common case immediate.
const pollInterval = 500 * time.Millisecond

// ErrNoService means pcscd is not running (or not at PCSCLITE_CSOCK_NAME).
var ErrNoService = errors.New("pcsc: pcscd is not running")

// ListReaders returns the names of the readers pcscd knows, in its order;
// none is not an error.
func ListReaders() ([]string, error) {
	sctx, err := establish()
	if err != nil {
		return nil, err
	}
	defer sctx.Release()
	return listReaders(sctx)
}

func listReaders(sctx *scard.Context) ([]string, error) {
	names, err := sctx.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pcsc: list readers: %w", mapErr(err))
	}
	return names, nil
}

func establish() (*scard.Context, error) {
	sctx, err := scard.EstablishContext()
	if err != nil {
		return nil, fmt.Errorf("pcsc: establish context: %w", mapErr(err))
	}
	return sctx, nil
}

// Select picks a reader from names: the empty selector picks the only
// reader; a decimal number picks by index (0 is the first); anything else
// picks the reader of that exact name, or else the one reader whose name
// contains it (case-insensitive). It returns an error wrapping
// reader.ErrNotFound when none or several match.
func Select(names []string, selector string) (string, error) {
	if selector == "" {
		switch len(names) {
		case 0:
			return "", fmt.Errorf("pcsc: no reader connected: %w", reader.ErrNotFound)
		case 1:
			return names[0], nil
		default:
			return "", fmt.Errorf("pcsc: %d readers connected, choose one by name or index (%s): %w",
				len(names), strings.Join(names, ", "), reader.ErrNotFound)
		}
	}
	for _, n := range names {
		if n == selector {
			return n, nil
		}
	}
	if i, err := strconv.Atoi(selector); err == nil {
		if i < 0 || i >= len(names) {
			return "", fmt.Errorf("pcsc: reader index %d out of range (%d readers): %w", i, len(names), reader.ErrNotFound)
		}
		return names[i], nil
	}
	var found []string
	for _, n := range names {
		if strings.Contains(strings.ToLower(n), strings.ToLower(selector)) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("pcsc: no reader named %q: %w", selector, reader.ErrNotFound)
	default:
		return "", fmt.Errorf("pcsc: %q matches %d readers (%s): %w",
			selector, len(found), strings.Join(found, ", "), reader.ErrNotFound)
	}
}

// Reader is one PC/SC reader slot. Its methods may be called from several
// goroutines.
type Reader struct {
	name string

	mu     sync.Mutex // serialises Wait and Close
	sctx   *scard.Context
	closed bool

	closing    atomic.Bool
	cancelMu   sync.Mutex
	cancelWait context.CancelFunc // ends the Wait under way, if any
}

var _ reader.Reader = (*Reader)(nil)

// Open selects a reader as Select does among the readers pcscd knows and
// opens it.
func Open(selector string) (*Reader, error) {
	sctx, err := establish()
	if err != nil {
		return nil, err
	}
	names, err := listReaders(sctx)
	if err != nil {
		sctx.Release()
		return nil, err
	}
	name, err := Select(names, selector)
	if err != nil {
		sctx.Release()
		return nil, err
	}
	return &Reader{name: name, sctx: sctx}, nil
}

// Name returns the PC/SC reader name.
func (r *Reader) Name() string { return r.name }

// Close ends a Wait under way with reader.ErrClosed and releases the
// reader's PC/SC context. Cards keep working until they are closed.
func (r *Reader) Close() error {
	r.closing.Store(true)
	r.cancelMu.Lock()
	if r.cancelWait != nil {
		r.cancelWait()
	}
	r.cancelMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if err := r.sctx.Release(); err != nil {
		return fmt.Errorf("pcsc: release context: %w", mapErr(err))
	}
	return nil
}

// WaitForCard is Wait, for the reader.Reader interface.
func (r *Reader) WaitForCard(ctx context.Context) (reader.Card, error) {
	c, err := r.Wait(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Wait blocks until a card is in the field and connects to it exclusively,
// so that no other PC/SC application can interleave its APDUs with ours. A
// card already present is returned at once. A card that does not answer
// (mute) or that another application holds is waited out.
func (r *Reader) Wait(ctx context.Context) (*Card, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.closing.Load() {
		return nil, fmt.Errorf("pcsc: wait for a card: %w", reader.ErrClosed)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.cancelMu.Lock()
	r.cancelWait = cancel
	if r.closing.Load() { // Close ran before cancelWait was set
		cancel()
	}
	r.cancelMu.Unlock()
	defer func() {
		r.cancelMu.Lock()
		r.cancelWait = nil
		r.cancelMu.Unlock()
	}()
	states := []scard.ReaderState{{Reader: r.name, CurrentState: scard.StateUnaware}}
	for {
		if err := waitChange(ctx, r.sctx, states); err != nil {
			if r.closing.Load() {
				err = reader.ErrClosed
			}
			return nil, fmt.Errorf("pcsc: wait for a card in %q: %w", r.name, err)
		}
		ev := states[0].EventState
		states[0].CurrentState = ev &^ scard.StateChanged
		if ev&scard.StateUnknown != 0 || ev&scard.StateUnavailable != 0 {
			return nil, fmt.Errorf("pcsc: reader %q is gone: %w", r.name, reader.ErrNotFound)
		}
		if ev&scard.StatePresent == 0 || ev&scard.StateMute != 0 || ev&scard.StateExclusive != 0 {
			continue
		}
		c, err := connect(r.name, uint32(ev)>>16)
		if errors.Is(err, errTryAgain) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

var errTryAgain = errors.New("pcsc: card went away while connecting")

// connect gives the card its own PC/SC context: libpcsclite serialises the
// calls made on one context, so a blocked SCardGetStatusChange on the
// reader's context must not hold up the card's exchanges.
// events is the reader's card event count when the card was seen.
func connect(name string, events uint32) (*Card, error) {
	sctx, err := establish()
	if err != nil {
		return nil, err
	}
	sc, err := sctx.Connect(name, scard.ShareExclusive, scard.ProtocolAny)
	if err != nil {
		sctx.Release()
		switch {
		case errors.Is(err, scard.ErrNoSmartcard), errors.Is(err, scard.ErrRemovedCard),
			errors.Is(err, scard.ErrUnresponsiveCard), errors.Is(err, scard.ErrUnpoweredCard),
			errors.Is(err, scard.ErrSharingViolation), errors.Is(err, scard.ErrResetCard):
			return nil, errTryAgain
		}
		return nil, fmt.Errorf("pcsc: connect to the card in %q: %w", name, mapErr(err))
	}
	c := &Card{reader: name, sctx: sctx, sc: sc, events: events}
	st, err := sc.Status()
	if err != nil {
		c.Close()
		if errors.Is(mapErr(err), reader.ErrRemoved) {
			return nil, errTryAgain
		}
		return nil, fmt.Errorf("pcsc: card status in %q: %w", name, mapErr(err))
	}
	c.atr = st.Atr
	return c, nil
}

// waitChange blocks in SCardGetStatusChange until the state of the readers
// differs from their CurrentState, or ctx is done. On success states hold the
// new EventState.
func waitChange(ctx context.Context, sctx *scard.Context, states []scard.ReaderState) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			sctx.Cancel()
		case <-stop:
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := sctx.GetStatusChange(states, pollInterval)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, scard.ErrTimeout):
			continue
		case errors.Is(err, scard.ErrCancelled):
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		default:
			return fmt.Errorf("get status change: %w", mapErr(err))
		}
	}
}

// Card is a card connected through a PC/SC reader. Transmit, UID and
// PowerCycle may not be called concurrently with each other; WaitForRemoval
// may run beside them.
type Card struct {
	reader string
	sctx   *scard.Context
	sc     *scard.Card
	atr    []byte
	events uint32 // the reader's card event count when the card came

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ reader.Card = (*Card)(nil)

// ATR returns the answer to reset the card gave when it was connected.
func (c *Card) ATR() []byte { return append([]byte(nil), c.atr...) }

// Transmit sends one command APDU and returns the response with its status
// word. An error wraps reader.ErrRemoved when the card left the field.
func (c *Card) Transmit(apdu []byte) ([]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("pcsc: transmit: %w", reader.ErrClosed)
	}
	resp, err := c.sc.Transmit(apdu)
	if err != nil {
		return nil, fmt.Errorf("pcsc: transmit: %w", mapErr(err))
	}
	return resp, nil
}

// getUID is the PC/SC pseudo-APDU GET DATA for the UID (PC/SC part 3,
// 3.2.2.1.3); the reader answers it, not the card.
var getUID = []byte{0xFF, 0xCA, 0x00, 0x00, 0x00}

// ErrStatus is returned when the reader or card answers with a status word
// other than 90 00 where one was required.
type ErrStatus struct {
	SW uint16
}

func (e *ErrStatus) Error() string { return fmt.Sprintf("pcsc: status word %04X", e.SW) }

// UID reads the card's UID with GET DATA (FF CA 00 00 00). A reader that
// does not support it answers with an error status, returned as *ErrStatus.
func (c *Card) UID() ([]byte, error) {
	resp, err := c.Transmit(getUID)
	if err != nil {
		return nil, fmt.Errorf("pcsc: get UID: %w", err)
	}
	if len(resp) < 2 {
		return nil, fmt.Errorf("pcsc: get UID: short response of %d bytes", len(resp))
	}
	n := len(resp) - 2
	if sw := uint16(resp[n])<<8 | uint16(resp[n+1]); sw != 0x9000 {
		return nil, fmt.Errorf("pcsc: get UID: %w", &ErrStatus{SW: sw})
	}
	return resp[:n], nil
}

// PowerCycle switches the card off and on again through the reader
// (SCardReconnect with SCARD_UNPOWER_CARD). For the card that is a tear:
// whatever it had not committed is lost.
func (c *Card) PowerCycle() error {
	if c.closed.Load() {
		return fmt.Errorf("pcsc: power cycle: %w", reader.ErrClosed)
	}
	if err := c.sc.Reconnect(scard.ShareExclusive, scard.ProtocolAny, scard.UnpowerCard); err != nil {
		return fmt.Errorf("pcsc: power cycle: %w", mapErr(err))
	}
	return nil
}

// WaitForRemoval blocks until the card has left the field (a card swapped
// for another in between counts as removed), or until ctx is done.
func (c *Card) WaitForRemoval(ctx context.Context) error {
	sctx, err := establish()
	if err != nil {
		return err
	}
	defer sctx.Release()
	states := []scard.ReaderState{{Reader: c.reader, CurrentState: scard.StateUnaware}}
	for {
		if err := waitChange(ctx, sctx, states); err != nil {
			return fmt.Errorf("pcsc: wait for removal from %q: %w", c.reader, err)
		}
		ev := states[0].EventState
		if ev&scard.StatePresent == 0 || ev&(scard.StateUnknown|scard.StateUnavailable) != 0 {
			return nil
		}
		// The upper 16 bits count the card events of the reader: a
		// change means our card was taken out and another put in.
		if uint32(ev)>>16 != c.events {
			return nil
		}
		states[0].CurrentState = ev &^ scard.StateChanged
	}
}

// Close disconnects from the card, leaving it powered in the field, and
// releases the card's PC/SC context.
func (c *Card) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		err := c.sc.Disconnect(scard.LeaveCard)
		if err != nil && !errors.Is(mapErr(err), reader.ErrRemoved) {
			c.closeErr = fmt.Errorf("pcsc: disconnect: %w", mapErr(err))
		}
		if err := c.sctx.Release(); err != nil && c.closeErr == nil {
			c.closeErr = fmt.Errorf("pcsc: release context: %w", mapErr(err))
		}
	})
	return c.closeErr
}

// mapErr adds the reader package's sentinels to the PC/SC errors that
// callers branch on, keeping the PC/SC error and its message.
func mapErr(err error) error {
	var se scard.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se {
	case scard.ErrRemovedCard, scard.ErrNoSmartcard, scard.ErrResetCard, scard.ErrUnpoweredCard:
		return &pcscError{sentinel: reader.ErrRemoved, err: err}
	case scard.ErrNoService, scard.ErrServiceStopped:
		return &pcscError{sentinel: ErrNoService, err: err}
	case scard.ErrUnknownReader, scard.ErrReaderUnavailable:
		return &pcscError{sentinel: reader.ErrNotFound, err: err}
	}
	return err
}

// pcscError is a PC/SC error that also matches a sentinel with errors.Is.
type pcscError struct {
	sentinel error
	err      error
}

func (e *pcscError) Error() string   { return e.err.Error() }
func (e *pcscError) Unwrap() []error { return []error{e.sentinel, e.err} }
