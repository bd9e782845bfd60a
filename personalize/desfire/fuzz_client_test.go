package desfire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

var errScriptEnd = errors.New("end of script")

// replay answers every APDU with the next length-prefixed (2 bytes,
// big-endian) response of its script.
type replay struct{ script []byte }

func (r *replay) Transmit([]byte) ([]byte, error) {
	if len(r.script) < 2 {
		return nil, errScriptEnd
	}
	n := int(binary.BigEndian.Uint16(r.script))
	r.script = r.script[2:]
	n = min(n, len(r.script))
	out := r.script[:n]
	r.script = r.script[n:]
	return out, nil
}

// recorder passes APDUs to a card and records the responses as a script.
type recorder struct {
	inner  desfire.Transmitter
	script []byte
}

func (r *recorder) Transmit(apdu []byte) ([]byte, error) {
	resp, err := r.inner.Transmit(apdu)
	r.script = binary.BigEndian.AppendUint16(r.script, uint16(len(resp)))
	r.script = append(r.script, resp...)
	return resp, err
}

var fuzzKeys = struct{ picc, app0, app1 []byte }{
	bytes.Repeat([]byte{0xA0}, 16), bytes.Repeat([]byte{0xB0}, 16), bytes.Repeat([]byte{0xB1}, 16),
}

func fuzzKey(t testing.TB, b []byte) desfire.Key {
	k, err := desfire.NewAESKey(b, 1)
	require.NoError(t, err)
	return k
}

// clientSession is the fixed sequence of client operations the fuzzer
// drives; errors are expected and ignored, panics and hangs are not.
func clientSession(t testing.TB, tr desfire.Transmitter) {
	c := desfire.New(tr, desfire.WithRand(bytes.NewReader(bytes.Repeat([]byte{0x42}, 256))))
	_, _ = c.GetVersion()
	_, _ = c.GetApplicationIDs()
	_ = c.SelectApplication(0x563412)
	_ = c.AuthenticateEV2First(0, fuzzKey(t, fuzzKeys.app0))
	_, _ = c.GetFileIDs()
	_, _ = c.GetFileSettings(2)
	_, _ = c.GetFileSettings(4)
	_, _ = c.GetKeySettings()
	_, _ = c.GetCardUID()
	_, _ = c.ReadData(1, 0, 0, desfire.CommMAC)
	_, _ = c.GetValue(2, desfire.CommFull)
	_, _ = c.ReadRecords(4, 0, 0, 16, desfire.CommFull)
	_ = c.AuthenticateAES(1, fuzzKey(t, fuzzKeys.app1))
	_, _ = c.GetValue(2, desfire.CommFull)
	_, _ = c.ReadData(3, 0, 4, desfire.CommFull)
	_, _ = c.ReadRecords(4, 0, 1, 16, desfire.CommFull)
	_, _ = c.GetFreeMemory()
}

// transcript runs clientSession against a prepared virtual card and returns
// the card's responses as a script.
func transcript(t testing.TB) []byte {
	vc, err := vcard.New(vcard.Options{UID: []byte{4, 1, 2, 3, 4, 5, 6}, Rand: bytes.NewReader(bytes.Repeat([]byte{0x17}, 4096))})
	require.NoError(t, err)
	c := desfire.New(cardLink{vc})
	require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	require.NoError(t, c.ChangeKey(0, fuzzKey(t, fuzzKeys.picc), desfire.Key{}))
	require.NoError(t, c.AuthenticateEV2First(0, fuzzKey(t, fuzzKeys.picc)))
	require.NoError(t, c.CreateApplication(0x563412, 0x0B, 2, desfire.KeyAES))
	require.NoError(t, c.SelectApplication(0x563412))
	zero := fuzzKey(t, make([]byte, 16))
	require.NoError(t, c.AuthenticateEV2First(0, zero))
	require.NoError(t, c.ChangeKey(1, fuzzKey(t, fuzzKeys.app1), zero))
	require.NoError(t, c.ChangeKey(0, fuzzKey(t, fuzzKeys.app0), desfire.Key{}))
	require.NoError(t, c.AuthenticateEV2First(0, fuzzKey(t, fuzzKeys.app0)))
	ar := desfire.AccessRights{Read: 1, Write: 1, ReadWrite: 0, Change: 0}
	require.NoError(t, c.CreateStdDataFile(1, desfire.CommMAC, ar, 80))
	require.NoError(t, c.CreateValueFile(2, desfire.CommFull, ar, 0, 1000, 0, false))
	require.NoError(t, c.CreateBackupDataFile(3, desfire.CommFull, ar, 8))
	require.NoError(t, c.CreateCyclicRecordFile(4, desfire.CommFull, ar, 16, 3))
	require.NoError(t, c.WriteData(1, 0, bytes.Repeat([]byte{0x33}, 80), desfire.CommMAC))
	require.NoError(t, c.Credit(2, 99, desfire.CommFull))
	require.NoError(t, c.WriteRecord(4, 0, bytes.Repeat([]byte{0x44}, 16), desfire.CommFull))
	require.NoError(t, c.CommitTransaction())
	vc.PowerOff()
	vc.PowerOn()
	rec := &recorder{inner: cardLink{vc}}
	clientSession(t, rec)
	return rec.script
}

// TestTranscriptIsHappyPath makes sure the fuzz seed drives the client
// through the whole session without errors.
func TestTranscriptIsHappyPath(t *testing.T) {
	script := transcript(t)
	c := desfire.New(&replay{script}, desfire.WithRand(bytes.NewReader(bytes.Repeat([]byte{0x42}, 256))))
	_, err := c.GetVersion()
	require.NoError(t, err)
	aids, err := c.GetApplicationIDs()
	require.NoError(t, err)
	require.Equal(t, []desfire.AID{0x563412}, aids)
	require.NoError(t, c.SelectApplication(0x563412))
	require.NoError(t, c.AuthenticateEV2First(0, fuzzKey(t, fuzzKeys.app0)))
	ids, err := c.GetFileIDs()
	require.NoError(t, err)
	require.Equal(t, []byte{1, 2, 3, 4}, ids)
	fs, err := c.GetFileSettings(2)
	require.NoError(t, err)
	require.Equal(t, desfire.FileValue, fs.Type)
	fs, err = c.GetFileSettings(4)
	require.NoError(t, err)
	require.Equal(t, 16, fs.RecordSize)
	_, err = c.GetKeySettings()
	require.NoError(t, err)
	uid, err := c.GetCardUID()
	require.NoError(t, err)
	require.Equal(t, []byte{4, 1, 2, 3, 4, 5, 6}, uid)
	d, err := c.ReadData(1, 0, 0, desfire.CommMAC)
	require.NoError(t, err)
	require.Len(t, d, 80)
	v, err := c.GetValue(2, desfire.CommFull)
	require.NoError(t, err)
	require.Equal(t, int32(99), v)
	r, err := c.ReadRecords(4, 0, 0, 16, desfire.CommFull)
	require.NoError(t, err)
	require.Equal(t, bytes.Repeat([]byte{0x44}, 16), r)
	require.NoError(t, c.AuthenticateAES(1, fuzzKey(t, fuzzKeys.app1)))
	v, err = c.GetValue(2, desfire.CommFull)
	require.NoError(t, err)
	require.Equal(t, int32(99), v)
	_, err = c.ReadData(3, 0, 4, desfire.CommFull)
	require.NoError(t, err)
	_, err = c.ReadRecords(4, 0, 1, 16, desfire.CommFull)
	require.NoError(t, err)
	_, err = c.GetFreeMemory()
	require.NoError(t, err)
}

// FuzzClientResponses drives the client through a whole session with
// arbitrary card responses: framing, chaining, status mapping, secure
// messaging and every response parser. It must never panic.
func FuzzClientResponses(f *testing.F) {
	f.Add(transcript(f))
	f.Add([]byte{0x00, 0x02, 0x91, 0xAF})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, script []byte) {
		clientSession(t, &replay{script})
	})
}
