package desfire_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// cardLink adapts the virtual card to the client's Transmitter.
type cardLink struct{ c *vcard.Card }

func (l cardLink) Transmit(apdu []byte) ([]byte, error) { return l.c.Transmit(apdu), nil }

func newVCard(t *testing.T) (*vcard.Card, *desfire.Card) {
	t.Helper()
	uid := []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}
	vc, err := vcard.New(vcard.Options{UID: uid})
	require.NoError(t, err)
	return vc, desfire.New(cardLink{vc})
}

func key(t *testing.T, b byte, version byte) desfire.Key {
	t.Helper()
	k, err := desfire.NewAESKey(bytes.Repeat([]byte{b}, 16), version)
	require.NoError(t, err)
	return k
}

type authFunc func(c *desfire.Card, keyNo byte, k desfire.Key) error

var authSchemes = []struct {
	name string
	auth authFunc
}{
	{"ev2", (*desfire.Card).AuthenticateEV2First},
	{"ev1-aes", (*desfire.Card).AuthenticateAES},
}

// personalizeBlank takes a factory card to an AES PICC master key the way
// the station does, with legacy or ISO authentication.
func personalizeBlank(t *testing.T, c *desfire.Card, iso bool, picc desfire.Key) {
	t.Helper()
	if iso {
		require.NoError(t, c.AuthenticateISO(0, desfire.DefaultDESKey()))
	} else {
		require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	}
	ks, err := c.GetKeySettings()
	require.NoError(t, err)
	require.Equal(t, desfire.KeyDES, ks.KeyType)
	require.Equal(t, 1, ks.MaxKeys)
	require.NoError(t, c.ChangeKey(0, picc, desfire.Key{}))
	require.Equal(t, desfire.AuthNone, c.Scheme(), "changing the session key ends the session")
}

func TestVCardRoundTrip(t *testing.T) {
	for _, blankISO := range []bool{false, true} {
		for _, s := range authSchemes {
			name := s.name + "/legacy"
			if blankISO {
				name = s.name + "/iso"
			}
			t.Run(name, func(t *testing.T) {
				_, c := newVCard(t)
				picc := key(t, 0xA0, 1)
				personalizeBlank(t, c, blankISO, picc)
				require.Error(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()), "old DES key must be gone")

				require.NoError(t, s.auth(c, 0, picc))
				ks, err := c.GetKeySettings()
				require.NoError(t, err)
				require.Equal(t, desfire.KeyAES, ks.KeyType)
				uid, err := c.GetCardUID()
				require.NoError(t, err)
				require.Equal(t, []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}, uid)
				v, err := c.GetVersion()
				require.NoError(t, err)
				require.Equal(t, uid, v.UID[:])
				kv, err := c.GetKeyVersion(0)
				require.NoError(t, err)
				require.Equal(t, byte(1), kv)

				const aid desfire.AID = 0x563412
				require.NoError(t, c.CreateApplication(aid, 0x0B, 4, desfire.KeyAES))
				aids, err := c.GetApplicationIDs()
				require.NoError(t, err)
				require.Equal(t, []desfire.AID{aid}, aids)
				free, err := c.GetFreeMemory()
				require.NoError(t, err)
				require.Positive(t, free)

				require.NoError(t, c.SelectApplication(aid))
				zero := key(t, 0, 0)
				require.NoError(t, s.auth(c, 0, zero))
				keys := []desfire.Key{key(t, 0xB0, 2), key(t, 0xB1, 3), key(t, 0xB2, 4), key(t, 0xB3, 5)}
				for i := 1; i < 4; i++ {
					require.NoError(t, c.ChangeKey(byte(i), keys[i], zero), "key %d", i)
				}
				require.NoError(t, c.ChangeKey(0, keys[0], desfire.Key{}))
				require.NoError(t, s.auth(c, 0, keys[0]))

				rights := desfire.AccessRights{Read: 3, Write: 0, ReadWrite: 0, Change: 0}
				require.NoError(t, c.CreateStdDataFile(1, desfire.CommMAC, rights, 64))
				require.NoError(t, c.CreateValueFile(2, desfire.CommFull, desfire.AccessRights{Read: 1, Write: 1, ReadWrite: 2, Change: 0}, 0, 100000, 0, true))
				require.NoError(t, c.CreateBackupDataFile(3, desfire.CommFull, desfire.AccessRights{Read: 1, Write: 1, ReadWrite: 1, Change: 0}, 32))
				require.NoError(t, c.CreateCyclicRecordFile(4, desfire.CommFull, desfire.AccessRights{Read: 1, Write: 1, ReadWrite: 1, Change: 0}, 16, 5))
				ids, err := c.GetFileIDs()
				require.NoError(t, err)
				require.Equal(t, []byte{1, 2, 3, 4}, ids)
				fs, err := c.GetFileSettings(2)
				require.NoError(t, err)
				require.Equal(t, desfire.FileValue, fs.Type)
				require.Equal(t, desfire.CommFull, fs.Comm)
				require.Equal(t, int32(100000), fs.Upper)

				require.NoError(t, s.auth(c, 0, keys[0]))
				info := bytes.Repeat([]byte("loopcard"), 8)
				require.NoError(t, c.WriteData(1, 0, info, desfire.CommMAC))
				require.NoError(t, c.ChangeKeySettings(0x0B))

				// Top up with key 2, then debit with key 1 in one transaction.
				require.NoError(t, s.auth(c, 2, keys[2]))
				require.NoError(t, c.Credit(2, 2500, desfire.CommFull))
				require.NoError(t, c.CommitTransaction())
				require.NoError(t, s.auth(c, 1, keys[1]))
				val, err := c.GetValue(2, desfire.CommFull)
				require.NoError(t, err)
				require.Equal(t, int32(2500), val)
				require.NoError(t, c.Debit(2, 700, desfire.CommFull))
				require.NoError(t, c.WriteData(3, 0, []byte{0, 0, 0, 1}, desfire.CommFull))
				rec := []byte("terminal-1 seq01")
				require.NoError(t, c.WriteRecord(4, 0, rec, desfire.CommFull))
				require.NoError(t, c.CommitTransaction())
				val, err = c.GetValue(2, desfire.CommFull)
				require.NoError(t, err)
				require.Equal(t, int32(1800), val)
				got, err := c.ReadRecords(4, 0, 1, 16, desfire.CommFull)
				require.NoError(t, err)
				require.Equal(t, rec, got)
				seq, err := c.ReadData(3, 0, 4, desfire.CommFull)
				require.NoError(t, err)
				require.Equal(t, []byte{0, 0, 0, 1}, seq)

				// An aborted debit leaves the value alone.
				require.NoError(t, c.Debit(2, 100, desfire.CommFull))
				require.NoError(t, c.AbortTransaction())
				val, err = c.GetValue(2, desfire.CommFull)
				require.NoError(t, err)
				require.Equal(t, int32(1800), val)
				require.NoError(t, c.LimitedCredit(2, 100, desfire.CommFull))
				require.NoError(t, c.CommitTransaction())

				// Key 3 reads the card info; key 1 may not write it.
				require.NoError(t, s.auth(c, 3, keys[3]))
				got, err = c.ReadData(1, 0, 64, desfire.CommMAC)
				require.NoError(t, err)
				require.Equal(t, info, got)
				require.NoError(t, s.auth(c, 1, keys[1]))
				err = c.WriteData(1, 0, []byte{1}, desfire.CommMAC)
				require.ErrorIs(t, err, desfire.ErrPermissionDenied)
				require.Equal(t, desfire.AuthNone, c.Scheme())
				require.ErrorIs(t, s.auth(c, 1, keys[2]), desfire.ErrAuthentication)
			})
		}
	}
}

func TestVCardEV2NonFirst(t *testing.T) {
	_, c := newVCard(t)
	picc := key(t, 0xA0, 1)
	personalizeBlank(t, c, false, picc)
	require.NoError(t, c.AuthenticateEV2First(0, picc))
	_, err := c.GetKeySettings()
	require.NoError(t, err)
	ti, ctr := c.EV2().TI(), c.EV2().CmdCtr()
	require.Equal(t, uint16(1), ctr)
	require.NoError(t, c.AuthenticateEV2NonFirst(0, picc))
	require.Equal(t, ti, c.EV2().TI())
	require.Equal(t, ctr, c.EV2().CmdCtr())
	_, err = c.GetCardUID()
	require.NoError(t, err)
	require.Equal(t, ctr+1, c.EV2().CmdCtr())
}

func TestVCardFormatPICC(t *testing.T) {
	_, c := newVCard(t)
	picc := key(t, 0xA0, 1)
	personalizeBlank(t, c, false, picc)
	require.NoError(t, c.AuthenticateEV2First(0, picc))
	require.NoError(t, c.CreateApplication(0x010203, 0x0F, 2, desfire.KeyAES))
	require.NoError(t, c.DeleteApplication(0x010203))
	require.NoError(t, c.CreateApplication(0x010204, 0x0F, 2, desfire.KeyAES))
	require.NoError(t, c.SelectApplication(0x010204))
	require.NoError(t, c.AuthenticateEV2First(0, key(t, 0, 0)))
	ar := desfire.AccessRights{Read: 1, Write: 1, ReadWrite: 1, Change: 0}
	require.NoError(t, c.CreateLinearRecordFile(5, desfire.CommMAC, ar, 8, 2))
	fs, err := c.GetFileSettings(5)
	require.NoError(t, err)
	require.Equal(t, desfire.FileLinearRecord, fs.Type)
	require.Equal(t, 2, fs.MaxRecords)
	require.NoError(t, c.DeleteFile(5))
	ids, err := c.GetFileIDs()
	require.NoError(t, err)
	require.Empty(t, ids)
	_, err = c.GetFileSettings(5)
	require.ErrorIs(t, err, desfire.ErrFileNotFound)
	require.NoError(t, c.SelectApplication(0))
	require.NoError(t, c.AuthenticateEV2First(0, picc))
	require.NoError(t, c.FormatPICC())
	aids, err := c.GetApplicationIDs()
	require.NoError(t, err)
	require.Empty(t, aids)
	require.NoError(t, c.SetConfiguration(desfire.ConfigPICC, []byte{0x00}))
}
