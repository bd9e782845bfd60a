package desfire

import (
	"encoding/binary"
	"fmt"
)

// wireKeyNo is the key number byte of ChangeKey: at the PICC level the key
// type of the new PICC master key is in bits 7-6 (0x80 AES).
func (c *Card) wireKeyNo(keyNo byte, newKey Key) byte {
	keyNo &= 0x0F
	if c.aid == 0 {
		switch newKey.Type() {
		case KeyAES:
			keyNo |= 0x80
		case Key3K3DES:
			keyNo |= 0x40
		}
	}
	return keyNo
}

// keyData is the key as it goes into a ChangeKey cryptogram.
func keyData(k Key) []byte { return append([]byte(nil), k.bytes()...) }

// ChangeKey changes key keyNo of the selected application (or the PICC
// master key, keyNo 0 at AID 0; an AES new key is flagged with 0x80) to
// newKey. When keyNo is not the key of the current session, oldKey (its
// current value) is needed: the card gets newKey XOR oldKey and a CRC of
// newKey. Changing the session's own key ends the session.
func (c *Card) ChangeKey(keyNo byte, newKey, oldKey Key) error {
	const cmd = CmdChangeKey
	if err := c.needAuth(cmd); err != nil {
		return err
	}
	if !newKey.Valid() {
		return fmt.Errorf("%w: no new key", ErrMalformed)
	}
	same := keyNo&0x0F == c.keyNo&0x0F
	if !same && !oldKey.Valid() {
		return fmt.Errorf("%w: changing another key needs its old value", ErrMalformed)
	}
	wk := c.wireKeyNo(keyNo, newKey)
	kd := keyData(newKey)
	defer clear(kd)
	if !same {
		old := oldKey.bytes()
		for i := range kd {
			kd[i] ^= old[i%len(old)]
		}
	}
	withVersion := newKey.Type() == KeyAES || c.scheme == AuthEV2
	if withVersion {
		kd = append(kd, newKey.Version())
	}

	var payload []byte
	var err error
	switch c.scheme {
	case AuthEV2:
		if !same {
			kd = appendCRC32(kd, newKey.bytes())
		}
		payload, err = c.ev2.wrapPayload(cmd, []byte{wk}, kd, CommFull)
	case AuthEV1:
		pt := appendCRC32(append([]byte(nil), kd...), append([]byte{cmd, wk}, kd...))
		if !same {
			pt = appendCRC32(pt, newKey.bytes())
		}
		payload = append([]byte{wk}, c.ev1.encrypt(padZero(pt, c.ev1.bs()))...)
		clear(pt)
	case AuthLegacy:
		pt := appendCRC16(append([]byte(nil), kd...), kd)
		if !same {
			pt = appendCRC16(pt, newKey.bytes())
		}
		var ct []byte
		ct, err = LegacySend(c.legacy.key, padZero(pt, 8))
		payload = append([]byte{wk}, ct...)
		clear(pt)
	}
	if err != nil {
		return fmt.Errorf("change key: %w", err)
	}
	body, status, err := c.exchange(cmd, payload)
	if err != nil {
		c.dropSession()
		return err
	}
	if !IsSuccess(status) {
		c.dropSession()
		return &StatusError{Cmd: cmd, Status: status}
	}
	if same {
		// The card has dropped the session; its answer carries no MAC.
		c.dropSession()
		if len(body) != 0 {
			return fmt.Errorf("%w: change key: unexpected %d bytes after changing the session key", ErrMalformed, len(body))
		}
		c.log.Debug("desfire key changed", "key_no", keyNo, "session", "ended")
		return nil
	}
	switch c.scheme {
	case AuthEV2:
		_, err = c.ev2.unwrapResponseBody(status, body, CommMAC)
	case AuthEV1:
		_, err = c.ev1.unwrapResponseBody(status, body, CommMAC, -1)
	}
	if err != nil {
		c.dropSession()
		return fmt.Errorf("change key: %w", err)
	}
	c.log.Debug("desfire key changed", "key_no", keyNo)
	return nil
}

// OpenChangeKey is the card side of ChangeKey: it checks and opens the
// plaintext cryptogram and returns the new key bytes and version.
//
// plain is, for AuthEV2, what EV2Session.UnwrapCommand returned; for AuthEV1,
// what EV1Session.UnwrapCommand returned for CmdChangeKey (decrypted,
// padding included); for AuthLegacy, LegacyReceive(sessionKey, cryptogram).
// keyNo is the key number byte as sent (type bits included, part of the EV1
// CRC), newKeyLen 16, aes whether the new key is AES (then a version byte
// follows the key; in EV2 it always does). sameKey tells whether keyNo is the
// session's key; otherwise oldKey is the current value of key keyNo.
// Errors: ErrIntegrity if a CRC or the layout does not match.
func OpenChangeKey(scheme AuthScheme, keyNo byte, plain []byte, newKeyLen int, aes, sameKey bool, oldKey []byte) (newKey []byte, version byte, err error) {
	hasVer := aes || scheme == AuthEV2
	off := newKeyLen
	if hasVer {
		off++
	}
	bad := fmt.Errorf("%w: change key cryptogram", ErrIntegrity)
	if len(plain) < off || (!sameKey && len(oldKey) == 0) {
		return nil, 0, bad
	}
	newKey = append([]byte(nil), plain[:newKeyLen]...)
	if hasVer {
		version = plain[newKeyLen]
	}
	if !sameKey {
		for i := range newKey {
			newKey[i] ^= oldKey[i%len(oldKey)]
		}
	}
	rest := plain[off:]
	var ok bool
	switch scheme {
	case AuthEV2:
		if sameKey {
			ok = len(rest) == 0
		} else {
			ok = len(rest) == 4 && binary.LittleEndian.Uint32(rest) == CRC32(newKey)
		}
	case AuthEV1:
		ok = len(rest) >= 4 && binary.LittleEndian.Uint32(rest) == CRC32(append([]byte{CmdChangeKey, keyNo}, plain[:off]...))
		rest = rest[min(4, len(rest)):]
		if ok && !sameKey {
			ok = len(rest) >= 4 && binary.LittleEndian.Uint32(rest) == CRC32(newKey)
			rest = rest[min(4, len(rest)):]
		}
		ok = ok && allZero(rest)
	case AuthLegacy:
		ok = len(rest) >= 2 && binary.LittleEndian.Uint16(rest) == CRC16(plain[:off])
		rest = rest[min(2, len(rest)):]
		if ok && !sameKey {
			ok = len(rest) >= 2 && binary.LittleEndian.Uint16(rest) == CRC16(newKey)
			rest = rest[min(2, len(rest)):]
		}
		ok = ok && allZero(rest) && len(rest) < 8
	}
	if !ok {
		clear(newKey)
		return nil, 0, bad
	}
	return newKey, version, nil
}
