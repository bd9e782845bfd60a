package desfire

import (
	"bytes"
	"crypto/aes"
	"testing"

	"github.com/stretchr/testify/require"
)

// miniCard is a minimal card side built only from this package's card-side
// functions: the four authentications, ChangeKey through OpenChangeKey and
// GetKeyVersion. It checks that the client and the exported card-side
// primitives agree; the full card is personalize/vcard.
type miniCard struct {
	t       *testing.T
	keys    map[byte]Key
	rnd     *bytes.Reader
	auth    AuthScheme
	keyNo   byte
	ev1     *EV1Session
	ev2     *EV2Session
	legacy  []byte
	pending func(data []byte) ([]byte, byte)
}

func (m *miniCard) Transmit(apdu []byte) ([]byte, error) {
	cmd, data, err := ParseCommandAPDU(apdu)
	require.NoError(m.t, err)
	out, st := m.handle(cmd, data)
	return append(out, 0x91, st), nil
}

func (m *miniCard) random(n int) []byte {
	b := make([]byte, n)
	_, err := m.rnd.Read(b)
	require.NoError(m.t, err)
	return b
}

func (m *miniCard) handle(cmd byte, data []byte) ([]byte, byte) {
	t := m.t
	if cmd == CmdAdditionalFrame && m.pending != nil {
		p := m.pending
		m.pending = nil
		return p(data)
	}
	switch cmd {
	case CmdAuthenticateEV2First, CmdAuthenticateAES, CmdAuthenticateLegacy, CmdAuthenticateISO:
		k := m.keys[data[0]].bytes()
		m.auth = AuthNone
		switch cmd {
		case CmdAuthenticateEV2First, CmdAuthenticateAES:
			b, err := aes.NewCipher(k)
			require.NoError(t, err)
			rndB := m.random(16)
			ek := cbcEncrypt(b, make([]byte, 16), rndB)
			m.pending = func(tok []byte) ([]byte, byte) {
				iv := make([]byte, 16)
				if cmd == CmdAuthenticateAES {
					iv = ek
				}
				pt := cbcDecrypt(b, iv, tok)
				if !bytes.Equal(pt[16:], rotl1(rndB)) {
					return nil, StatusAuthenticationError
				}
				rndA := pt[:16]
				m.keyNo = data[0]
				if cmd == CmdAuthenticateAES {
					s, err := NewEV1Session(EV1SessionKeyAES(rndA, rndB))
					require.NoError(t, err)
					m.auth, m.ev1 = AuthEV1, s
					return cbcEncrypt(b, tok[16:], rotl1(rndA)), StatusOK
				}
				ti := m.random(4)
				enc, mac, err := EV2SessionKeys(k, rndA, rndB)
				require.NoError(t, err)
				m.ev2, err = NewEV2Session(enc, mac, ti, 0)
				require.NoError(t, err)
				m.auth = AuthEV2
				return cbcEncrypt(b, make([]byte, 16), append(append(ti, rotl1(rndA)...), make([]byte, 12)...)), StatusOK
			}
			return ek, StatusMoreFrames
		default:
			rndB := m.random(8)
			var ek, iv []byte
			var err error
			if cmd == CmdAuthenticateLegacy {
				ek, err = LegacyEncipher(k, rndB)
			} else {
				ek, iv, err = ISOEncrypt(k, make([]byte, 8), rndB)
			}
			require.NoError(t, err)
			m.pending = func(tok []byte) ([]byte, byte) {
				var pt []byte
				if cmd == CmdAuthenticateLegacy {
					pt, err = LegacyReceive(k, tok)
				} else {
					pt, iv, err = ISODecrypt(k, iv, tok)
				}
				require.NoError(t, err)
				if !bytes.Equal(pt[8:], rotl1(rndB)) {
					return nil, StatusAuthenticationError
				}
				rndA := pt[:8]
				m.keyNo = data[0]
				sk := LegacySessionKey(k, rndA, rndB)
				if cmd == CmdAuthenticateLegacy {
					m.auth, m.legacy = AuthLegacy, sk
					out, err := LegacyEncipher(k, rotl1(rndA))
					require.NoError(t, err)
					return out, StatusOK
				}
				m.ev1, err = NewEV1SessionDES(sk)
				require.NoError(t, err)
				m.auth = AuthEV1
				out, _, err := ISOEncrypt(k, iv, rotl1(rndA))
				require.NoError(t, err)
				return out, StatusOK
			}
			return ek, StatusMoreFrames
		}
	case CmdChangeKey:
		wk, body := data[0], data[1:]
		same := wk&0x0F == m.keyNo
		var plain []byte
		var err error
		switch m.auth {
		case AuthEV2:
			plain, err = m.ev2.UnwrapCommand(cmd, data[:1], body, CommFull)
		case AuthEV1:
			plain, err = m.ev1.UnwrapCommand(cmd, data[:1], body, CommFull)
		case AuthLegacy:
			plain, err = LegacyReceive(m.legacy, body)
		default:
			return nil, StatusPermissionDenied
		}
		if err != nil {
			return nil, StatusIntegrityError
		}
		isAES := m.keys[wk&0x0F].Type() == KeyAES || wk&0x80 != 0
		nk, ver, err := OpenChangeKey(m.auth, wk, plain, 16, isAES, same, m.keys[wk&0x0F].bytes())
		if err != nil {
			return nil, StatusIntegrityError
		}
		if isAES {
			m.keys[wk&0x0F], err = NewAESKey(nk, ver)
		} else {
			m.keys[wk&0x0F], err = NewDESKey(nk)
		}
		require.NoError(t, err)
		if same {
			m.auth = AuthNone
			return nil, StatusOK
		}
		return m.respond(StatusOK, nil, CommMAC)
	case CmdGetKeyVersion:
		hdr := data[:1]
		switch m.auth {
		case AuthEV2:
			_, err := m.ev2.UnwrapCommand(cmd, hdr, data[1:], CommMAC)
			require.NoError(t, err)
		case AuthEV1:
			_, err := m.ev1.UnwrapCommand(cmd, hdr, data[1:], CommMAC)
			require.NoError(t, err)
		}
		return m.respond(StatusOK, []byte{m.keys[data[0]].Version()}, CommMAC)
	}
	return nil, StatusIllegalCommand
}

func (m *miniCard) respond(st byte, data []byte, mode CommMode) ([]byte, byte) {
	var out []byte
	var err error
	switch m.auth {
	case AuthEV2:
		out, err = m.ev2.WrapResponse(st, data, mode)
	case AuthEV1:
		out, err = m.ev1.WrapResponse(st, data, mode)
	default:
		out = data
	}
	require.NoError(m.t, err)
	return out, st
}

func TestClientAgainstCardPrimitives(t *testing.T) {
	des16, err := NewDESKey(mustHex(t, "00112233445566778899AABBCCDDEEFF"))
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		k0     Key
		auth   func(*Card, byte, Key) error
		scheme AuthScheme
	}{
		{"legacy-des", DefaultDESKey(), (*Card).AuthenticateLegacy, AuthLegacy},
		{"legacy-2k3des", des16, (*Card).AuthenticateLegacy, AuthLegacy},
		{"iso-des", DefaultDESKey(), (*Card).AuthenticateISO, AuthEV1},
		{"iso-2k3des", des16, (*Card).AuthenticateISO, AuthEV1},
		{"ev1-aes", aesKey(t, mustHex(t, "F0E1D2C3B4A5968778695A4B3C2D1E0F")), (*Card).AuthenticateAES, AuthEV1},
		{"ev2", aesKey(t, mustHex(t, "F0E1D2C3B4A5968778695A4B3C2D1E0F")), (*Card).AuthenticateEV2First, AuthEV2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k1old, err := NewAESKey(mustHex(t, "101112131415161718191A1B1C1D1E1F"), 3)
			require.NoError(t, err)
			if tc.k0.Type() != KeyAES {
				k1old = des16
			}
			m := &miniCard{t: t, keys: map[byte]Key{0: tc.k0, 1: k1old}, rnd: bytes.NewReader(bytes.Repeat(mustHex(t, "8899AABBCCDDEEFF0011223344556677"), 8))}
			c := New(m, WithRand(bytes.NewReader(bytes.Repeat(mustHex(t, "0123456789ABCDEF"), 16))))
			c.aid = 0x010203 // application level: no key type bits in ChangeKey
			require.NoError(t, tc.auth(c, 0, tc.k0))
			require.Equal(t, tc.scheme, c.Scheme())
			require.Equal(t, tc.scheme, m.auth)
			if tc.scheme == AuthLegacy {
				// Printing the client never shows the session key.
				for _, f := range []string{"%v", "%+v", "%#v"} {
					out := sprintf(f, c)
					require.NotContains(t, out, sprintf("%v", m.legacy)[1:20])
					require.NotContains(t, out, string(m.legacy[:6]))
				}
			}

			if tc.scheme != AuthLegacy {
				v, err := c.GetKeyVersion(1)
				require.NoError(t, err)
				require.Equal(t, k1old.Version(), v)
			}
			// Another key: XOR with the old key and CRC of the new one.
			k1new, err := NewAESKey(mustHex(t, "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"), 9)
			require.NoError(t, err)
			k0new, err := NewAESKey(mustHex(t, "B0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF"), 7)
			require.NoError(t, err)
			if tc.k0.Type() != KeyAES {
				// An application keeps one key type.
				k1new, err = NewDESKey(mustHex(t, "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"))
				require.NoError(t, err)
				k0new, err = NewDESKey(mustHex(t, "B0B1B2B3B4B5B6B7"))
				require.NoError(t, err)
			}
			require.NoError(t, c.ChangeKey(1, k1new, k1old))
			require.True(t, m.keys[1].Equal(k1new), "card got the new key 1")
			// The session's own key: the session ends.
			require.NoError(t, c.ChangeKey(0, k0new, Key{}))
			require.True(t, m.keys[0].Equal(k0new), "card got the new key 0")
			require.Equal(t, AuthNone, c.Scheme())
			_, err = c.GetCardUID()
			require.ErrorIs(t, err, ErrNotAuthenticated)
		})
	}
}

// TestPICCMasterKeyToAES checks the key number byte of the station's first
// change: AES type bits at the PICC level.
func TestPICCMasterKeyToAES(t *testing.T) {
	m := &miniCard{t: t, keys: map[byte]Key{0: DefaultDESKey()}, rnd: bytes.NewReader(bytes.Repeat([]byte{0x5A}, 64))}
	var sent []byte
	c := New(transmitFunc(func(apdu []byte) ([]byte, error) {
		sent = apdu
		return m.Transmit(apdu)
	}), WithRand(bytes.NewReader(bytes.Repeat([]byte{0x3C}, 64))))
	require.NoError(t, c.AuthenticateLegacy(0, DefaultDESKey()))
	picc, err := NewAESKey(mustHex(t, "00112233445566778899AABBCCDDEEFF"), 1)
	require.NoError(t, err)
	require.NoError(t, c.ChangeKey(0, picc, Key{}))
	require.Equal(t, byte(0x80), sent[5], "key number carries the AES type")
	require.Equal(t, 5+1+24+1, len(sent), "16-byte key, version, CRC16, padded to 24")
	require.True(t, m.keys[0].Equal(picc))
}
