package vcard_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// TestSetConfiguration checks the three options of SetConfiguration and
// their effects, after a legacy login (enciphered with a CRC16) and after an
// EV2 login (MF3D(H)x3 data sheet, SetConfiguration; libfreefare's
// mifare-desfire-ev1-configure-* tools send these). Before issue 18 option 00
// was refused in a legacy session, option 01 was accepted and did nothing
// and option 02 was a parameter error.
func TestSetConfiguration(t *testing.T) {
	uid := []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}
	for _, scheme := range []string{"legacy", "ev2"} {
		t.Run(scheme, func(t *testing.T) {
			vc := newCard(t, vcard.Options{UID: uid})
			c := desfire.New(link{vc})
			login := func() {
				t.Helper()
				if scheme == "legacy" {
					require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
					return
				}
				require.NoError(t, c.AuthenticateEV2First(0, piccAES(t)))
			}
			if scheme == "ev2" {
				require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
				require.NoError(t, c.ChangeKey(0, piccAES(t), desfire.Key{}))
			}
			require.Error(t, c.SetConfiguration(desfire.ConfigPICC, []byte{0x01}), "needs authentication")
			login()

			// Option 01: the keys of new applications.
			dk := bytes.Repeat([]byte{0x5A}, 24)
			require.NoError(t, c.SetConfiguration(desfire.ConfigDefault, append(dk, 0x07)))
			require.NoError(t, c.CreateApplication(0x123456, 0x0F, 2, desfire.KeyAES))
			require.NoError(t, c.SelectApplication(0x123456))
			aesDefault, err := desfire.NewAESKey(dk[:16], 0x07)
			require.NoError(t, err)
			require.NoError(t, c.AuthenticateAES(1, aesDefault), "a new application key is the default key")
			kv, err := c.GetKeyVersion(1)
			require.NoError(t, err)
			require.Equal(t, byte(0x07), kv)
			require.NoError(t, c.SelectApplication(0))
			login()

			// Option 02: the ATS, seen in the ATR after the next activation.
			require.Equal(t, []byte{0x3B, 0x81, 0x80, 0x01, 0x80, 0x80}, vc.ATR())
			require.NoError(t, c.SetConfiguration(desfire.ConfigATS, []byte{0x08, 0x75, 0x77, 0x81, 0x02, 0x4C, 0x43, 0x80}))
			vc.PowerOff()
			vc.PowerOn()
			require.Equal(t, []byte{0x3B, 0x83, 0x80, 0x01, 0x4C, 0x43, 0x80, 0x83 ^ 0x80 ^ 0x01 ^ 0x4C ^ 0x43 ^ 0x80}, vc.ATR())
			c = desfire.New(link{vc})
			login()
			require.Error(t, c.SetConfiguration(desfire.ConfigATS, []byte{0x09, 0x75}), "TL must be the ATS length")
			login()

			// Option 00: random UID and format disabled, for good.
			require.NoError(t, c.SetConfiguration(desfire.ConfigPICC, []byte{0x03}))
			vc.PowerOff()
			vc.PowerOn()
			require.Len(t, vc.UID(), 4)
			require.Equal(t, byte(0x08), vc.UID()[0])
			c = desfire.New(link{vc})
			v, err := c.GetVersion()
			require.NoError(t, err)
			require.Equal(t, [7]byte{}, v.UID, "GetVersion hides the UID")
			login()
			got, err := c.GetCardUID()
			require.NoError(t, err)
			require.Equal(t, uid, got)
			require.ErrorIs(t, c.FormatPICC(), desfire.ErrPermissionDenied)
		})
	}
}

func piccAES(t *testing.T) desfire.Key {
	k, err := desfire.NewAESKey(bytes.Repeat([]byte{0xA5}, 16), 1)
	require.NoError(t, err)
	return k
}
