package desfire_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// TestISO7816 creates an application with an ISO DF (file identifier and
// name, as libfreefare's mifare-desfire-create-ndef does) and reaches it
// with ISO/IEC 7816-4 commands: SELECT by DF name and by file identifier,
// READ/UPDATE BINARY with the file's rights, READ RECORD, and ISO
// authentication with GET CHALLENGE, EXTERNAL and INTERNAL AUTHENTICATE with
// every key type (MF3D(H)x3 data sheet, "ISO/IEC 7816-4 commands"). Before
// issue 18 the card answered 6D 00 to every CLA 00 command and dropped the
// ISO file identifiers.
func TestISO7816(t *testing.T) {
	vc, c := newVCard(t)
	require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	ndefName := []byte{0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01}
	const aid desfire.AID = 0x000001
	require.NoError(t, c.CreateApplicationISO(aid, 0x0F, 3, desfire.KeyAES, 0xE110, ndefName))
	require.ErrorIs(t, c.CreateApplicationISO(0x000002, 0x0F, 1, desfire.KeyAES, 0xE110, nil), desfire.ErrDuplicate)
	require.NoError(t, c.SelectApplication(aid))
	zero, err := desfire.NewAESKey(make([]byte, 16), 0)
	require.NoError(t, err)
	k1, k2 := key(t, 0x11, 1), key(t, 0x22, 2)
	require.NoError(t, c.AuthenticateAES(0, zero))
	require.NoError(t, c.ChangeKey(1, k1, zero))
	require.NoError(t, c.ChangeKey(2, k2, zero))
	free := desfire.AccessRights{Read: desfire.AccessFree, Write: 0, ReadWrite: 0, Change: 0}
	require.NoError(t, c.CreateStdDataFileISO(1, 0xE103, desfire.CommPlain, free, 15))
	locked := desfire.AccessRights{Read: 1, Write: 1, ReadWrite: 1, Change: 0}
	require.NoError(t, c.CreateStdDataFileISO(2, 0xE104, desfire.CommMAC, locked, 40))
	require.NoError(t, c.CreateStdDataFileISO(3, 0xE105, desfire.CommFull, locked, 40))
	require.NoError(t, c.CreateLinearRecordFileISO(4, 0xE106, desfire.CommPlain, free, 4, 3))
	require.ErrorIs(t, c.CreateStdDataFileISO(5, 0xE103, desfire.CommPlain, free, 8), desfire.ErrDuplicate)
	require.NoError(t, c.AuthenticateAES(0, zero), "the error ended the session")
	require.NoError(t, c.WriteData(1, 0, []byte{0x00, 0x0F, 0x20, 0x00, 0x3B, 0x00, 0x34, 0x04, 0x06, 0xE1, 0x04, 0x00, 0x80, 0x00, 0x00}, desfire.CommPlain))
	for i := range 2 {
		require.NoError(t, c.WriteRecord(4, 0, []byte{byte(i), 0xAA, 0xBB, 0xCC}, desfire.CommPlain))
		require.NoError(t, c.CommitTransaction())
	}

	// SELECT by DF name and by file identifier, then READ BINARY.
	require.NoError(t, c.SelectDFName(desfire.PICCDFName))
	require.NoError(t, c.SelectDFName(ndefName))
	require.NoError(t, c.SelectFileID(0xE103))
	cc, err := c.ReadBinary(0, 0, 15, desfire.CommPlain)
	require.NoError(t, err)
	require.Equal(t, byte(0x20), cc[2])
	require.ErrorIs(t, c.SelectFileID(0xE1FF), &desfire.ISOStatusError{SW: desfire.SWFileNotFound})
	require.ErrorIs(t, c.SelectDFName([]byte("nothing")), &desfire.ISOStatusError{SW: desfire.SWFileNotFound})
	require.NoError(t, c.SelectFileID(0x3F00))
	require.NoError(t, c.SelectFileID(0xE110))

	// The free file can be written by key 0 only; the locked one is 69 82.
	_, err = c.ReadBinary(2, 0, 8, desfire.CommMAC)
	require.ErrorIs(t, err, &desfire.ISOStatusError{SW: desfire.SWSecurityStatus})
	require.ErrorIs(t, c.UpdateBinary(1, 0, []byte{1}, desfire.CommPlain), &desfire.ISOStatusError{SW: desfire.SWSecurityStatus})

	// Records: 1 is the oldest record of a linear file.
	r, err := c.ReadRecord(4, 1, 4, desfire.CommPlain)
	require.NoError(t, err)
	require.Equal(t, []byte{0, 0xAA, 0xBB, 0xCC}, r)
	r, err = c.ReadRecord(4, 2, 4, desfire.CommPlain)
	require.NoError(t, err)
	require.Equal(t, byte(1), r[0])
	_, err = c.ReadRecord(4, 3, 4, desfire.CommPlain)
	require.ErrorIs(t, err, &desfire.ISOStatusError{SW: desfire.SWRecordNotFound})
	_, err = c.ReadBinary(4, 0, 4, desfire.CommPlain)
	require.ErrorIs(t, err, &desfire.ISOStatusError{SW: desfire.SWWrongFileType})

	// ISO authentication, then the MAC and full files through ISO commands
	// with EV1 secure messaging, and native commands in the same session.
	require.Error(t, c.AuthenticateISO7816(1, k2), "wrong key")
	require.NoError(t, c.AuthenticateISO7816(1, k1))
	data := bytes.Repeat([]byte("iso7816-"), 5)
	require.NoError(t, c.UpdateBinary(2, 0, data, desfire.CommMAC))
	got, err := c.ReadBinary(2, 0, 40, desfire.CommMAC)
	require.NoError(t, err)
	require.Equal(t, data, got)
	require.NoError(t, c.UpdateBinary(3, 3, data[:20], desfire.CommFull))
	got, err = c.ReadBinary(3, 3, 20, desfire.CommFull)
	require.NoError(t, err)
	require.Equal(t, data[:20], got)
	got, err = c.ReadData(3, 3, 20, desfire.CommFull)
	require.NoError(t, err, "a native command in the session ISO authentication opened")
	require.Equal(t, data[:20], got)

	// ISO authentication with DES and 3K3DES keys at the PICC level.
	require.NoError(t, c.SelectDFName(desfire.PICCDFName))
	require.NoError(t, c.AuthenticateISO7816(0, desfire.DefaultDESKey()))
	k3, err := desfire.NewDESKey([]byte("0123456789ABCDEFGHIJKLMN"))
	require.NoError(t, err)
	require.NoError(t, c.ChangeKey(0, k3, desfire.Key{}))
	require.NoError(t, c.AuthenticateISO7816(0, k3))
	ks, err := c.GetKeySettings()
	require.NoError(t, err)
	require.Equal(t, desfire.Key3K3DES, ks.KeyType)

	// What the card does not implement is refused as a real card does.
	resp := vc.Transmit([]byte{0x00, 0xE2, 0x00, 0x00, 0x01, 0x00})
	require.Equal(t, []byte{0x6D, 0x00}, resp, "APPEND RECORD is not modelled")
	resp = vc.Transmit([]byte{0x00, 0x82, 0x00, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0})
	require.Equal(t, []byte{0x69, 0x85}, resp, "EXTERNAL AUTHENTICATE without GET CHALLENGE")
}
