// Package conformance is a table of DESFire client <-> card scenarios that
// any card reachable through a Harness must pass: the virtual card
// in-process, or the same card through pcscd and vpcd. It personalizes a card
// with non-zero AES keys, runs every command in every communication mode
// with EV2 and EV1 sessions, and checks the error cases and the tear
// semantics a real MIFARE DESFire EV2 has.
package conformance

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// Harness reaches one card.
type Harness interface {
	// Transmit sends a command APDU and returns the response APDU.
	Transmit(apdu []byte) ([]byte, error)
	// Tear takes the card out of the field and back (power loss), then
	// reconnects.
	Tear(t *testing.T)
	// Reset replaces the card with a fresh factory card.
	Reset(t *testing.T)
}

// Run runs every scenario against h, each on a fresh card.
func Run(t *testing.T, h Harness) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			h.Reset(t)
			sc.run(t, &env{t: t, h: h, c: desfire.New(h)})
		})
	}
}

// env is one scenario's card and client.
type env struct {
	t *testing.T
	h Harness
	c *desfire.Card
}

const (
	plain = desfire.CommPlain
	mac   = desfire.CommMAC
	full  = desfire.CommFull

	testAID desfire.AID = 0x4C5043 // "CPL"
)

func aesKey(t *testing.T, seed byte, version byte) desfire.Key {
	t.Helper()
	b := make([]byte, 16)
	for i := range b {
		b[i] = seed + byte(i)*17
	}
	k, err := desfire.NewAESKey(b, version)
	require.NoError(t, err)
	return k
}

// keys of the test application, none of them all zeros.
func (e *env) appKey(n int) desfire.Key { return aesKey(e.t, 0x31+byte(n)*0x10, byte(n+1)) }

func (e *env) piccKey() desfire.Key { return aesKey(e.t, 0xA7, 7) }

// auth is one way to authenticate with an AES key.
type auth struct {
	name string
	fn   func(c *desfire.Card, keyNo byte, k desfire.Key) error
}

var auths = []auth{
	{"ev2", (*desfire.Card).AuthenticateEV2First},
	{"ev1", (*desfire.Card).AuthenticateAES},
}

// Files of the test application.
const (
	fileStd    = 1 // standard data, 100 bytes
	fileBackup = 2 // backup data, 48 bytes
	fileValue  = 3 // value 0..10000, limited credit
	fileCyclic = 4 // cyclic records of 16 bytes, 4 (3 usable)
	fileLinear = 5 // linear records of 8 bytes, 2
)

// rights: read key 3, write (debit) key 1, read&write (credit) key 2, change key 0.
var rights = desfire.AccessRights{Read: 3, Write: 1, ReadWrite: 2, Change: 0}

// personalize takes the factory card to an AES PICC master key (through
// legacy or ISO authentication with the default DES key), creates the test
// application with four AES keys and its files in comm mode, and leaves the
// client unauthenticated at the application level.
func (e *env) personalize(iso bool, mode desfire.CommMode) {
	t, c := e.t, e.c
	t.Helper()
	if iso {
		require.NoError(t, c.AuthenticateISO(0, desfire.DefaultDESKey()))
	} else {
		require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	}
	require.NoError(t, c.ChangeKey(0, e.piccKey(), desfire.Key{}))
	require.NoError(t, c.AuthenticateEV2First(0, e.piccKey()))
	require.NoError(t, c.ChangeKeySettings(desfire.KeySettingAllowChangeMasterKey|desfire.KeySettingConfigChangeable))
	require.NoError(t, c.CreateApplication(testAID, 0x0B, 4, desfire.KeyAES))
	require.NoError(t, c.SelectApplication(testAID))
	zero, err := desfire.NewAESKey(make([]byte, 16), 0)
	require.NoError(t, err)
	require.NoError(t, c.AuthenticateEV2First(0, zero))
	for n := 1; n < 4; n++ {
		require.NoError(t, c.ChangeKey(byte(n), e.appKey(n), zero), "key %d", n)
	}
	require.NoError(t, c.ChangeKey(0, e.appKey(0), desfire.Key{}))
	require.NoError(t, c.AuthenticateEV2First(0, e.appKey(0)))
	require.NoError(t, c.CreateStdDataFile(fileStd, mode, rights, 100))
	require.NoError(t, c.CreateBackupDataFile(fileBackup, mode, rights, 48))
	require.NoError(t, c.CreateValueFile(fileValue, mode, rights, 0, 10000, 0, true))
	require.NoError(t, c.CreateCyclicRecordFile(fileCyclic, mode, rights, 16, 4))
	free := desfire.AccessRights{Read: desfire.AccessFree, Write: desfire.AccessFree, ReadWrite: desfire.AccessFree, Change: 0}
	require.NoError(t, c.CreateLinearRecordFile(fileLinear, plain, free, 8, 2))
	require.NoError(t, c.SelectApplication(testAID))
}

// as authenticates with application key n.
func (e *env) as(a auth, n int) {
	e.t.Helper()
	require.NoError(e.t, a.fn(e.c, byte(n), e.appKey(n)), "authenticate %s key %d", a.name, n)
}

// status sends a raw native command and returns the card's status byte.
func (e *env) status(cmd byte) byte {
	e.t.Helper()
	r, err := e.h.Transmit([]byte{0x90, cmd, 0, 0, 0})
	require.NoError(e.t, err)
	require.GreaterOrEqual(e.t, len(r), 2)
	return r[len(r)-1]
}

// requireLoggedOut checks that the card itself has no authentication.
func (e *env) requireLoggedOut() {
	e.t.Helper()
	require.Equal(e.t, desfire.StatusPermissionDenied, e.status(desfire.CmdGetCardUID),
		"GetCardUID must be refused: the card has no authentication")
}

func (e *env) value(a auth) int32 {
	e.t.Helper()
	e.as(a, 3)
	v, err := e.c.GetValue(fileValue, e.mode())
	require.NoError(e.t, err)
	return v
}

// mode is the files' communication mode (from GetFileSettings).
func (e *env) mode() desfire.CommMode {
	e.t.Helper()
	fs, err := e.c.GetFileSettings(fileValue)
	require.NoError(e.t, err)
	return fs.Comm
}

type scenario struct {
	name string
	run  func(t *testing.T, e *env)
}

var scenarios []scenario

func init() {
	scenarios = []scenario{
		{"factory card", factoryCard},
		{"personalize with ISO authentication", func(t *testing.T, e *env) { e.personalize(true, full) }},
		{"PICC level", piccLevel},
		{"keys", keys},
		{"wrong key", wrongKey},
		{"wrong access right", wrongAccess},
		{"value limits", valueLimits},
		{"record file full", recordFull},
		{"tear before commit", tearBeforeCommit},
		{"abort and reselect", abortAndReselect},
		{"ev2 non-first keeps counter", nonFirst},
		{"random UID", randomUID},
	}
	for _, a := range auths {
		for _, m := range []desfire.CommMode{plain, mac, full} {
			scenarios = append(scenarios, scenario{"files " + a.name + " " + m.String(), func(t *testing.T, e *env) { files(t, e, a, m) }})
		}
	}
}

func factoryCard(t *testing.T, e *env) {
	c := e.c
	v, err := c.GetVersion()
	require.NoError(t, err)
	require.Equal(t, byte(0x04), v.Hardware[0], "NXP")
	require.Equal(t, byte(0x12), v.Hardware[3], "EV2")
	require.Equal(t, byte(0x04), v.UID[0])
	ks, err := c.GetKeySettings()
	require.NoError(t, err)
	require.Equal(t, byte(0x0F), ks.Settings)
	require.Equal(t, desfire.KeyDES, ks.KeyType)
	aids, err := c.GetApplicationIDs()
	require.NoError(t, err)
	require.Empty(t, aids)
	free, err := c.GetFreeMemory()
	require.NoError(t, err)
	require.Greater(t, free, 4000)
	require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	kv, err := c.GetKeyVersion(0)
	require.NoError(t, err)
	require.Zero(t, kv)
}

func piccLevel(t *testing.T, e *env) {
	e.personalize(false, full)
	c := e.c
	require.NoError(t, c.SelectApplication(0))
	aids, err := c.GetApplicationIDs()
	require.ErrorIs(t, err, desfire.ErrPermissionDenied, "no free listing after personalization")
	require.Nil(t, aids)
	require.Error(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()), "the factory key is gone")
	require.NoError(t, c.AuthenticateEV2First(0, e.piccKey()))
	uid, err := c.GetCardUID()
	require.NoError(t, err)
	v, err := c.GetVersion()
	require.NoError(t, err)
	require.Equal(t, v.UID[:], uid)
	kv, err := c.GetKeyVersion(0)
	require.NoError(t, err)
	require.Equal(t, byte(7), kv)
	aids, err = c.GetApplicationIDs()
	require.NoError(t, err)
	require.Equal(t, []desfire.AID{testAID}, aids)
	require.NoError(t, c.CreateApplication(0x010203, 0x0F, 1, desfire.KeyAES))
	require.ErrorIs(t, c.CreateApplication(0x010203, 0x0F, 1, desfire.KeyAES), desfire.ErrDuplicate)
	require.NoError(t, c.AuthenticateAES(0, e.piccKey()))
	before, err := c.GetFreeMemory()
	require.NoError(t, err)
	require.NoError(t, c.DeleteApplication(0x010203))
	after, err := c.GetFreeMemory()
	require.NoError(t, err)
	require.Greater(t, after, before)
	require.ErrorIs(t, c.SelectApplication(0x010203), desfire.ErrApplicationNotFound)
	require.NoError(t, c.AuthenticateEV2First(0, e.piccKey()))
	require.NoError(t, c.FormatPICC())
	aids, err = c.GetApplicationIDs()
	require.NoError(t, err)
	require.Empty(t, aids)
	require.NoError(t, c.AuthenticateEV2First(0, e.piccKey()), "FormatPICC keeps the PICC master key")
}

func keys(t *testing.T, e *env) {
	e.personalize(false, mac)
	c := e.c
	for _, a := range auths {
		for n := 0; n < 4; n++ {
			e.as(a, n)
		}
		e.as(a, 0)
		ks, err := c.GetKeySettings()
		require.NoError(t, err)
		require.Equal(t, byte(0x0B), ks.Settings)
		require.Equal(t, 4, ks.MaxKeys)
		require.Equal(t, desfire.KeyAES, ks.KeyType)
		kv, err := c.GetKeyVersion(2)
		require.NoError(t, err)
		require.Equal(t, byte(3), kv)
	}
	// Key 2 changed by the master key (ChangeKey access 0), then used.
	e.as(auths[1], 0)
	k2 := aesKey(t, 0x5E, 9)
	require.NoError(t, c.ChangeKey(2, k2, e.appKey(2)))
	require.NoError(t, c.AuthenticateEV2First(2, k2))
	require.ErrorIs(t, c.AuthenticateAES(2, e.appKey(2)), desfire.ErrAuthentication)
	// Only the master key may change keys.
	require.NoError(t, c.AuthenticateEV2First(2, k2))
	require.ErrorIs(t, c.ChangeKey(1, k2, e.appKey(1)), desfire.ErrPermissionDenied)
	e.requireLoggedOut()
	// Free listing (on in 0x0B): file IDs without authentication.
	require.NoError(t, c.SelectApplication(testAID))
	ids, err := c.GetFileIDs()
	require.NoError(t, err)
	require.Equal(t, []byte{fileStd, fileBackup, fileValue, fileCyclic, fileLinear}, ids)
	// Switched off, listing needs the master key.
	e.as(auths[0], 0)
	require.NoError(t, c.ChangeKeySettings(0x0B&^desfire.KeySettingFreeListing))
	require.NoError(t, c.SelectApplication(testAID))
	_, err = c.GetFileIDs()
	require.ErrorIs(t, err, desfire.ErrPermissionDenied)
	e.as(auths[1], 0)
	ks, err := c.GetKeySettings()
	require.NoError(t, err)
	require.Equal(t, byte(0x09), ks.Settings)
}

func wrongKey(t *testing.T, e *env) {
	e.personalize(false, full)
	for _, a := range auths {
		require.ErrorIs(t, a.fn(e.c, 1, e.appKey(2)), desfire.ErrAuthentication, a.name)
		e.requireLoggedOut()
		require.ErrorIs(t, a.fn(e.c, 9, e.appKey(1)), desfire.ErrNoSuchKey, a.name)
		e.requireLoggedOut()
	}
}

func wrongAccess(t *testing.T, e *env) {
	e.personalize(false, full)
	c := e.c
	for _, a := range auths {
		e.as(a, 1)
		require.ErrorIs(t, c.Credit(fileValue, 10, full), desfire.ErrPermissionDenied, "credit needs key 2")
		e.requireLoggedOut()
		e.as(a, 3)
		require.ErrorIs(t, c.WriteData(fileStd, 0, []byte{1}, full), desfire.ErrPermissionDenied, "key 3 only reads")
		e.requireLoggedOut()
		_, err := c.ReadData(fileStd, 0, 4, plain)
		require.ErrorIs(t, err, desfire.ErrPermissionDenied, "no free read")
		require.Zero(t, e.value(a), "nothing changed")
	}
}

func valueLimits(t *testing.T, e *env) {
	e.personalize(false, full)
	c := e.c
	a := auths[0]
	e.as(a, 2)
	require.ErrorIs(t, c.Credit(fileValue, 10001, full), desfire.ErrBoundary)
	e.requireLoggedOut()
	e.as(a, 2)
	require.NoError(t, c.Credit(fileValue, 10000, full))
	require.NoError(t, c.CommitTransaction())
	require.ErrorIs(t, c.Credit(fileValue, 1, full), desfire.ErrBoundary)
	e.as(a, 1)
	require.NoError(t, c.Debit(fileValue, 4000, full))
	require.NoError(t, c.Debit(fileValue, 6000, full), "debits in one transaction add up")
	require.ErrorIs(t, c.Debit(fileValue, 1, full), desfire.ErrBoundary)
	e.as(a, 1)
	require.NoError(t, c.CommitTransaction())
	require.Zero(t, e.value(a))
	// Limited credit: up to the debits of the last transaction, once.
	e.as(a, 1)
	require.ErrorIs(t, c.LimitedCredit(fileValue, 10001, full), desfire.ErrBoundary)
	e.as(a, 1)
	require.NoError(t, c.LimitedCredit(fileValue, 2500, full))
	require.NoError(t, c.CommitTransaction())
	require.ErrorIs(t, c.LimitedCredit(fileValue, 1, full), desfire.ErrBoundary)
	require.Equal(t, int32(2500), e.value(a))
	fs, err := c.GetFileSettings(fileValue)
	require.NoError(t, err)
	require.Equal(t, int32(0), fs.Lower)
	require.Equal(t, int32(10000), fs.Upper)
	require.True(t, fs.LimitedCreditEnabled)
}

func recordFull(t *testing.T, e *env) {
	e.personalize(false, mac)
	c := e.c
	for i := byte(1); i <= 2; i++ {
		require.NoError(t, c.WriteRecord(fileLinear, 0, bytes.Repeat([]byte{i}, 8), plain))
		require.NoError(t, c.CommitTransaction())
	}
	require.ErrorIs(t, c.WriteRecord(fileLinear, 0, bytes.Repeat([]byte{3}, 8), plain), desfire.ErrBoundary)
	recs, err := c.ReadRecords(fileLinear, 0, 0, 8, plain)
	require.NoError(t, err)
	require.Equal(t, slices.Concat(bytes.Repeat([]byte{1}, 8), bytes.Repeat([]byte{2}, 8)), recs)
	require.Equal(t, desfire.StatusNoChanges, e.status(desfire.CmdCommitTransaction), "nothing to commit")
	// A full cyclic file drops its oldest record, only on commit.
	e.as(auths[0], 2)
	for i := byte(1); i <= 4; i++ {
		require.NoError(t, c.WriteRecord(fileCyclic, 0, bytes.Repeat([]byte{i}, 16), mac))
		require.NoError(t, c.CommitTransaction())
	}
	fs, err := c.GetFileSettings(fileCyclic)
	require.NoError(t, err)
	require.Equal(t, 3, fs.Records)
	recs, err = c.ReadRecords(fileCyclic, 0, 3, 16, mac)
	require.NoError(t, err)
	require.Equal(t, []byte{2, 3, 4}, []byte{recs[0], recs[16], recs[32]}, "oldest first")
}

// isNoChanges accepts the NoChanges status some calls report.
func isNoChanges(err error) bool { return err == nil || errors.Is(err, desfire.ErrNoChanges) }

func tearBeforeCommit(t *testing.T, e *env) {
	e.personalize(false, full)
	c := e.c
	a := auths[0]
	e.as(a, 2)
	require.NoError(t, c.Credit(fileValue, 1000, full))
	require.NoError(t, c.WriteData(fileBackup, 0, []byte("committed"), full))
	require.NoError(t, c.CommitTransaction())
	// A debit transaction torn before CommitTransaction.
	e.as(a, 1)
	require.NoError(t, c.Debit(fileValue, 250, full))
	require.NoError(t, c.WriteData(fileBackup, 0, []byte("torn away"), full))
	require.NoError(t, c.WriteRecord(fileCyclic, 0, bytes.Repeat([]byte{9}, 16), full))
	e.h.Tear(e.t)
	e.c = desfire.New(e.h)
	c = e.c
	require.NoError(t, c.SelectApplication(testAID))
	require.Equal(t, int32(1000), e.value(a))
	got, err := c.ReadData(fileBackup, 0, 9, full)
	require.NoError(t, err)
	require.Equal(t, []byte("committed"), got)
	_, err = c.ReadRecords(fileCyclic, 0, 0, 16, full)
	require.ErrorIs(t, err, desfire.ErrBoundary, "no record was committed")
	// The same transaction completed.
	e.as(a, 1)
	require.NoError(t, c.Debit(fileValue, 250, full))
	require.NoError(t, c.WriteRecord(fileCyclic, 0, bytes.Repeat([]byte{9}, 16), full))
	require.NoError(t, c.CommitTransaction())
	require.Equal(t, int32(750), e.value(a))
}

func abortAndReselect(t *testing.T, e *env) {
	e.personalize(false, mac)
	c := e.c
	a := auths[1]
	e.as(a, 2)
	require.NoError(t, c.Credit(fileValue, 500, mac))
	require.NoError(t, c.AbortTransaction())
	require.True(t, isNoChanges(c.AbortTransaction()))
	require.NoError(t, c.Credit(fileValue, 300, mac))
	require.NoError(t, c.SelectApplication(testAID)) // reselection aborts
	require.Zero(t, e.value(a))
	e.as(a, 2)
	require.NoError(t, c.Credit(fileValue, 300, mac))
	require.NoError(t, c.CommitTransaction())
	require.Equal(t, int32(300), e.value(a))
}

func nonFirst(t *testing.T, e *env) {
	e.personalize(false, full)
	c := e.c
	e.as(auths[0], 2)
	require.NoError(t, c.Credit(fileValue, 42, full))
	require.NoError(t, c.CommitTransaction())
	ti, ctr := c.EV2().TI(), c.EV2().CmdCtr()
	require.NotZero(t, ctr)
	require.NoError(t, c.AuthenticateEV2NonFirst(3, e.appKey(3)))
	require.Equal(t, ti, c.EV2().TI())
	require.Equal(t, ctr, c.EV2().CmdCtr())
	v, err := c.GetValue(fileValue, full)
	require.NoError(t, err)
	require.Equal(t, int32(42), v)
}

// files runs every file command in mode with session a.
func files(t *testing.T, e *env, a auth, m desfire.CommMode) {
	e.personalize(false, m)
	c := e.c
	e.as(a, 0)
	fs, err := c.GetFileSettings(fileStd)
	require.NoError(t, err)
	require.Equal(t, desfire.FileSettings{Type: desfire.FileStandard, Comm: m, Access: rights, Size: 100}, fs)
	uid, err := c.GetCardUID()
	require.NoError(t, err)
	require.Len(t, uid, 7)

	// Standard data: 100 bytes need frames both ways.
	long := make([]byte, 100)
	for i := range long {
		long[i] = byte(i*7 + 3)
	}
	e.as(a, 1)
	require.NoError(t, c.WriteData(fileStd, 0, long, m))
	e.as(a, 3)
	got, err := c.ReadData(fileStd, 0, 100, m)
	require.NoError(t, err)
	require.Equal(t, long, got)
	got, err = c.ReadData(fileStd, 95, 5, m)
	require.NoError(t, err)
	require.Equal(t, long[95:], got)

	// A credit and a debit transaction with backup data and a record.
	e.as(a, 2)
	require.NoError(t, c.Credit(fileValue, 2000, m))
	require.NoError(t, c.WriteData(fileBackup, 0, []byte("seq=1"), m))
	require.NoError(t, c.CommitTransaction())
	e.as(a, 1)
	require.NoError(t, c.Debit(fileValue, 150, m))
	require.NoError(t, c.WriteData(fileBackup, 0, []byte("seq=2"), m))
	require.NoError(t, c.WriteRecord(fileCyclic, 0, []byte("terminal 7 -150 "), m))
	v, err := c.GetValue(fileValue, m)
	require.NoError(t, err)
	require.Equal(t, int32(2000), v, "uncommitted debit not visible")
	require.NoError(t, c.CommitTransaction())
	require.NoError(t, c.LimitedCredit(fileValue, 150, m))
	require.NoError(t, c.CommitTransaction())
	e.as(a, 3)
	v, err = c.GetValue(fileValue, m)
	require.NoError(t, err)
	require.Equal(t, int32(2000), v)
	got, err = c.ReadData(fileBackup, 0, 5, m)
	require.NoError(t, err)
	require.Equal(t, []byte("seq=2"), got)
	recs, err := c.ReadRecords(fileCyclic, 0, 1, 16, m)
	require.NoError(t, err)
	require.Equal(t, []byte("terminal 7 -150 "), recs)
	// Free access files are plain even inside a session.
	require.NoError(t, c.WriteRecord(fileLinear, 0, []byte("free rec"), plain))
	require.NoError(t, c.CommitTransaction())
	e.as(a, 0)
	require.NoError(t, c.DeleteFile(fileLinear))
	_, err = c.GetFileSettings(fileLinear)
	require.ErrorIs(t, err, desfire.ErrFileNotFound)
}

func randomUID(t *testing.T, e *env) {
	e.personalize(false, plain)
	c := e.c
	require.NoError(t, c.SelectApplication(0))
	require.NoError(t, c.AuthenticateEV2First(0, e.piccKey()))
	uid, err := c.GetCardUID()
	require.NoError(t, err)
	require.NoError(t, c.SetConfiguration(desfire.ConfigPICC, []byte{0x02}))
	e.h.Tear(t)
	e.c = desfire.New(e.h)
	r, err := e.h.Transmit([]byte{0xFF, 0xCA, 0x00, 0x00, 0x00})
	require.NoError(t, err)
	require.Len(t, r, 6, "4-byte random UID and 90 00")
	require.Equal(t, byte(0x08), r[0])
	require.Equal(t, []byte{0x90, 0x00}, r[4:])
	v, err := e.c.GetVersion()
	require.NoError(t, err)
	require.Equal(t, [7]byte{}, v.UID, "GetVersion hides the UID")
	require.NoError(t, e.c.AuthenticateEV2First(0, e.piccKey()))
	got, err := e.c.GetCardUID()
	require.NoError(t, err)
	require.Equal(t, uid, got, "GetCardUID still gives the real UID")
}
