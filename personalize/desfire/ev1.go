package desfire

import (
	"bytes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// EV1SessionKeyAES is the session key of AuthenticateAES (0xAA):
// RndA[0:4] || RndB[0:4] || RndA[12:16] || RndB[12:16]. It returns nil if a
// random is not 16 bytes.
func EV1SessionKeyAES(rndA, rndB []byte) []byte {
	if len(rndA) != 16 || len(rndB) != 16 {
		return nil
	}
	k := make([]byte, 0, 16)
	k = append(k, rndA[0:4]...)
	k = append(k, rndB[0:4]...)
	k = append(k, rndA[12:16]...)
	return append(k, rndB[12:16]...)
}

// EV1Session is EV1 secure messaging: one session key, a running IV that
// starts at zero after authentication and is updated by every CMAC and every
// cryptogram, in both directions. The same type serves the client and the
// card; it is not safe for concurrent use.
//
// Client and card must process exactly the same sequence of messages, plain
// ones included: a plain command still updates the IV with its CMAC, and every
// OK response of an authenticated session carries an 8-byte CMAC unless it is
// a full-mode cryptogram.
type EV1Session struct {
	block cipher.Block
	mac   *ivMAC
	iv    []byte
}

// NewEV1Session starts EV1 secure messaging with a 16-byte AES session key.
func NewEV1Session(sessionKey []byte) (*EV1Session, error) {
	b, err := newAES(sessionKey)
	if err != nil {
		return nil, err
	}
	return newEV1(b), nil
}

// NewEV1SessionDES starts EV1 secure messaging with 8-byte blocks after
// AuthenticateISO (0x1A) with a DES/2K3DES key; sessionKey is the 16-byte
// LegacySessionKey. The CMAC is the 64-bit CMAC (constant 0x1B). A full-mode
// response of exactly 8 bytes is taken as a CMAC, so full-mode responses with
// 1 to 4 data bytes are not supported with DES blocks.
func NewEV1SessionDES(sessionKey []byte) (*EV1Session, error) {
	b, err := newDESBlock(sessionKey)
	if err != nil {
		return nil, err
	}
	return newEV1(b), nil
}

func newEV1(b cipher.Block) *EV1Session {
	return &EV1Session{block: b, mac: newIVMAC(b), iv: make([]byte, b.BlockSize())}
}

func (s *EV1Session) bs() int { return s.block.BlockSize() }

// cmac returns the CMAC of the parts from the running IV and makes it the new IV.
func (s *EV1Session) cmac(parts ...[]byte) []byte {
	var msg []byte
	for _, p := range parts {
		msg = append(msg, p...)
	}
	s.iv = s.mac.sum(s.iv, msg)
	return append([]byte(nil), s.iv...)
}

func (s *EV1Session) encrypt(pt []byte) []byte {
	ct := cbcEncrypt(s.block, s.iv, pt)
	s.iv = append([]byte(nil), ct[len(ct)-s.bs():]...)
	return ct
}

func (s *EV1Session) decrypt(ct []byte) []byte {
	pt := cbcDecrypt(s.block, s.iv, ct)
	s.iv = append([]byte(nil), ct[len(ct)-s.bs():]...)
	return pt
}

func (s *EV1Session) wrapPayload(cmd byte, header, data []byte, mode CommMode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	out := append([]byte(nil), header...)
	switch {
	case mode == CommFull && len(data) > 0:
		pt := append(append([]byte(nil), data...), 0, 0, 0, 0)
		c := CRC32(append(append([]byte{cmd}, header...), data...))
		binary.LittleEndian.PutUint32(pt[len(data):], c)
		return append(out, s.encrypt(padAfterCRC(pt, s.bs(), commandPad(cmd, header)))...), nil
	case mode == CommMAC && len(data) > 0:
		mac := s.cmac([]byte{cmd}, header, data)
		out = append(out, data...)
		return append(out, mac[:8]...), nil
	default:
		s.cmac([]byte{cmd}, header, data)
		return append(out, data...), nil
	}
}

// WrapCommand returns the whole APDU of a native command. Plain: the CMAC of
// cmd||header||data updates the IV and is not sent. MAC: the first 8 bytes of
// that CMAC follow the data (if there is data after the header). Full:
// data || CRC32(cmd||header||data) padded with zeros is encrypted; the header
// stays clear.
func (s *EV1Session) WrapCommand(cmd byte, header, data []byte, mode CommMode) ([]byte, error) {
	return wrapAPDU(s, cmd, header, data, mode)
}

// UnwrapResponse takes the whole response APDU, checks the CMAC (plain and
// MAC mode, and full mode when the response has no data) or decrypts and
// checks the CRC32 (full mode), and returns the data. Without knowing the
// length, a full-mode response is ambiguous once in 256 (see findCRC32): the
// client inside this package passes the length it expects. A status other than
// OK/NoChanges is returned as *StatusError.
func (s *EV1Session) UnwrapResponse(resp []byte, mode CommMode) ([]byte, error) {
	body, status, err := splitResponse(resp)
	if err != nil {
		return nil, err
	}
	if !IsSuccess(status) {
		return nil, &StatusError{Status: status}
	}
	return s.unwrapResponseBody(status, body, mode, -1)
}

// unwrapResponseBody checks and opens a response; want is the expected
// plaintext length of a full-mode response, or -1.
func (s *EV1Session) unwrapResponseBody(status byte, body []byte, mode CommMode, want int) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if mode != CommFull || len(body) == 8 {
		if len(body) < 8 {
			return nil, fmt.Errorf("%w: response CMAC missing", ErrIntegrity)
		}
		data, mac := body[:len(body)-8], body[len(body)-8:]
		want := s.cmac(data, []byte{status})
		if subtle.ConstantTimeCompare(mac, want[:8]) != 1 {
			return nil, fmt.Errorf("%w: response CMAC", ErrIntegrity)
		}
		return append([]byte(nil), data...), nil
	}
	if len(body) == 0 || len(body)%s.bs() != 0 {
		return nil, fmt.Errorf("%w: response cryptogram length %d", ErrIntegrity, len(body))
	}
	pt := s.decrypt(body)
	n, ok := findCRC32(pt, nil, []byte{status}, s.bs(), want, 0)
	if !ok {
		return nil, fmt.Errorf("%w: response CRC", ErrIntegrity)
	}
	return pt[:n], nil
}

// findCRC32 finds n such that pt = data || CRC32(prefix||data||suffix) ||
// zeros with fewer zeros than a block, data = pt[:n]. If want >= 0 only n =
// want is accepted. Otherwise it searches from the shortest candidate; that
// is ambiguous: when the CRC's last byte is zero (1 in 256), data minus its
// last byte fits as well, so callers pass the length whenever they know it.
func findCRC32(pt, prefix, suffix []byte, bs, want int, pad byte) (int, bool) {
	lo, hi := max(0, len(pt)-4-bs), len(pt)-4
	if want >= 0 {
		lo, hi = want, want
	}
	for n := lo; n <= hi && n <= len(pt)-4 && n >= 0; n++ {
		if !checkPadAfterCRC(pt[n+4:], bs, pad) {
			continue
		}
		msg := append(append(append([]byte(nil), prefix...), pt[:n]...), suffix...)
		if binary.LittleEndian.Uint32(pt[n:]) == CRC32(msg) {
			return n, true
		}
	}
	return 0, false
}

func allZero(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }

// UnwrapCommand is the card side: body is the command's data field after the
// clear header. It updates the IV exactly as the client did, verifies the
// CMAC (MAC mode with a non-empty body) or decrypts and checks the CRC32
// (full mode) and returns the data. The plaintext length of full-mode
// WriteData/WriteRecord comes from the header, of Credit/Debit/LimitedCredit
// (4) and ChangeKeySettings (1) from the command; for other commands the CRC is
// searched before the zero padding.
//
// For CmdChangeKey in full mode the decrypted cryptogram is returned whole,
// padding included and unchecked: its layout depends on the key; open it with
// [OpenChangeKey].
func (s *EV1Session) UnwrapCommand(cmd byte, header, body []byte, mode CommMode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	switch {
	case mode == CommFull && len(body) > 0:
		if len(body)%s.bs() != 0 {
			return nil, fmt.Errorf("%w: command cryptogram length %d", ErrIntegrity, len(body))
		}
		pt := s.decrypt(body)
		if cmd == CmdChangeKey {
			return pt, nil
		}
		n, ok := findCRC32(pt, append([]byte{cmd}, header...), nil, s.bs(), CommandDataLen(cmd, header, pt), commandPad(cmd, header))
		if !ok {
			return nil, fmt.Errorf("%w: command CRC", ErrIntegrity)
		}
		return pt[:n], nil
	case mode == CommMAC && len(body) > 0:
		if len(body) < 8 {
			return nil, fmt.Errorf("%w: command CMAC missing", ErrIntegrity)
		}
		data, mac := body[:len(body)-8], body[len(body)-8:]
		want := s.cmac([]byte{cmd}, header, data)
		if subtle.ConstantTimeCompare(mac, want[:8]) != 1 {
			return nil, fmt.Errorf("%w: command CMAC", ErrIntegrity)
		}
		return append([]byte(nil), data...), nil
	default:
		s.cmac([]byte{cmd}, header, body)
		return append([]byte(nil), body...), nil
	}
}

// WrapResponse is the card side: data || CMAC(data||status)[:8] in plain and
// MAC mode and in full mode without data; in full mode with data the
// encryption of data || CRC32(data||status) padded with zeros. A status
// other than OK/NoChanges gives an empty data field (no CMAC).
func (s *EV1Session) WrapResponse(status byte, data []byte, mode CommMode) ([]byte, error) {
	if err := checkMode(mode); err != nil {
		return nil, err
	}
	if !IsSuccess(status) {
		return nil, nil
	}
	if mode == CommFull && len(data) > 0 {
		pt := appendCRC32(append([]byte(nil), data...), append(append([]byte(nil), data...), status))
		return s.encrypt(padZero(pt, s.bs())), nil
	}
	mac := s.cmac(data, []byte{status})
	return append(append([]byte(nil), data...), mac[:8]...), nil
}
