package desfire

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"

	"github.com/loopcard/loopcard/keys/cmac"
)

// EV2SessionKeys derives SesAuthENCKey and SesAuthMACKey from the AES key
// used in AuthenticateEV2First/NonFirst and the two 16-byte randoms, as in
// NXP AN12343 and the NT4H2421 datasheet: CMAC(key, SV1) and CMAC(key, SV2)
// with SV = label || 00 01 00 80 || RndA[0:2] || (RndA[2:8] xor RndB[0:6]) ||
// RndB[6:16] || RndA[8:16], label A5 5A for SV1 and 5A A5 for SV2.
func EV2SessionKeys(key, rndA, rndB []byte) (encKey, macKey []byte, err error) {
	if len(rndA) != 16 || len(rndB) != 16 {
		return nil, nil, fmt.Errorf("%w: randoms must be 16 bytes", ErrMalformed)
	}
	m, err := cmac.New(key)
	if err != nil || len(key) != 16 {
		return nil, nil, fmt.Errorf("%w: AES key must be 16 bytes", ErrMalformed)
	}
	sv := make([]byte, 32)
	copy(sv[2:6], []byte{0x00, 0x01, 0x00, 0x80})
	copy(sv[6:8], rndA[0:2])
	subtle.XORBytes(sv[8:14], rndA[2:8], rndB[0:6])
	copy(sv[14:24], rndB[6:16])
	copy(sv[24:32], rndA[8:16])
	sv[0], sv[1] = 0xA5, 0x5A
	e := m.Sum(sv)
	sv[0], sv[1] = 0x5A, 0xA5
	a := m.Sum(sv)
	return e[:], a[:], nil
}

// EV2Session is the state of EV2 secure messaging: session keys,
// transaction identifier and command counter. The same type serves the
// client (WrapCommand, UnwrapResponse) and a card (UnwrapCommand,
// WrapResponse). It is not safe for concurrent use.
type EV2Session struct {
	enc cipher.Block
	mac *cmac.CMAC
	ti  [4]byte
	ctr uint16
}

// NewEV2Session builds a session from known state: the two 16-byte session
// keys, the 4-byte TI and the current command counter (0 right after
// AuthenticateEV2First).
func NewEV2Session(encKey, macKey, ti []byte, cmdCtr uint16) (*EV2Session, error) {
	enc, err := newAES(encKey)
	if err != nil {
		return nil, fmt.Errorf("enc key: %w", err)
	}
	if len(macKey) != 16 {
		return nil, fmt.Errorf("%w: MAC key must be 16 bytes", ErrMalformed)
	}
	mac, err := cmac.New(macKey)
	if err != nil {
		return nil, fmt.Errorf("mac key: %w", err)
	}
	if len(ti) != 4 {
		return nil, fmt.Errorf("%w: TI must be 4 bytes", ErrMalformed)
	}
	s := &EV2Session{enc: enc, mac: mac, ctr: cmdCtr}
	copy(s.ti[:], ti)
	return s, nil
}

// CmdCtr is the command counter of the next command.
func (s *EV2Session) CmdCtr() uint16 { return s.ctr }

// TI is the transaction identifier.
func (s *EV2Session) TI() []byte { return append([]byte(nil), s.ti[:]...) }

// iv returns E(SesAuthENCKey, label || TI || ctr || 0^8).
func (s *EV2Session) iv(l0, l1 byte, ctr uint16) []byte {
	b := make([]byte, 16)
	b[0], b[1] = l0, l1
	copy(b[2:6], s.ti[:])
	binary.LittleEndian.PutUint16(b[6:8], ctr)
	s.enc.Encrypt(b, b)
	return b
}

// macT returns the 8-byte truncated MAC (odd-indexed bytes) of
// code || ctr || TI || parts.
func (s *EV2Session) macT(code byte, ctr uint16, parts ...[]byte) []byte {
	msg := make([]byte, 0, 7+16)
	msg = append(msg, code, byte(ctr), byte(ctr>>8))
	msg = append(msg, s.ti[:]...)
	for _, p := range parts {
		msg = append(msg, p...)
	}
	full := s.mac.Sum(msg)
	out := make([]byte, 8)
	for i := range out {
		out[i] = full[2*i+1]
	}
	return out
}

func checkMode(mode CommMode) error {
	if mode < CommPlain || mode > CommFull {
		return fmt.Errorf("%w: communication mode %d", ErrUnsupported, int(mode))
	}
	return nil
}

// wrapPayload returns the command data field: header || data, or header ||
// ciphertext, followed in MAC and Full mode by the 8-byte MAC.
func (s *EV2Session) wrapPayload(cmd byte, header, data []byte, mode CommMode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if s.ctr == 0xFFFF {
		return nil, ErrCounterExhausted
	}
	out := append([]byte(nil), header...)
	switch mode {
	case CommPlain:
		return append(out, data...), nil
	case CommMAC:
		out = append(out, data...)
		return append(out, s.macT(cmd, s.ctr, out)...), nil
	}
	var ct []byte
	if len(data) > 0 {
		ct = cbcEncrypt(s.enc, s.iv(0xA5, 0x5A, s.ctr), padM2(data, 16))
	}
	out = append(out, ct...)
	return append(out, s.macT(cmd, s.ctr, out)...), nil
}

// WrapCommand returns the whole APDU for a native command; in CommFull the
// data is plaintext and is padded and encrypted here; header stays clear. It
// does not advance the counter (UnwrapResponse does). A data field longer
// than 255 bytes is an error: the client splits long commands into frames.
func (s *EV2Session) WrapCommand(cmd byte, header, data []byte, mode CommMode) ([]byte, error) {
	return wrapAPDU(s, cmd, header, data, mode)
}

// UnwrapResponse takes the whole response APDU (data, 91, status), checks
// the MAC, decrypts in CommFull, advances the command counter, returns the
// data. A status other than OK/NoChanges is returned as *StatusError
// (error responses carry no MAC) and the counter is left alone.
func (s *EV2Session) UnwrapResponse(resp []byte, mode CommMode) ([]byte, error) {
	body, status, err := splitResponse(resp)
	if err != nil {
		return nil, err
	}
	if !IsSuccess(status) {
		return nil, &StatusError{Status: status}
	}
	return s.unwrapResponseBody(status, body, mode)
}

func (s *EV2Session) unwrapResponseBody(status byte, body []byte, mode CommMode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if s.ctr == 0xFFFF {
		return nil, ErrCounterExhausted
	}
	next := s.ctr + 1
	if mode == CommPlain {
		s.ctr = next
		return append([]byte(nil), body...), nil
	}
	if len(body) < 8 {
		return nil, fmt.Errorf("%w: response MAC missing", ErrIntegrity)
	}
	data, mac := body[:len(body)-8], body[len(body)-8:]
	if subtle.ConstantTimeCompare(mac, s.macT(status, next, data)) != 1 {
		return nil, fmt.Errorf("%w: response MAC", ErrIntegrity)
	}
	if mode == CommMAC || len(data) == 0 {
		s.ctr = next
		return append([]byte(nil), data...), nil
	}
	if len(data)%16 != 0 {
		return nil, fmt.Errorf("%w: response cryptogram length %d", ErrIntegrity, len(data))
	}
	pt, err := unpadM2(cbcDecrypt(s.enc, s.iv(0x5A, 0xA5, next), data), 16)
	if err != nil {
		return nil, err
	}
	s.ctr = next
	return pt, nil
}

// UnwrapCommand is the card side: body is the command's data field after
// the clear header (ciphertext||MAC or data||MAC); it verifies the MAC and
// returns the plaintext data. It does NOT advance the counter.
func (s *EV2Session) UnwrapCommand(cmd byte, header, body []byte, mode CommMode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if s.ctr == 0xFFFF {
		return nil, ErrCounterExhausted
	}
	if mode == CommPlain {
		return append([]byte(nil), body...), nil
	}
	if len(body) < 8 {
		return nil, fmt.Errorf("%w: command MAC missing", ErrIntegrity)
	}
	data, mac := body[:len(body)-8], body[len(body)-8:]
	if subtle.ConstantTimeCompare(mac, s.macT(cmd, s.ctr, header, data)) != 1 {
		return nil, fmt.Errorf("%w: command MAC", ErrIntegrity)
	}
	if mode == CommMAC || len(data) == 0 {
		return append([]byte(nil), data...), nil
	}
	if len(data)%16 != 0 {
		return nil, fmt.Errorf("%w: command cryptogram length %d", ErrIntegrity, len(data))
	}
	return unpadM2(cbcDecrypt(s.enc, s.iv(0xA5, 0x5A, s.ctr), data), 16)
}

// WrapResponse is the card side: it returns the response data field (data,
// or ciphertext, followed by the 8-byte MAC in MAC/Full mode) and advances
// the counter. For a status other than OK/NoChanges it returns an empty data
// field and leaves the counter alone: cards send errors without MAC.
func (s *EV2Session) WrapResponse(status byte, data []byte, mode CommMode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if !IsSuccess(status) {
		return nil, nil
	}
	if s.ctr == 0xFFFF {
		return nil, ErrCounterExhausted
	}
	next := s.ctr + 1
	var out []byte
	switch {
	case mode == CommPlain:
		out = append(out, data...)
	case mode == CommMAC || len(data) == 0:
		out = append(out, data...)
		out = append(out, s.macT(status, next, out)...)
	default:
		out = cbcEncrypt(s.enc, s.iv(0x5A, 0xA5, next), padM2(data, 16))
		out = append(out, s.macT(status, next, out)...)
	}
	s.ctr = next
	return out, nil
}
