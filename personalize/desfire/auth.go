package desfire

import (
	"crypto/aes"
	"crypto/subtle"
	"fmt"
	"io"
)

// authStep1 sends the first authentication frame and expects 91 AF with a
// cryptogram of n bytes.
func (c *Card) authStep1(cmd byte, data []byte, n int) ([]byte, error) {
	c.dropSession()
	body, status, err := c.transmitFrame(cmd, data)
	if err != nil {
		return nil, err
	}
	if status != StatusMoreFrames {
		return nil, &StatusError{Cmd: cmd, Status: status}
	}
	if len(body) != n {
		return nil, fmt.Errorf("%w: authentication 0x%02X: challenge of %d bytes, want %d", ErrMalformed, cmd, len(body), n)
	}
	return body, nil
}

// authStep2 sends the reader's cryptogram and expects 91 00 with n bytes.
func (c *Card) authStep2(cmd byte, token []byte, n int) ([]byte, error) {
	body, status, err := c.transmitFrame(CmdAdditionalFrame, token)
	if err != nil {
		return nil, err
	}
	if status != StatusOK {
		return nil, &StatusError{Cmd: cmd, Status: status}
	}
	if len(body) != n {
		return nil, fmt.Errorf("%w: authentication 0x%02X: answer of %d bytes, want %d", ErrMalformed, cmd, len(body), n)
	}
	return body, nil
}

func (c *Card) random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(c.rand, b); err != nil {
		return nil, fmt.Errorf("desfire: random: %w", err)
	}
	return b, nil
}

func checkRndA(cmd byte, rndA, got []byte) error {
	if subtle.ConstantTimeCompare(rotl1(rndA), got) != 1 {
		return fmt.Errorf("%w: authentication 0x%02X: card did not prove the key", ErrIntegrity, cmd)
	}
	return nil
}

// AuthenticateEV2First authenticates with AES key keyNo of the selected
// application (or PICC) and starts EV2 secure messaging with a new TI and
// command counter 0. Errors: *StatusError (ErrAuthentication for a wrong
// key), ErrIntegrity if the card's answer does not prove the key.
func (c *Card) AuthenticateEV2First(keyNo byte, key Key) error {
	return c.authEV2(CmdAuthenticateEV2First, keyNo, key)
}

// AuthenticateEV2NonFirst authenticates again inside an EV2 session (for
// example with another key): new session keys, same TI and command counter.
func (c *Card) AuthenticateEV2NonFirst(keyNo byte, key Key) error {
	if c.scheme != AuthEV2 {
		return fmt.Errorf("authenticate EV2 non-first: %w", ErrNotAuthenticated)
	}
	return c.authEV2(CmdAuthenticateEV2NonFirst, keyNo, key)
}

func (c *Card) authEV2(cmd byte, keyNo byte, key Key) error {
	if key.Type() != KeyAES {
		return fmt.Errorf("%w: EV2 authentication needs an AES key", ErrUnsupported)
	}
	prev := c.ev2
	b, err := aes.NewCipher(key.bytes())
	if err != nil {
		return err
	}
	zero := make([]byte, 16)
	data := []byte{keyNo, 0x00} // no PCDcap2
	if cmd == CmdAuthenticateEV2NonFirst {
		data = []byte{keyNo}
	}
	ek, err := c.authStep1(cmd, data, 16)
	if err != nil {
		return err
	}
	rndB := cbcDecrypt(b, zero, ek)
	rndA, err := c.random(16)
	if err != nil {
		return err
	}
	token := cbcEncrypt(b, zero, append(append([]byte(nil), rndA...), rotl1(rndB)...))
	n := 32
	if cmd == CmdAuthenticateEV2NonFirst {
		n = 16
	}
	ans, err := c.authStep2(cmd, token, n)
	if err != nil {
		return err
	}
	pt := cbcDecrypt(b, zero, ans)
	var ti []byte
	var ctr uint16
	if cmd == CmdAuthenticateEV2First {
		ti = pt[0:4]
		if err := checkRndA(cmd, rndA, pt[4:20]); err != nil {
			return err
		}
	} else {
		ti, ctr = prev.TI(), prev.CmdCtr()
		if err := checkRndA(cmd, rndA, pt); err != nil {
			return err
		}
	}
	enc, mac, err := EV2SessionKeys(key.bytes(), rndA, rndB)
	if err != nil {
		return err
	}
	s, err := NewEV2Session(enc, mac, ti, ctr)
	if err != nil {
		return err
	}
	c.scheme, c.ev2, c.keyNo = AuthEV2, s, keyNo
	c.log.Debug("desfire authenticated", "scheme", "ev2", "key_no", keyNo)
	return nil
}

// AuthenticateAES is the EV1 AES authentication (0xAA), for EV1 cards: the IV
// runs on through the three cryptograms, the session key is
// EV1SessionKeyAES and EV1 secure messaging follows.
func (c *Card) AuthenticateAES(keyNo byte, key Key) error {
	const cmd = CmdAuthenticateAES
	if key.Type() != KeyAES {
		return fmt.Errorf("%w: AuthenticateAES needs an AES key", ErrUnsupported)
	}
	b, err := aes.NewCipher(key.bytes())
	if err != nil {
		return err
	}
	ek, err := c.authStep1(cmd, []byte{keyNo}, 16)
	if err != nil {
		return err
	}
	rndB := cbcDecrypt(b, make([]byte, 16), ek)
	rndA, err := c.random(16)
	if err != nil {
		return err
	}
	token := cbcEncrypt(b, ek, append(append([]byte(nil), rndA...), rotl1(rndB)...))
	ans, err := c.authStep2(cmd, token, 16)
	if err != nil {
		return err
	}
	if err := checkRndA(cmd, rndA, cbcDecrypt(b, token[16:], ans)); err != nil {
		return err
	}
	s, err := NewEV1Session(EV1SessionKeyAES(rndA, rndB))
	if err != nil {
		return err
	}
	c.scheme, c.ev1, c.keyNo = AuthEV1, s, keyNo
	c.log.Debug("desfire authenticated", "scheme", "ev1-aes", "key_no", keyNo)
	return nil
}

// AuthenticateLegacy is the original DESFire authentication (0x0A) with a
// DES or 2K3DES key, as blank cards need with their key of zeros.
func (c *Card) AuthenticateLegacy(keyNo byte, key Key) error {
	const cmd = CmdAuthenticateLegacy
	if t := key.Type(); t != KeyDES && t != Key2K3DES {
		return fmt.Errorf("%w: AuthenticateLegacy needs a DES key", ErrUnsupported)
	}
	k := key.bytes()
	ek, err := c.authStep1(cmd, []byte{keyNo}, 8)
	if err != nil {
		return err
	}
	rndB, err := LegacyDecipher(k, ek)
	if err != nil {
		return err
	}
	rndA, err := c.random(8)
	if err != nil {
		return err
	}
	token, err := LegacySend(k, append(append([]byte(nil), rndA...), rotl1(rndB)...))
	if err != nil {
		return err
	}
	ans, err := c.authStep2(cmd, token, 8)
	if err != nil {
		return err
	}
	got, err := LegacyDecipher(k, ans)
	if err != nil {
		return err
	}
	if err := checkRndA(cmd, rndA, got); err != nil {
		return err
	}
	c.scheme, c.keyNo, c.legacy = AuthLegacy, keyNo, &legacySession{key: LegacySessionKey(k, rndA, rndB)}
	c.log.Debug("desfire authenticated", "scheme", "legacy", "key_no", keyNo)
	return nil
}

// AuthenticateISO is the ISO authentication (0x1A) with a DES, 2K3DES or
// 3K3DES key: CBC with the IV running through the exchange (8-byte randoms,
// 16-byte ones for 3K3DES), then EV1 secure messaging with 8-byte blocks.
func (c *Card) AuthenticateISO(keyNo byte, key Key) error {
	const cmd = CmdAuthenticateISO
	n := 8
	switch key.Type() {
	case KeyDES, Key2K3DES:
	case Key3K3DES:
		n = 16
	default:
		return fmt.Errorf("%w: AuthenticateISO needs a DES key", ErrUnsupported)
	}
	k := key.bytes()
	ek, err := c.authStep1(cmd, []byte{keyNo}, n)
	if err != nil {
		return err
	}
	rndB, iv, err := ISODecrypt(k, make([]byte, 8), ek)
	if err != nil {
		return err
	}
	rndA, err := c.random(n)
	if err != nil {
		return err
	}
	token, iv, err := ISOEncrypt(k, iv, append(append([]byte(nil), rndA...), rotl1(rndB)...))
	if err != nil {
		return err
	}
	ans, err := c.authStep2(cmd, token, n)
	if err != nil {
		return err
	}
	got, _, err := ISODecrypt(k, iv, ans)
	if err != nil {
		return err
	}
	if err := checkRndA(cmd, rndA, got); err != nil {
		return err
	}
	sk := LegacySessionKey(k, rndA, rndB)
	if n == 16 {
		sk = Session3K3DESKey(rndA, rndB)
	}
	s, err := NewEV1SessionDES(sk)
	if err != nil {
		return err
	}
	c.scheme, c.ev1, c.keyNo = AuthEV1, s, keyNo
	c.log.Debug("desfire authenticated", "scheme", "iso", "key_no", keyNo)
	return nil
}

// Session3K3DESKey is the 24-byte session key of AuthenticateISO with a
// 3K3DES key and 16-byte randoms: RndA[0:4]||RndB[0:4]||RndA[6:10]||
// RndB[6:10]||RndA[12:16]||RndB[12:16]. It returns nil for other lengths.
func Session3K3DESKey(rndA, rndB []byte) []byte {
	if len(rndA) != 16 || len(rndB) != 16 {
		return nil
	}
	k := make([]byte, 0, 24)
	for _, i := range []int{0, 6, 12} {
		k = append(k, rndA[i:i+4]...)
		k = append(k, rndB[i:i+4]...)
	}
	return k
}
