package desfire

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseCommandAPDU(t *testing.T) {
	for _, tc := range []struct {
		name string
		apdu string
		cmd  byte
		data string
		err  error
	}{
		{"case 1", "90600000", CmdGetVersion, "", nil},
		{"case 2", "9060000000", CmdGetVersion, "", nil},
		{"case 3", "905A000003563412", CmdSelectApplication, "563412", nil},
		{"case 4", "905A00000356341200", CmdSelectApplication, "563412", nil},
		{"not native", "00A4040000", 0, "", ErrMalformed},
		{"P1 set", "905A010003563412", 0, "", ErrMalformed},
		{"Lc too long", "905A000004563412", 0, "", ErrMalformed},
		{"Lc too short", "905A0000025634120000", 0, "", ErrMalformed},
		{"short", "905A", 0, "", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, data, err := ParseCommandAPDU(mustHex(t, tc.apdu))
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.cmd, cmd)
			require.Equal(t, mustHex(t, tc.data), nonNil(data))
		})
	}
	long := make([]byte, 256)
	_, err := buildAPDU(CmdWriteData, long)
	require.ErrorIs(t, err, ErrMalformed)
}

func TestParseFileSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want FileSettings
		err  error
	}{
		{"standard short", "0003E1340000", FileSettings{}, ErrMalformed},
		{"standard ok", "0003E134000001", FileSettings{Type: FileStandard, Comm: CommFull, Access: AccessRights{Read: 3, Write: 4, ReadWrite: 0xE, Change: 1}, Size: 0x10000}, nil},
		{"backup mac", "01013022200000", FileSettings{Type: FileBackup, Comm: CommMAC, Access: AccessRights{Read: 2, Write: 2, ReadWrite: 3, Change: 0}, Size: 32}, nil},
		{"value", "0203103200000000102700006400000001", FileSettings{Type: FileValue, Comm: CommFull, Access: AccessRights{Read: 3, Write: 2, ReadWrite: 1, Change: 0}, Upper: 10000, LimitedCredit: 100, LimitedCreditEnabled: true}, nil},
		{"cyclic", "04001032100000050000030000", FileSettings{Type: FileCyclicRecord, Comm: CommPlain, Access: AccessRights{Read: 3, Write: 2, ReadWrite: 1, Change: 0}, RecordSize: 16, MaxRecords: 5, Records: 3}, nil},
		{"linear short", "030010321000000500", FileSettings{}, ErrMalformed},
		{"unknown type", "05001032", FileSettings{}, ErrUnsupported},
		{"empty", "", FileSettings{}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustHex(t, tc.in)
			fs, err := ParseFileSettings(b)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, fs)
		})
	}
}

func TestParseSmallAnswers(t *testing.T) {
	ks, err := ParseKeySettings([]byte{0x0B, 0x84})
	require.NoError(t, err)
	require.Equal(t, KeySettings{Settings: 0x0B, MaxKeys: 4, KeyType: KeyAES}, ks)
	ks, err = ParseKeySettings([]byte{0x0F, 0x01})
	require.NoError(t, err)
	require.Equal(t, KeyDES, ks.KeyType)
	ks, err = ParseKeySettings([]byte{0x0F, 0x41})
	require.NoError(t, err)
	require.Equal(t, Key3K3DES, ks.KeyType)
	_, err = ParseKeySettings([]byte{0x0F, 0xC1})
	require.ErrorIs(t, err, ErrUnsupported)
	_, err = ParseKeySettings([]byte{0x0F})
	require.ErrorIs(t, err, ErrMalformed)

	aids, err := ParseAIDs(mustHex(t, "563412010000"))
	require.NoError(t, err)
	require.Equal(t, []AID{0x123456, 0x000001}, aids)
	_, err = ParseAIDs([]byte{1, 2})
	require.ErrorIs(t, err, ErrMalformed)

	_, err = ParseVersion(make([]byte, 27))
	require.ErrorIs(t, err, ErrMalformed)
	v, err := ParseVersion(mustHex(t, "04010112001A05"+"04010112001A05"+"04112233445566"+"BA7C4A5C30"+"2519"))
	require.NoError(t, err)
	require.Equal(t, [7]byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}, v.UID)
	require.Equal(t, byte(0x19), v.ProductionYear)
}

func TestKeys(t *testing.T) {
	_, err := NewAESKey(make([]byte, 15), 0)
	require.ErrorIs(t, err, ErrMalformed)
	_, err = NewDESKey(make([]byte, 25))
	require.ErrorIs(t, err, ErrMalformed)
	var none Key
	require.False(t, none.Valid())
	require.Zero(t, none.Type())
	require.True(t, none.Equal(Key{}))

	a, err := NewAESKey(mustHex(t, "00112233445566778899AABBCCDDEEFF"), 1)
	require.NoError(t, err)
	b, err := NewAESKey(mustHex(t, "00112233445566778899AABBCCDDEEFF"), 2)
	require.NoError(t, err)
	require.False(t, a.Equal(b), "versions differ")
	require.False(t, a.Equal(none))
	d8, err := NewDESKey(mustHex(t, "0011223344556677"))
	require.NoError(t, err)
	require.Equal(t, KeyDES, d8.Type())
	d16, err := NewDESKey(mustHex(t, "00112233445566770011223344556677"))
	require.NoError(t, err)
	require.True(t, d8.Equal(d16), "8-byte DES equals 16-byte key with equal halves")
	require.Equal(t, Key2K3DES, must(NewDESKey(mustHex(t, "00112233445566778899AABBCCDDEEFF"))).Type())
	require.Equal(t, KeyDES, DefaultDESKey().Type())

	src := mustHex(t, "00112233445566778899AABBCCDDEEFF")
	c, err := NewAESKey(src, 0)
	require.NoError(t, err)
	src[0] = 0xFF
	require.Equal(t, byte(0x00), c.bytes()[0], "key bytes are copied in")
	c.Wipe()
	require.Equal(t, make([]byte, 16), c.bytes())
	require.Zero(t, c.Type())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
