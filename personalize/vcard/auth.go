package vcard

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"io"
	"slices"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// authState is an established authentication.
type authState struct {
	keyNo byte
	sess  session
	ev2   *desfire.EV2Session // EV2 authentications only, for NonFirst
}

// authPending is an authentication waiting for the reader's second frame.
type authPending struct {
	cmd    byte
	keyNo  byte
	key    cardKey
	rndB   []byte
	iv     []byte // running IV of 0x1A and 0xAA
	pcdCap []byte // EV2First: the reader's PCDcap2, padded to 6 bytes
	prev   *desfire.EV2Session
}

// authStart handles the first frame of the five authentication commands.
func (c *Card) authStart(cmd byte, data []byte) (byte, []byte) {
	prev := c.auth
	c.auth = nil
	if len(data) < 1 {
		return stLengthError, nil
	}
	keyNo := data[0]
	p := &authPending{cmd: cmd, keyNo: keyNo}
	switch cmd {
	case cmdAuthEV2First:
		if len(data) < 2 || len(data) != 2+int(data[1]) {
			return stLengthError, nil
		}
		p.pcdCap = make([]byte, 6)
		copy(p.pcdCap, data[2:])
	case cmdAuthEV2NonFirst:
		if len(data) != 1 {
			return stLengthError, nil
		}
		if prev == nil || prev.ev2 == nil {
			return stPermissionDenied, nil
		}
		p.prev = prev.ev2
	default:
		if len(data) != 1 {
			return stLengthError, nil
		}
	}
	k, st := c.keySlot(keyNo)
	if st != stOK {
		return st, nil
	}
	if c.sel == nil {
		keyNo = 0
	}
	p.keyNo = keyNo & 0x3F
	p.key = k.clone()
	switch cmd {
	case cmdAuthLegacy:
		if k.typ != keyDES {
			return stAuthError, nil
		}
	case cmdAuthISO:
		if k.typ == keyAES {
			return stAuthError, nil
		}
	default:
		if k.typ != keyAES {
			return stAuthError, nil
		}
	}
	n := 16
	if k.typ == keyDES {
		n = 8
	}
	p.rndB = make([]byte, n)
	if _, err := io.ReadFull(c.rand, p.rndB); err != nil {
		c.log.Error("vcard: random", "err", err)
		return stAuthError, nil
	}
	var out []byte
	var err error
	switch cmd {
	case cmdAuthLegacy:
		out, err = desfire.LegacyEncipher(k.value, p.rndB)
	case cmdAuthISO:
		out, p.iv, err = desfire.ISOEncrypt(k.value, make([]byte, 8), p.rndB)
	case cmdAuthAES:
		out, p.iv, err = aesCBC(k.value, make([]byte, 16), p.rndB, true)
	default:
		out, _, err = aesCBC(k.value, make([]byte, 16), p.rndB, true)
	}
	if err != nil {
		c.log.Error("vcard: authentication", "err", err)
		return stAuthError, nil
	}
	c.authStep = p
	return stAdditionalFrame, out
}

// authContinue handles the reader's answer: RndA || RndB rotated.
func (c *Card) authContinue(data []byte) (byte, []byte) {
	p := c.authStep
	c.authStep = nil
	n := len(p.rndB)
	if len(data) != 2*n {
		return stLengthError, nil
	}
	var pt []byte
	var err error
	switch p.cmd {
	case cmdAuthLegacy:
		pt, err = desfire.LegacyReceive(p.key.value, data)
	case cmdAuthISO:
		pt, p.iv, err = desfire.ISODecrypt(p.key.value, p.iv, data)
	case cmdAuthAES:
		pt, p.iv, err = aesCBC(p.key.value, p.iv, data, false)
	default:
		pt, _, err = aesCBC(p.key.value, make([]byte, 16), data, false)
	}
	if err != nil {
		return stAuthError, nil
	}
	rndA, rndBr := pt[:n], pt[n:]
	if subtle.ConstantTimeCompare(rndBr, rotl(p.rndB)) != 1 {
		return stAuthError, nil
	}
	st := &authState{keyNo: p.keyNo}
	var out []byte
	switch p.cmd {
	case cmdAuthLegacy:
		out, err = desfire.LegacyEncipher(p.key.value, rotl(rndA))
		st.sess = legacySession{key: desfire.LegacySessionKey(p.key.value, rndA, p.rndB)}
	case cmdAuthISO:
		out, _, err = desfire.ISOEncrypt(p.key.value, p.iv, rotl(rndA))
		st.sess, err = isoSession(p.key, rndA, p.rndB, err)
	case cmdAuthAES:
		out, _, err = aesCBC(p.key.value, p.iv, rotl(rndA), true)
		var s *desfire.EV1Session
		if err == nil {
			s, err = desfire.NewEV1Session(desfire.EV1SessionKeyAES(rndA, p.rndB))
		}
		st.sess = ev1Session{s: s, bs: 16}
	case cmdAuthEV2First:
		ti := make([]byte, 4)
		if _, err = io.ReadFull(c.rand, ti); err == nil {
			msg := slices.Concat(ti, rotl(rndA), make([]byte, 6), p.pcdCap)
			out, _, err = aesCBC(p.key.value, make([]byte, 16), msg, true)
		}
		if err == nil {
			st.ev2, err = ev2Session(p.key.value, rndA, p.rndB, ti, 0)
		}
		st.sess = ev2Adapter{st.ev2}
	case cmdAuthEV2NonFirst:
		out, _, err = aesCBC(p.key.value, make([]byte, 16), rotl(rndA), true)
		if err == nil {
			st.ev2, err = ev2Session(p.key.value, rndA, p.rndB, p.prev.TI(), p.prev.CmdCtr())
		}
		st.sess = ev2Adapter{st.ev2}
	}
	if err != nil {
		c.log.Error("vcard: authentication", "err", err)
		return stAuthError, nil
	}
	c.auth = st
	return stOK, out
}

// ev2Session derives the EV2 session keys and starts secure messaging.
func ev2Session(key, rndA, rndB, ti []byte, ctr uint16) (*desfire.EV2Session, error) {
	enc, mac, err := desfire.EV2SessionKeys(key, rndA, rndB)
	if err != nil {
		return nil, err
	}
	return desfire.NewEV2Session(enc, mac, ti, ctr)
}

// rotl rotates left by one byte.
func rotl(b []byte) []byte { return append(slices.Clone(b[1:]), b[0]) }

// aesCBC encrypts or decrypts whole blocks from iv and returns the result
// and the next IV (the last ciphertext block).
func aesCBC(key, iv, data []byte, encrypt bool) (out, next []byte, err error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	if len(data) == 0 || len(data)%16 != 0 {
		return nil, nil, errIntegrity
	}
	out = make([]byte, len(data))
	if encrypt {
		cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, data)
		return out, slices.Clone(out[len(out)-16:]), nil
	}
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, data)
	return out, slices.Clone(data[len(data)-16:]), nil
}
