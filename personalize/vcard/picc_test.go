package vcard_test

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// authLegacy runs AuthenticateLegacy (0x0A) and returns the session key.
func (x *client) authLegacy(keyNo byte, key, rndA []byte) (byte, []byte) {
	x.t.Helper()
	x.ev1, x.ev2 = nil, nil
	st, encB := x.exchange1(0x0A, []byte{keyNo})
	if st != 0xAF {
		return st, nil
	}
	rndB, err := desfire.LegacyDecipher(key, encB)
	require.NoError(x.t, err)
	msg, err := desfire.LegacySend(key, slices.Concat(rndA, rot(rndB)))
	require.NoError(x.t, err)
	st, out := x.exchange1(0xAF, msg)
	if st != 0 {
		return st, nil
	}
	got, err := desfire.LegacyDecipher(key, out)
	require.NoError(x.t, err)
	require.Equal(x.t, rot(rndA), got)
	return st, desfire.LegacySessionKey(key, rndA, rndB)
}

func crc16LE(dst, data []byte) []byte {
	c := desfire.CRC16(data)
	return append(dst, byte(c), byte(c>>8))
}

// TestFactoryCardToAES personalizes the PICC level as a station does:
// legacy DES authentication with the factory key, PICC master key changed to
// AES, then EV2 from there on.
func TestFactoryCardToAES(t *testing.T) {
	c := newCard(t, vcard.Options{Rand: &fixedRand{b: []byte("0123456789abcdefghijklmnopqrstuvwxyz")}})
	x := newClient(t, c)
	st, _ := x.authLegacy(0, make([]byte, 16), rndA[:8])
	require.Zero(t, st)
	_, wrongSess := x.authLegacy(0, appKeys[1], rndA[:8])
	require.Nil(t, wrongSess, "a wrong key fails")
	st, sess := x.authLegacy(0, make([]byte, 16), rndA[:8])
	require.Zero(t, st)
	piccKey := appKeys[3]
	pt := crc16LE(append(slices.Clone(piccKey), 0x10), append(slices.Clone(piccKey), 0x10))
	pt = append(pt, make([]byte, 24-len(pt))...)
	enc, err := desfire.LegacySend(sess, pt)
	require.NoError(t, err)
	require.Equal(t, []byte{0x91, 0x00}, c.Transmit(apdu(desfire.CmdChangeKey, append([]byte{0x80}, enc...))))

	require.Equal(t, desfire.StatusAuthenticationError, x.authEV2(true, 0, make([]byte, 16), rndA), "old key gone")
	require.Zero(t, x.authEV2(true, 0, piccKey, rndA))
	require.Equal(t, []byte{0x0F, 0x81}, x.ok(desfire.CmdGetKeySettings, nil, nil, mac))
	require.Equal(t, []byte{0x10}, x.ok(desfire.CmdGetKeyVersion, []byte{0}, nil, mac))
	require.Equal(t, testUID, x.ok(desfire.CmdGetCardUID, nil, nil, full))
	x.ok(desfire.CmdChangeKeySettings, nil, []byte{0x09}, full) // no free listing or creation
	x.ok(desfire.CmdCreateApplication, nil, []byte{1, 0, 0, 0x0F, 0x81}, mac)
	x.ok(desfire.CmdCreateApplication, nil, []byte{2, 0, 0, 0x0F, 0x81}, mac)
	require.Equal(t, []byte{1, 0, 0, 2, 0, 0}, x.ok(desfire.CmdGetApplicationIDs, nil, nil, mac))
	st, _ = x.do(desfire.CmdCreateApplication, nil, []byte{1, 0, 0, 0x0F, 0x81}, mac)
	require.Equal(t, desfire.StatusDuplicateError, st)

	// Without authentication listing and creation are refused now.
	require.Zero(t, x.selectApp(0))
	st, _ = x.do(desfire.CmdGetApplicationIDs, nil, nil, plain)
	require.Equal(t, desfire.StatusPermissionDenied, st)
	st, _ = x.do(desfire.CmdCreateApplication, nil, []byte{3, 0, 0, 0x0F, 0x81}, plain)
	require.Equal(t, desfire.StatusPermissionDenied, st)

	require.Zero(t, x.authEV2(true, 0, piccKey, rndA))
	x.ok(desfire.CmdDeleteApplication, []byte{2, 0, 0}, nil, mac)
	require.Equal(t, []byte{1, 0, 0}, x.ok(desfire.CmdGetApplicationIDs, nil, nil, mac))
	x.ok(desfire.CmdFormatPICC, nil, nil, mac)
	require.Empty(t, x.ok(desfire.CmdGetApplicationIDs, nil, nil, mac))
	require.Equal(t, []byte{0x00, 0x1F, 0x00}, x.ok(desfire.CmdGetFreeMemory, nil, nil, mac))

	// Random UID from the next power-on; GetCardUID still gives the real one.
	x.ok(desfire.CmdSetConfiguration, []byte{0}, []byte{0x02}, full)
	c.PowerOff()
	c.PowerOn()
	require.Equal(t, byte(0x08), c.UID()[0])
	require.Len(t, c.UID(), 4)
	x.ev2 = nil
	require.Zero(t, x.authEV2(true, 0, piccKey, rndA))
	require.Equal(t, testUID, x.ok(desfire.CmdGetCardUID, nil, nil, full))
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "card.json")
	c := newCard(t, vcard.Options{StatePath: path})
	x := newClient(t, c)
	personalize(t, x)
	require.Zero(t, x.auth("ev2", 2))
	x.ok(desfire.CmdCredit, []byte{3}, le32(700), full)
	require.Zero(t, commit(x))
	require.Zero(t, x.auth("ev2", 1))
	x.ok(desfire.CmdDebit, []byte{3}, le32(100), full) // never committed: lost with the process

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	c2 := newCard(t, vcard.Options{StatePath: path})
	y := newClient(t, c2)
	require.Zero(t, y.selectApp(testAID))
	require.Zero(t, y.auth("ev2", 3))
	require.Equal(t, le32(700), y.ok(desfire.CmdGetValue, []byte{3}, nil, full))

	require.NoError(t, os.WriteFile(path, []byte(`{"format":1}`), 0o600))
	_, err = vcard.New(vcard.Options{UID: testUID, StatePath: path})
	require.ErrorIs(t, err, vcard.ErrState)
}

// TestNoSecretsInLogs runs a personalization with debug logging and checks
// that no key appears in the log, in hex or raw.
func TestNoSecretsInLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newCard(t, vcard.Options{Logger: log})
	x := newClient(t, c)
	personalize(t, x)
	require.Zero(t, x.auth("ev2", 1))
	st, _ := x.do(desfire.CmdCredit, []byte{3}, le32(5), full) // refused: logged as an error status
	require.Equal(t, desfire.StatusPermissionDenied, st)
	require.Contains(t, buf.String(), "vcard command")
	for _, k := range appKeys {
		require.NotContains(t, strings.ToLower(buf.String()), hex.EncodeToString(k))
		require.False(t, bytes.Contains(buf.Bytes(), k))
	}
}
