package desfire_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// TestLegacySessionCommands runs, after AuthenticateLegacy with DES and
// 2K3DES keys, the commands a legacy session enciphers (ChangeKeySettings,
// SetConfiguration, GetCardUID) and file data in every mode at every length
// from 1 to 40 bytes: the CRC16 of legacy secure messaging has no final XOR,
// so a card that searched for the data length instead of taking it from the
// command failed on most lengths (issue 18).
func TestLegacySessionCommands(t *testing.T) {
	des2k, err := desfire.NewDESKey([]byte("0123456789ABCDEF"))
	require.NoError(t, err)
	for _, k := range []struct {
		name string
		key  desfire.Key
	}{{"des", desfire.DefaultDESKey()}, {"2k3des", des2k}} {
		t.Run(k.name, func(t *testing.T) {
			_, c := newVCard(t)
			require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
			if k.name != "des" {
				require.NoError(t, c.ChangeKey(0, k.key, desfire.Key{}))
				require.NoError(t, c.AuthenticateLegacy(0, k.key))
			}
			require.NoError(t, c.ChangeKeySettings(0x0F), "ChangeKeySettings is enciphered after a legacy login")
			uid, err := c.GetCardUID()
			require.NoError(t, err)
			require.Equal(t, []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}, uid)
			require.NoError(t, c.SetConfiguration(desfire.ConfigPICC, []byte{0x00}))

			const aid desfire.AID = 0x010203
			require.NoError(t, c.CreateApplication(aid, 0x0F, 2, desfire.KeyDES))
			require.NoError(t, c.SelectApplication(aid))
			require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
			rights := desfire.AccessRights{Read: 0, Write: 0, ReadWrite: 0, Change: 0}
			for i, mode := range []desfire.CommMode{desfire.CommPlain, desfire.CommMAC, desfire.CommFull} {
				require.NoError(t, c.CreateStdDataFile(byte(i+1), mode, rights, 64))
			}
			for i, mode := range []desfire.CommMode{desfire.CommPlain, desfire.CommMAC, desfire.CommFull} {
				for n := 1; n <= 40; n++ {
					data := make([]byte, n) // zeros end the data: the ambiguous case
					for j := 0; j < n-1; j++ {
						data[j] = byte(j*7 + n)
					}
					require.NoError(t, c.WriteData(byte(i+1), 3, data, mode), "%v write of %d bytes", mode, n)
					got, err := c.ReadData(byte(i+1), 3, n, mode)
					require.NoError(t, err, "%v read of %d bytes", mode, n)
					require.True(t, bytes.Equal(data, got), "%v %d bytes", mode, n)
				}
			}
			require.NoError(t, c.CreateValueFile(5, desfire.CommFull, rights, 0, 1000, 0, false))
			require.NoError(t, c.Credit(5, 250, desfire.CommFull))
			require.NoError(t, c.CommitTransaction())
			v, err := c.GetValue(5, desfire.CommFull)
			require.NoError(t, err)
			require.Equal(t, int32(250), v)
		})
	}
}

// TestISO3K3DES takes the PICC master key to 3K3DES and authenticates with
// it: 16-byte randoms and a 24-byte session key (NXP MF3D(H)x3 data sheet,
// AuthenticateISO).
func TestISO3K3DES(t *testing.T) {
	_, c := newVCard(t)
	k3, err := desfire.NewDESKey([]byte("0123456789ABCDEFGHIJKLMN"))
	require.NoError(t, err)
	require.Equal(t, desfire.Key3K3DES, k3.Type())
	require.NoError(t, c.AuthenticateISO(0, desfire.DefaultDESKey()))
	require.NoError(t, c.ChangeKey(0, k3, desfire.Key{}))
	require.Error(t, c.AuthenticateISO(0, desfire.DefaultDESKey()))
	require.NoError(t, c.AuthenticateISO(0, k3))
	ks, err := c.GetKeySettings()
	require.NoError(t, err)
	require.Equal(t, desfire.Key3K3DES, ks.KeyType)
	require.NoError(t, c.ChangeKeySettings(0x0F))
	const aid desfire.AID = 0x0A0B0C
	require.NoError(t, c.CreateApplication(aid, 0x0F, 1, desfire.Key3K3DES))
	require.NoError(t, c.SelectApplication(aid))
	zero, err := desfire.NewDESKey(make([]byte, 24))
	require.NoError(t, err)
	require.NoError(t, c.AuthenticateISO(0, zero))
	require.NoError(t, c.CreateStdDataFile(1, desfire.CommFull, desfire.AccessRights{}, 32))
	require.NoError(t, c.WriteData(1, 0, []byte("three-key"), desfire.CommFull))
	got, err := c.ReadData(1, 0, 9, desfire.CommFull)
	require.NoError(t, err)
	require.Equal(t, []byte("three-key"), got)
}
