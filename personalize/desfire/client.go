package desfire

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
)

// Transmitter sends one command APDU to a card and returns the whole
// response APDU, SW1 SW2 included. PC/SC and in-process readers satisfy it.
type Transmitter interface {
	Transmit(apdu []byte) ([]byte, error)
}

// AuthScheme is the kind of authentication a session was opened with; it
// selects the secure messaging.
type AuthScheme int

// Authentication schemes.
const (
	AuthNone   AuthScheme = iota
	AuthLegacy            // AuthenticateLegacy 0x0A: DES send mode, CRC16, no CMAC
	AuthEV1               // AuthenticateAES 0xAA or AuthenticateISO 0x1A: EV1 secure messaging
	AuthEV2               // AuthenticateEV2First/NonFirst: EV2 secure messaging
)

func (a AuthScheme) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthLegacy:
		return "legacy"
	case AuthEV1:
		return "ev1"
	case AuthEV2:
		return "ev2"
	}
	return "invalid"
}

// Option configures a Card.
type Option func(*Card)

// WithRand sets the source of the authentication randoms (crypto/rand by default).
func WithRand(r io.Reader) Option { return func(c *Card) { c.rand = r } }

// WithLogger sets the logger; commands are logged at debug level with their
// code, lengths and status, never their data.
func WithLogger(l *slog.Logger) Option { return func(c *Card) { c.log = l } }

// Card is a client of one DESFire card through a Transmitter. It keeps the
// authentication state and picks the secure messaging by it. It is not safe
// for concurrent use.
type Card struct {
	t    Transmitter
	rand io.Reader
	log  *slog.Logger
	aid  AID

	scheme AuthScheme
	keyNo  byte
	ev2    *EV2Session
	ev1    *EV1Session
	legacy *legacySession
}

// legacySession holds the session key of AuthenticateLegacy behind a
// pointer, so that printing a Card never shows it.
type legacySession struct{ key []byte }

// New returns a client for the card behind t. The PICC level (AID 000000)
// is assumed selected, as after activation.
func New(t Transmitter, opts ...Option) *Card {
	c := &Card{t: t, rand: rand.Reader, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Scheme is the current authentication scheme (AuthNone when not authenticated).
func (c *Card) Scheme() AuthScheme { return c.scheme }

// AuthenticatedKey is the number of the key of the current session.
func (c *Card) AuthenticatedKey() (keyNo byte, ok bool) { return c.keyNo, c.scheme != AuthNone }

// EV2 returns the EV2 session, or nil.
func (c *Card) EV2() *EV2Session { return c.ev2 }

// dropSession forgets the authentication, as the card does on any error.
func (c *Card) dropSession() {
	c.scheme, c.ev2, c.ev1 = AuthNone, nil, nil
	if c.legacy != nil {
		clear(c.legacy.key)
		c.legacy = nil
	}
}

// transmitFrame sends one frame and splits the answer.
func (c *Card) transmitFrame(cmd byte, data []byte) (body []byte, status byte, err error) {
	apdu, err := buildAPDU(cmd, data)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.t.Transmit(apdu)
	if err != nil {
		return nil, 0, fmt.Errorf("desfire: transmit command 0x%02X: %w", cmd, err)
	}
	body, status, err = splitResponse(resp)
	if err != nil {
		return nil, 0, fmt.Errorf("command 0x%02X: %w", cmd, err)
	}
	c.log.Debug("desfire frame", "cmd", cmd, "lc", len(data), "resp_len", len(body), "status", status)
	return body, status, nil
}

// maxResponse bounds the data of one chained response (a DESFire EV2 file
// is at most 8 KiB; records and lists are smaller).
const maxResponse = 64 << 10

// exchange sends a whole command, chained in frames of MaxFrameData bytes,
// and gathers a chained response. It returns the response data and the final
// status.
func (c *Card) exchange(cmd byte, data []byte) ([]byte, byte, error) {
	first := data
	if len(first) > MaxFrameData {
		first = data[:MaxFrameData]
	}
	body, status, err := c.transmitFrame(cmd, first)
	if err != nil {
		return nil, 0, err
	}
	for rest := data[len(first):]; len(rest) > 0; {
		if status != StatusMoreFrames || len(body) != 0 {
			return body, status, nil // the card refused before all frames were sent
		}
		n := min(len(rest), MaxFrameData)
		body, status, err = c.transmitFrame(CmdAdditionalFrame, rest[:n])
		if err != nil {
			return nil, 0, err
		}
		rest = rest[n:]
	}
	out := append([]byte(nil), body...)
	for status == StatusMoreFrames {
		body, status, err = c.transmitFrame(CmdAdditionalFrame, nil)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, body...)
		if len(out) > maxResponse {
			return nil, 0, fmt.Errorf("%w: command 0x%02X: response longer than %d bytes", ErrMalformed, cmd, maxResponse)
		}
	}
	return out, status, nil
}

// run sends one command through the secure messaging of the current
// session. header travels in clear; data is protected by mode. respLen is
// the expected plaintext length of a full-mode response, or -1. Any error
// status or integrity failure ends the session.
func (c *Card) run(cmd byte, header, data []byte, mode CommMode, respLen int) ([]byte, error) {
	var payload []byte
	var err error
	switch c.scheme {
	case AuthEV2:
		payload, err = c.ev2.wrapPayload(cmd, header, data, mode)
	case AuthEV1:
		payload, err = c.ev1.wrapPayload(cmd, header, data, mode)
	case AuthLegacy:
		payload, err = c.legacy.wrapPayload(cmd, header, data, mode)
	default:
		payload = append(append([]byte(nil), header...), data...)
	}
	if err != nil {
		return nil, fmt.Errorf("command 0x%02X: %w", cmd, err)
	}
	body, status, err := c.exchange(cmd, payload)
	if err != nil {
		c.dropSession()
		return nil, err
	}
	if !IsSuccess(status) {
		c.dropSession()
		return nil, &StatusError{Cmd: cmd, Status: status}
	}
	var out []byte
	switch c.scheme {
	case AuthEV2:
		out, err = c.ev2.unwrapResponseBody(status, body, mode)
	case AuthEV1:
		out, err = c.ev1.unwrapResponseBody(status, body, mode, respLen)
	case AuthLegacy:
		out, err = c.legacy.unwrapResponseBody(body, mode, respLen)
	default:
		out = body
	}
	if err != nil {
		c.dropSession()
		return nil, fmt.Errorf("command 0x%02X: %w", cmd, err)
	}
	return out, nil
}

// runAuto runs cmd in the mode CommModeFor gives for it.
func (c *Card) runAuto(cmd byte, header, data []byte, respLen int) ([]byte, error) {
	return c.run(cmd, header, data, CommModeIn(c.scheme, cmd, CommPlain), respLen)
}

// needAuth fails unless a session with secure messaging is open.
func (c *Card) needAuth(cmd byte) error {
	if c.scheme == AuthNone {
		return fmt.Errorf("command 0x%02X: %w", cmd, ErrNotAuthenticated)
	}
	return nil
}

// wantLen checks a response length.
func wantLen(cmd byte, b []byte, n int) error {
	if len(b) != n {
		return fmt.Errorf("%w: command 0x%02X: response of %d bytes, want %d", ErrMalformed, cmd, len(b), n)
	}
	return nil
}
