package desfire

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// LegacyEncipher is what a card does to data it sends under legacy (0x0A)
// authentication: CBC encryption with DES/2K3DES key, IV zero. data must be a
// multiple of 8 bytes.
func LegacyEncipher(key, data []byte) ([]byte, error) {
	b, err := legacyBlock(key, data)
	if err != nil {
		return nil, err
	}
	return cbcEncrypt(b, make([]byte, 8), data), nil
}

// LegacyDecipher is what a reader does to data it receives under legacy
// authentication: CBC decryption, IV zero. It inverts LegacyEncipher.
func LegacyDecipher(key, data []byte) ([]byte, error) {
	b, err := legacyBlock(key, data)
	if err != nil {
		return nil, err
	}
	return cbcDecrypt(b, make([]byte, 8), data), nil
}

// LegacySend is the reader's "send mode" of legacy authentication: each block
// is XORed with the previous output block (zero for the first) and then
// DES-deciphered: y[i] = D(x[i] xor y[i-1]).
func LegacySend(key, data []byte) ([]byte, error) {
	b, err := legacyBlock(key, data)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(data))
	prev := make([]byte, 8)
	for i := 0; i < len(data); i += 8 {
		subtle.XORBytes(out[i:i+8], data[i:i+8], prev)
		b.Decrypt(out[i:i+8], out[i:i+8])
		prev = out[i : i+8]
	}
	return out, nil
}

// LegacyReceive is the card's inverse of LegacySend: x[i] = E(y[i]) xor y[i-1].
func LegacyReceive(key, data []byte) ([]byte, error) {
	b, err := legacyBlock(key, data)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(data))
	prev := make([]byte, 8)
	for i := 0; i < len(data); i += 8 {
		b.Encrypt(out[i:i+8], data[i:i+8])
		subtle.XORBytes(out[i:i+8], out[i:i+8], prev)
		prev = data[i : i+8]
	}
	return out, nil
}

func legacyBlock(key, data []byte) (cipher.Block, error) {
	if len(data)%8 != 0 {
		return nil, fmt.Errorf("%w: legacy data must be a multiple of 8 bytes, got %d", ErrMalformed, len(data))
	}
	return newDESBlock(key)
}

// ISOEncrypt encrypts in CBC mode with a DES/2K3DES/3K3DES key from iv, as in
// AuthenticateISO (0x1A), where the IV runs on from one message to the next:
// it returns the ciphertext and the next IV (the last ciphertext block).
func ISOEncrypt(key, iv, data []byte) (ct, next []byte, err error) {
	b, err := legacyBlock(key, data)
	if err != nil {
		return nil, nil, err
	}
	if len(iv) != 8 || len(data) == 0 {
		return nil, nil, fmt.Errorf("%w: IV must be 8 bytes and data non-empty", ErrMalformed)
	}
	ct = cbcEncrypt(b, iv, data)
	return ct, append([]byte(nil), ct[len(ct)-8:]...), nil
}

// ISODecrypt inverts ISOEncrypt; next is the last ciphertext block.
func ISODecrypt(key, iv, data []byte) (pt, next []byte, err error) {
	b, err := legacyBlock(key, data)
	if err != nil {
		return nil, nil, err
	}
	if len(iv) != 8 || len(data) == 0 {
		return nil, nil, fmt.Errorf("%w: IV must be 8 bytes and data non-empty", ErrMalformed)
	}
	pt = cbcDecrypt(b, iv, data)
	return pt, append([]byte(nil), data[len(data)-8:]...), nil
}

// LegacySessionKey is the 16-byte session key of AuthenticateLegacy and
// AuthenticateISO with a DES or 2K3DES key and 8-byte randoms:
// RndA[0:4]||RndB[0:4]||RndA[4:8]||RndB[4:8] for 2K3DES, and
// RndA[0:4]||RndB[0:4] twice when the key is single DES (both halves equal,
// as the factory key of zeros). It returns nil for other lengths.
func LegacySessionKey(key, rndA, rndB []byte) []byte {
	if len(rndA) != 8 || len(rndB) != 8 || (len(key) != 8 && len(key) != 16) {
		return nil
	}
	k := make([]byte, 0, 16)
	k = append(k, rndA[0:4]...)
	k = append(k, rndB[0:4]...)
	if isSingleDES(key) {
		return append(k, k...)
	}
	k = append(k, rndA[4:8]...)
	return append(k, rndB[4:8]...)
}

// isSingleDES reports whether a 16-byte key has equal halves (ignoring the
// parity bits, which carry the key version) or is 8 bytes long.
func isSingleDES(key []byte) bool {
	if len(key) == 8 {
		return true
	}
	if len(key) != 16 {
		return false
	}
	for i := 0; i < 8; i++ {
		if key[i]&0xFE != key[i+8]&0xFE {
			return false
		}
	}
	return true
}

// LegacyMAC is the 4-byte MAC of legacy secure messaging: the first half of
// the last block of the CBC encryption (IV zero) of data padded with zeros.
func LegacyMAC(key, data []byte) ([]byte, error) {
	p := padZero(data, 8)
	if len(p) == 0 {
		p = make([]byte, 8)
	}
	ct, err := LegacyEncipher(key, p)
	if err != nil {
		return nil, err
	}
	return ct[len(ct)-8 : len(ct)-4], nil
}

// LegacyOpen is the reader's side of an enciphered legacy answer, and the
// card's of an enciphered command (with LegacyReceive's output as pt): pt is
// data || CRC16(data) || padding up to the block. The data length n is known
// from the command; searching for it would be ambiguous, since this CRC has
// no final XOR and the zero padding can check as well. The padding is zeros,
// or 0x80 and zeros for SetConfiguration's ATS ([LegacyOpenCommand]).
// Errors: ErrIntegrity.
func LegacyOpen(pt []byte, n int) ([]byte, error) { return legacyOpen(pt, n, 0) }

// LegacyOpenCommand is LegacyOpen for the enciphered data of command cmd
// with its clear header: the length and padding are the command's.
func LegacyOpenCommand(cmd byte, header, pt []byte) ([]byte, error) {
	return legacyOpen(pt, CommandDataLen(cmd, header, pt), commandPad(cmd, header))
}

func legacyOpen(pt []byte, n int, pad byte) ([]byte, error) {
	if n < 0 || n+2 > len(pt) || !checkPadAfterCRC(pt[n+2:], 8, pad) ||
		binary.LittleEndian.Uint16(pt[n:]) != CRC16(pt[:n]) {
		return nil, fmt.Errorf("%w: legacy CRC16", ErrIntegrity)
	}
	return append([]byte(nil), pt[:n]...), nil
}

// wrapPayload protects a command's data for a legacy session: MAC mode adds
// the 4-byte MAC of the data, full mode sends data || CRC16(data), zero
// padded, through send mode. The header stays in clear.
func (l *legacySession) wrapPayload(cmd byte, header, data []byte, mode CommMode) ([]byte, error) {
	out := append([]byte(nil), header...)
	switch {
	case len(data) == 0 || mode == CommPlain:
		return append(out, data...), nil
	case mode == CommMAC:
		m, err := LegacyMAC(l.key, data)
		if err != nil {
			return nil, err
		}
		return append(append(out, data...), m...), nil
	}
	pt := appendCRC16(append([]byte(nil), data...), data)
	ct, err := LegacySend(l.key, padAfterCRC(pt, 8, commandPad(cmd, header)))
	clear(pt)
	if err != nil {
		return nil, err
	}
	return append(out, ct...), nil
}

// unwrapResponseBody checks a legacy answer: MAC mode data || MAC, full
// mode the encipherment of data || CRC16(data) padded, whose length n the
// caller knows (-1 is refused).
func (l *legacySession) unwrapResponseBody(body []byte, mode CommMode, n int) ([]byte, error) {
	if len(body) == 0 || mode == CommPlain {
		return body, nil
	}
	if mode == CommMAC {
		if len(body) < 4 {
			return nil, fmt.Errorf("%w: legacy MAC missing", ErrIntegrity)
		}
		data := body[:len(body)-4]
		m, err := LegacyMAC(l.key, data)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(m, body[len(body)-4:]) != 1 {
			return nil, fmt.Errorf("%w: legacy MAC", ErrIntegrity)
		}
		return data, nil
	}
	pt, err := LegacyDecipher(l.key, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return LegacyOpen(pt, n)
}
