package vcard_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// Test keys: none is all zeros.
var (
	appKeys = [][]byte{
		unhexS("00112233445566778899AABBCCDDEEFF"),
		unhexS("A1A2A3A4A5A6A7A8A9AAABACADAEAFA0"),
		unhexS("B1B2B3B4B5B6B7B8B9BABBBCBDBEBFB0"),
		unhexS("C1C2C3C4C5C6C7C8C9CACBCCCDCECFC0"),
	}
	rndA = unhexS("0123456789ABCDEF0123456789ABCDEF")
)

func unhexS(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		b[i] = fromHex(s[2*i])<<4 | fromHex(s[2*i+1])
	}
	return b
}

func fromHex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

const testAID = 0x563412

// access encodes access rights as the two bytes of the file commands.
func access(read, write, rw, change byte) []byte {
	return []byte{rw<<4 | change, read<<4 | write}
}

// auth authenticates with the given session kind.
func (x *client) auth(kind string, keyNo byte) byte {
	x.t.Helper()
	if kind == "ev1" {
		return x.authAES(keyNo, appKeys[keyNo], rndA)
	}
	return x.authEV2(true, keyNo, appKeys[keyNo], rndA)
}

func crcLE(dst, data []byte) []byte {
	c := desfire.CRC32(data)
	return append(dst, byte(c), byte(c>>8), byte(c>>16), byte(c>>24))
}

// personalize creates an AES application with keys 0-3 set to appKeys and
// its files, and leaves x authenticated with key 0 in the application.
//
//	file 0: standard 32 bytes, plain, read 3 / write 0
//	file 1: standard 100 bytes, MAC,  read/write key 1
//	file 2: backup 64 bytes, full,    read&write key 1, read 3
//	file 3: value, full, debit key 1 (write), credit key 2 (rw), get key 3 (read), 0..10000, limited credit on
//	file 4: cyclic record 16 bytes x 4 (3 usable), MAC, write 1, read 3, rw 2
//	file 5: linear record 8 bytes x 2, plain, all free
func personalize(t testing.TB, x *client) {
	t.Helper()
	x.ok(desfire.CmdCreateApplication, nil, []byte{0x12, 0x34, 0x56, 0x0B, 0x84}, plain)
	require.Zero(t, x.selectApp(testAID))
	require.Zero(t, x.authEV2(true, 0, make([]byte, 16), rndA))
	for n := byte(1); n < 4; n++ {
		d := crcLE(append(slices.Clone(appKeys[n]), 1), appKeys[n])
		x.ok(desfire.CmdChangeKey, []byte{n}, d, full)
	}
	x.changeOwnKey(0, append(slices.Clone(appKeys[0]), 1))
	require.Zero(t, x.authEV2(true, 0, appKeys[0], rndA))
	files := []struct {
		cmd  byte
		no   byte
		comm byte
		ar   []byte
		rest []byte
	}{
		{desfire.CmdCreateStdDataFile, 0, 0, access(3, 0, 0, 0), le24(32)},
		{desfire.CmdCreateStdDataFile, 1, 1, access(1, 1, 1, 0), le24(100)},
		{desfire.CmdCreateBackupDataFile, 2, 3, access(3, 1, 1, 0), le24(64)},
		{desfire.CmdCreateValueFile, 3, 3, access(3, 1, 2, 0), slices.Concat(le32(0), le32(10000), le32(0), []byte{1})},
		{desfire.CmdCreateCyclicRecordFile, 4, 1, access(3, 1, 2, 0), slices.Concat(le24(16), le24(4))},
		{desfire.CmdCreateLinearRecordFile, 5, 0, access(0xE, 0xE, 0xE, 0xE), slices.Concat(le24(8), le24(2))},
	}
	for _, f := range files {
		x.ok(f.cmd, []byte{f.no}, slices.Concat([]byte{f.comm}, f.ar, f.rest), mac)
	}
}

func sessionKinds() []string { return []string{"ev2", "ev1"} }

func TestPersonalizedRoundTrips(t *testing.T) {
	for _, kind := range sessionKinds() {
		t.Run(kind, func(t *testing.T) {
			c := newCard(t, vcard.Options{})
			x := newClient(t, c)
			personalize(t, x)
			require.Zero(t, x.auth(kind, 0))
			require.Equal(t, []byte{0, 1, 2, 3, 4, 5}, x.ok(desfire.CmdGetFileIDs, nil, nil, mac))
			require.Equal(t, []byte{0x0B, 0x84}, x.ok(desfire.CmdGetKeySettings, nil, nil, mac))
			require.Equal(t, []byte{1}, x.ok(desfire.CmdGetKeyVersion, []byte{2}, nil, mac))
			require.Equal(t, testUID, x.ok(desfire.CmdGetCardUID, nil, nil, full))
			require.Equal(t, slices.Concat([]byte{2, 3}, access(3, 1, 2, 0), le32(0), le32(10000), le32(0), []byte{1}),
				x.ok(desfire.CmdGetFileSettings, []byte{3}, nil, mac))
			x.ok(desfire.CmdChangeKeySettings, nil, []byte{0x0F}, full)
			require.Equal(t, []byte{0x0F, 0x84}, x.ok(desfire.CmdGetKeySettings, nil, nil, mac))
			require.Len(t, x.ok(desfire.CmdGetFreeMemory, nil, nil, mac), 3)

			// Standard file 0 in plain mode, written with key 0.
			x.ok(desfire.CmdWriteData, rwHdr(0, 4, 3), []byte{7, 8, 9}, plain)
			// File 1 in MAC mode with key 1: 100 bytes need several frames.
			long := bytes.Repeat([]byte{0x5A, 0xA5, 0x3C}, 33)
			require.Zero(t, x.auth(kind, 1))
			x.ok(desfire.CmdWriteData, rwHdr(1, 1, len(long)), long, mac)
			require.Equal(t, long, x.ok(desfire.CmdReadData, rwHdr(1, 1, len(long)), nil, mac))
			// Backup file 2 in full mode: invisible until commit.
			x.ok(desfire.CmdWriteData, rwHdr(2, 0, 40), bytes.Repeat([]byte{0x11}, 40), full)
			require.Equal(t, make([]byte, 64), x.ok(desfire.CmdReadData, rwHdr(2, 0, 0), nil, full))
			// Value file 3: debit needs funds; credit with key 2.
			st, _ := x.do(desfire.CmdDebit, []byte{3}, le32(1), full)
			require.Equal(t, desfire.StatusBoundaryError, st)
			require.Zero(t, x.auth(kind, 2))
			x.ok(desfire.CmdCredit, []byte{3}, le32(2500), full)
			require.Equal(t, byte(0), commit(x))
			require.Zero(t, x.auth(kind, 1))
			require.Equal(t, slices.Repeat([]byte{0x11}, 40), x.ok(desfire.CmdReadData, rwHdr(2, 0, 40), nil, full)[:40],
				"the backup file was committed with the credit")
			// A debit transaction: debit, record, commit.
			x.ok(desfire.CmdDebit, []byte{3}, le32(300), full)
			x.ok(desfire.CmdWriteRecord, rwHdr(4, 0, 16), bytes.Repeat([]byte{1}, 16), mac)
			require.Equal(t, le32(2500), x.ok(desfire.CmdGetValue, []byte{3}, nil, full), "uncommitted debit not visible")
			require.Equal(t, byte(0), commit(x))
			require.Equal(t, le32(2200), x.ok(desfire.CmdGetValue, []byte{3}, nil, full))
			// Limited credit up to the last debit.
			x.ok(desfire.CmdLimitedCredit, []byte{3}, le32(300), full)
			require.Equal(t, byte(0), commit(x))
			require.Equal(t, le32(2500), x.ok(desfire.CmdGetValue, []byte{3}, nil, full))
			st, _ = x.do(desfire.CmdLimitedCredit, []byte{3}, le32(1), full)
			require.Equal(t, desfire.StatusBoundaryError, st, "limited credit is used up")
			// Key 3 reads records; NonFirst keeps the session going (EV2).
			require.Zero(t, x.auth(kind, 3))
			require.Equal(t, bytes.Repeat([]byte{1}, 16), x.ok(desfire.CmdReadRecords, rwHdr(4, 0, 0), nil, mac))
			if kind == "ev2" {
				ctr := x.ev2.CmdCtr()
				require.Zero(t, x.authEV2(false, 1, appKeys[1], rndA))
				require.Equal(t, ctr, x.ev2.CmdCtr())
				require.Equal(t, le32(2500), x.ok(desfire.CmdGetValue, []byte{3}, nil, full))
			}
		})
	}
}

func commit(x *client) byte {
	st, _ := x.do(desfire.CmdCommitTransaction, nil, nil, mac)
	return st
}

func TestRecordFiles(t *testing.T) {
	c := newCard(t, vcard.Options{})
	x := newClient(t, c)
	personalize(t, x)
	require.Zero(t, x.auth("ev2", 2)) // read&write
	rec := func(i byte) []byte { return bytes.Repeat([]byte{i}, 16) }
	// Cyclic file of 4 records keeps 3; the oldest goes only on commit.
	for i := byte(1); i <= 3; i++ {
		x.ok(desfire.CmdWriteRecord, rwHdr(4, 0, 16), rec(i), mac)
		require.Equal(t, byte(0), commit(x))
	}
	x.ok(desfire.CmdWriteRecord, rwHdr(4, 0, 8), rec(4)[:8], mac)
	x.ok(desfire.CmdWriteRecord, rwHdr(4, 8, 8), rec(4)[:8], mac) // same record in one transaction
	require.Equal(t, slices.Concat(rec(1), rec(2), rec(3)), x.ok(desfire.CmdReadRecords, rwHdr(4, 0, 0), nil, mac))
	require.Equal(t, byte(0), commit(x))
	require.Equal(t, slices.Concat(rec(2), rec(3), rec(4)), x.ok(desfire.CmdReadRecords, rwHdr(4, 0, 0), nil, mac))
	require.Equal(t, rec(4), x.ok(desfire.CmdReadRecords, rwHdr(4, 0, 1), nil, mac), "offset 0 is the newest")
	require.Equal(t, rec(2), x.ok(desfire.CmdReadRecords, rwHdr(4, 2, 1), nil, mac))
	st, _ := x.do(desfire.CmdReadRecords, rwHdr(4, 3, 1), nil, mac)
	require.Equal(t, desfire.StatusBoundaryError, st)
	require.Zero(t, x.auth("ev2", 0))
	require.Equal(t, slices.Concat([]byte{4, 1}, access(3, 1, 2, 0), le24(16), le24(4), le24(3)),
		x.ok(desfire.CmdGetFileSettings, []byte{4}, nil, mac)[:13])

	// Linear file of 2 records with free access: full after two commits.
	require.Zero(t, x.selectApp(testAID))
	for i := byte(1); i <= 2; i++ {
		x.ok(desfire.CmdWriteRecord, rwHdr(5, 0, 8), rec(i)[:8], plain)
		require.Equal(t, byte(0), commit(x))
	}
	st, _ = x.do(desfire.CmdWriteRecord, rwHdr(5, 0, 8), rec(3)[:8], plain)
	require.Equal(t, desfire.StatusBoundaryError, st, "linear record file full")
	require.Equal(t, slices.Concat(rec(1)[:8], rec(2)[:8]), x.ok(desfire.CmdReadRecords, rwHdr(5, 0, 0), nil, plain))
	st, _ = x.do(desfire.CmdCommitTransaction, nil, nil, plain)
	require.Equal(t, desfire.StatusNoChanges, st)
}

// TestErrors checks that every error gives the real card's status, leaves
// the state unchanged and ends the authentication.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(x *client) byte
		want byte
	}{
		{"wrong key", func(x *client) byte { return x.authEV2(true, 1, appKeys[2], rndA) }, desfire.StatusAuthenticationError},
		{"wrong key EV1", func(x *client) byte { return x.authAES(1, appKeys[2], rndA) }, desfire.StatusAuthenticationError},
		{"no such key", func(x *client) byte { return x.authEV2(true, 9, appKeys[0], rndA) }, desfire.StatusNoSuchKey},
		{"credit with the debit key", func(x *client) byte {
			x.auth("ev2", 1)
			st, _ := x.do(desfire.CmdCredit, []byte{3}, le32(10), full)
			return st
		}, desfire.StatusPermissionDenied},
		{"read without authentication", func(x *client) byte {
			st, _ := x.do(desfire.CmdReadData, rwHdr(2, 0, 0), nil, plain)
			return st
		}, desfire.StatusPermissionDenied},
		{"credit over the upper limit", func(x *client) byte {
			x.auth("ev2", 2)
			st, _ := x.do(desfire.CmdCredit, []byte{3}, le32(10001), full)
			return st
		}, desfire.StatusBoundaryError},
		{"read beyond the file", func(x *client) byte {
			x.auth("ev2", 1)
			st, _ := x.do(desfire.CmdReadData, rwHdr(1, 90, 11), nil, mac)
			return st
		}, desfire.StatusBoundaryError},
		{"no such file", func(x *client) byte {
			x.auth("ev2", 1)
			st, _ := x.do(desfire.CmdReadData, rwHdr(9, 0, 1), nil, mac)
			return st
		}, desfire.StatusFileNotFound},
		{"tampered MAC", func(x *client) byte {
			x.auth("ev2", 1)
			a, err := x.ev2.WrapCommand(desfire.CmdReadData, rwHdr(1, 0, 4), nil, mac)
			require.NoError(x.t, err)
			a[len(a)-2] ^= 1
			r := x.c.Transmit(a)
			return r[len(r)-1]
		}, desfire.StatusIntegrityError},
		{"duplicate file", func(x *client) byte {
			x.auth("ev2", 0)
			st, _ := x.do(desfire.CmdCreateStdDataFile, []byte{1}, slices.Concat([]byte{0}, access(0, 0, 0, 0), le24(4)), mac)
			return st
		}, desfire.StatusDuplicateError},
		{"change key 0 with key 1", func(x *client) byte {
			x.auth("ev2", 1)
			st, _ := x.do(desfire.CmdChangeKey, []byte{0}, append(slices.Clone(appKeys[1]), 2), full)
			return st
		}, desfire.StatusPermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t, vcard.Options{})
			x := newClient(t, c)
			personalize(t, x)
			require.Zero(t, x.selectApp(testAID))
			require.Equal(t, tc.want, tc.run(x))
			// Authentication is gone: GetCardUID needs it.
			require.Equal(t, []byte{0x91, desfire.StatusPermissionDenied}, c.Transmit([]byte{0x90, 0x51, 0, 0, 0}))
			// Nothing changed: the balance is still 0 and key 1 still works.
			x.ev1, x.ev2 = nil, nil
			require.Zero(t, x.auth("ev2", 3))
			require.Equal(t, le32(0), x.ok(desfire.CmdGetValue, []byte{3}, nil, full))
			require.Zero(t, x.auth("ev2", 1))
		})
	}
}

// TestTear checks that power loss, reselection and AbortTransaction drop an
// open transaction, and that committed data survives them.
func TestTear(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(c *vcard.Card, x *client)
	}{
		{"power loss", func(c *vcard.Card, x *client) { c.PowerOff(); c.PowerOn(); x.ev2 = nil }},
		{"reselection", func(_ *vcard.Card, x *client) { require.Zero(x.t, x.selectApp(testAID)) }},
		{"abort", func(_ *vcard.Card, x *client) { x.ok(desfire.CmdAbortTransaction, nil, nil, mac) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCard(t, vcard.Options{})
			x := newClient(t, c)
			personalize(t, x)
			require.Zero(t, x.auth("ev2", 2))
			x.ok(desfire.CmdCredit, []byte{3}, le32(1000), full)
			require.Zero(t, commit(x))
			require.Zero(t, x.auth("ev2", 1))
			x.ok(desfire.CmdDebit, []byte{3}, le32(400), full)
			x.ok(desfire.CmdWriteData, rwHdr(2, 0, 2), []byte{9, 9}, full)
			x.ok(desfire.CmdWriteRecord, rwHdr(4, 0, 16), bytes.Repeat([]byte{7}, 16), mac)
			tc.break_(c, x)
			require.Zero(t, x.selectApp(testAID))
			require.Zero(t, x.auth("ev2", 3))
			require.Equal(t, le32(1000), x.ok(desfire.CmdGetValue, []byte{3}, nil, full))
			require.Equal(t, []byte{0, 0}, x.ok(desfire.CmdReadData, rwHdr(2, 0, 2), nil, full))
			st, _ := x.do(desfire.CmdReadRecords, rwHdr(4, 0, 0), nil, mac)
			require.Equal(t, desfire.StatusBoundaryError, st, "no record was committed")
		})
	}
}

// changeOwnKey changes the authenticated key (EV2). The card ends the
// session and answers without MAC.
func (x *client) changeOwnKey(n byte, data []byte) {
	x.t.Helper()
	a, err := x.ev2.WrapCommand(desfire.CmdChangeKey, []byte{n}, data, full)
	require.NoError(x.t, err)
	require.Equal(x.t, []byte{0x91, 0x00}, x.c.Transmit(a))
	x.ev2 = nil
}

func TestFileManagement(t *testing.T) {
	c := newCard(t, vcard.Options{})
	x := newClient(t, c)
	personalize(t, x)
	// ChangeFileSettings with the change key (0) in full mode: the value
	// file becomes plain and freely readable.
	x.ok(0x5F, []byte{3}, slices.Concat([]byte{0}, access(0xE, 1, 2, 0)), full)
	require.Zero(t, x.selectApp(testAID))
	require.Equal(t, le32(0), x.ok(desfire.CmdGetValue, []byte{3}, nil, plain))
	st, _ := x.do(desfire.CmdCredit, []byte{3}, le32(1), plain)
	require.Equal(t, desfire.StatusPermissionDenied, st, "credit still needs key 2")

	require.Zero(t, x.auth("ev2", 0))
	for _, tc := range []struct {
		name string
		cmd  byte
		hdr  []byte
		data []byte
		want byte
	}{
		{"lower above upper", desfire.CmdCreateValueFile, []byte{9}, slices.Concat([]byte{0}, access(0, 0, 0, 0), le32(10), le32(5), le32(7), []byte{0}), desfire.StatusBoundaryError},
		{"file number 32", desfire.CmdCreateStdDataFile, []byte{32}, slices.Concat([]byte{0}, access(0, 0, 0, 0), le24(8)), desfire.StatusParameterError},
		{"cyclic file of one record", desfire.CmdCreateCyclicRecordFile, []byte{9}, slices.Concat([]byte{0}, access(0, 0, 0, 0), le24(8), le24(1)), desfire.StatusParameterError},
		{"file larger than the card", desfire.CmdCreateStdDataFile, []byte{9}, slices.Concat([]byte{0}, access(0, 0, 0, 0), le24(9000)), desfire.StatusOutOfEEPROM},
		{"short create", desfire.CmdCreateStdDataFile, []byte{9}, []byte{0, 0}, desfire.StatusLengthError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Zero(t, x.auth("ev2", 0))
			st, _ := x.do(tc.cmd, tc.hdr, tc.data, mac)
			require.Equal(t, tc.want, st)
		})
	}
	require.Zero(t, x.auth("ev2", 0))
	x.ok(desfire.CmdDeleteFile, []byte{5}, nil, mac)
	require.Equal(t, []byte{0, 1, 2, 3, 4}, x.ok(desfire.CmdGetFileIDs, nil, nil, mac))
	st, _ = x.do(desfire.CmdReadRecords, rwHdr(5, 0, 0), nil, plain)
	require.Equal(t, desfire.StatusFileNotFound, st)

	require.Zero(t, x.selectApp(0))
	st, _ = x.do(desfire.CmdCreateApplication, nil, []byte{9, 9, 9, 0x0F, 0x8F}, plain)
	require.Equal(t, desfire.StatusParameterError, st, "15 keys")
	st, _ = x.do(desfire.CmdCreateApplication, nil, []byte{0x12, 0x34, 0x56, 0x0F, 0x81}, plain)
	require.Equal(t, desfire.StatusDuplicateError, st)
}
