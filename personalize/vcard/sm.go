package vcard

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// session is the card side of the secure messaging of one authentication.
type session interface {
	// unwrap verifies and removes the protection of a command's data.
	unwrap(cmd byte, header, body []byte, mode commMode) ([]byte, error)
	// wrap protects a successful response's data.
	wrap(status byte, data []byte, mode commMode) ([]byte, error)
	// wireLen is the length on the wire of n bytes of command data.
	wireLen(n int, mode commMode) int
}

// ev2Adapter adapts desfire.EV2Session.
type ev2Adapter struct{ s *desfire.EV2Session }

func (e ev2Adapter) unwrap(cmd byte, header, body []byte, mode commMode) ([]byte, error) {
	return e.s.UnwrapCommand(cmd, header, body, mode)
}

func (e ev2Adapter) wrap(status byte, data []byte, mode commMode) ([]byte, error) {
	return e.s.WrapResponse(status, data, mode)
}

func (ev2Adapter) wireLen(n int, mode commMode) int {
	switch mode {
	case commMAC:
		return n + 8
	case commFull:
		return (n/16+1)*16 + 8
	}
	return n
}

// ev1Session adapts desfire.EV1Session (AuthenticateAES).
type ev1Session struct {
	s  *desfire.EV1Session
	bs int
}

func (e ev1Session) unwrap(cmd byte, header, body []byte, mode commMode) ([]byte, error) {
	return e.s.UnwrapCommand(cmd, header, body, mode)
}

func (e ev1Session) wrap(status byte, data []byte, mode commMode) ([]byte, error) {
	return e.s.WrapResponse(status, data, mode)
}

func (e ev1Session) wireLen(n int, mode commMode) int {
	switch mode {
	case commMAC:
		return n + 8
	case commFull:
		return roundUp(n+4, e.bs)
	}
	return n
}

// errIntegrity is a legacy MAC or CRC that does not verify.
var errIntegrity = errors.New("vcard: integrity check failed")

// legacySession is DESFire native (D40) secure messaging after
// AuthenticateLegacy, built on the desfire package's primitives: no state
// between messages, 4-byte DES CBC MAC over the data, CRC16 and send mode for
// enciphered data.
type legacySession struct{ key []byte }

// mac is the 4-byte legacy MAC of data.
func (l legacySession) mac(data []byte) ([]byte, error) { return desfire.LegacyMAC(l.key, data) }

func (l legacySession) unwrap(cmd byte, header, body []byte, mode commMode) ([]byte, error) {
	switch mode {
	case commMAC:
		if len(body) == 0 {
			return nil, nil
		}
		if len(body) < 4 {
			return nil, fmt.Errorf("%w: MAC missing", errIntegrity)
		}
		data := body[:len(body)-4]
		m, err := l.mac(data)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(m, body[len(body)-4:]) != 1 {
			return nil, fmt.Errorf("%w: MAC", errIntegrity)
		}
		return data, nil
	case commFull:
		if len(body) == 0 {
			return nil, nil
		}
		pt, err := desfire.LegacyReceive(l.key, body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errIntegrity, err)
		}
		if cmd == cmdChangeKey {
			return pt, nil
		}
		// The length is the command's, never searched for: this CRC16 has
		// no final XOR, so the zero padding checks as well.
		data, err := desfire.LegacyOpenCommand(cmd, header, pt)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errIntegrity, err)
		}
		return data, nil
	}
	return body, nil
}

func (l legacySession) wrap(_ byte, data []byte, mode commMode) ([]byte, error) {
	switch {
	case mode == commMAC && len(data) > 0:
		m, err := l.mac(data)
		if err != nil {
			return nil, err
		}
		return append(append([]byte(nil), data...), m...), nil
	case mode == commFull && len(data) > 0:
		pt := binary.LittleEndian.AppendUint16(append([]byte(nil), data...), desfire.CRC16(data))
		return desfire.LegacyEncipher(l.key, zeroPad(pt, 8))
	}
	return data, nil
}

func (legacySession) wireLen(n int, mode commMode) int {
	switch mode {
	case commMAC:
		return n + 4
	case commFull:
		return roundUp(n+2, 8)
	}
	return n
}

func zeroPad(b []byte, bs int) []byte {
	out := make([]byte, roundUp(len(b), bs))
	if len(b) == 0 {
		out = make([]byte, bs)
	}
	copy(out, b)
	return out
}

// isoSession starts EV1 secure messaging with 8-byte blocks after
// AuthenticateISO.
func isoSession(k cardKey, rndA, rndB []byte, err error) (session, error) {
	if err != nil {
		return nil, err
	}
	var key []byte
	if k.typ == key3K3DES {
		key = desfire.Session3K3DESKey(rndA, rndB)
	} else {
		key = desfire.LegacySessionKey(k.value, rndA, rndB)
	}
	s, err := desfire.NewEV1SessionDES(key)
	if err != nil {
		return nil, err
	}
	return ev1Session{s: s, bs: 8}, nil
}
