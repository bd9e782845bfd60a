package desfire

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// step is one scripted APDU exchange.
type step struct{ cmd, resp []byte }

// script is a Transmitter that expects exactly the scripted commands.
type script struct {
	t     *testing.T
	steps []step
	i     int
}

func newScript(t *testing.T, steps ...step) *script {
	s := &script{t: t, steps: steps}
	t.Cleanup(func() {
		if !t.Failed() {
			require.Equal(t, len(s.steps), s.i, "not all scripted exchanges happened")
		}
	})
	return s
}

func (s *script) Transmit(apdu []byte) ([]byte, error) {
	if s.i >= len(s.steps) {
		s.t.Errorf("unexpected APDU % X", apdu)
		return nil, errors.New("script exhausted")
	}
	st := s.steps[s.i]
	s.i++
	require.Equal(s.t, st.cmd, apdu, "exchange %d", s.i)
	return st.resp, nil
}

func aesKey(t *testing.T, b []byte) Key {
	t.Helper()
	k, err := NewAESKey(b, 0)
	require.NoError(t, err)
	return k
}

// TestAN12196AuthenticateEV2First replays the AN12196 section 6.6 exchange
// through the client byte for byte and checks the resulting session.
func TestAN12196AuthenticateEV2First(t *testing.T) {
	for _, tc := range loadVectors(t).AuthEV2First {
		t.Run(tc.Source, func(t *testing.T) {
			var steps []step
			for _, e := range tc.Exchange {
				steps = append(steps, step{e.Command, e.Response})
			}
			c := New(newScript(t, steps...), WithRand(bytes.NewReader(tc.RndA)))
			require.NoError(t, c.AuthenticateEV2First(tc.KeyNo[0], aesKey(t, tc.Key)))
			require.Equal(t, AuthEV2, c.Scheme())
			s := c.EV2()
			require.Equal(t, []byte(tc.TI), s.TI())
			require.Equal(t, uint16(0), s.CmdCtr())

			// The session keys are the vector's: a session built from them
			// wraps a command identically.
			ref, err := NewEV2Session(tc.Enc, tc.MAC, tc.TI, 0)
			require.NoError(t, err)
			want, err := ref.WrapCommand(CmdWriteData, []byte{1, 0, 0, 0, 3, 0, 0}, []byte{1, 2, 3}, CommFull)
			require.NoError(t, err)
			got, err := s.WrapCommand(CmdWriteData, []byte{1, 0, 0, 0, 3, 0, 0}, []byte{1, 2, 3}, CommFull)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func TestAuthenticateEV2FirstWrongKey(t *testing.T) {
	tc := loadVectors(t).AuthEV2First[0]
	// The card's answer does not contain RndA' for this key: the client
	// must refuse it.
	wrong := aesKey(t, mustHex(t, "00112233445566778899AABBCCDDEEFF"))
	sc := &script{t: t, steps: []step{
		{tc.Exchange[0].Command, tc.Exchange[0].Response},
		{nil, tc.Exchange[1].Response},
	}}
	sc.steps[1].cmd = nil
	c := New(transmitFunc(func(apdu []byte) ([]byte, error) {
		st := sc.steps[sc.i]
		sc.i++
		return st.resp, nil
	}), WithRand(bytes.NewReader(tc.RndA)))
	err := c.AuthenticateEV2First(0, wrong)
	require.ErrorIs(t, err, ErrIntegrity)
	require.Equal(t, AuthNone, c.Scheme())

	// A card refusing the key.
	c = New(newScript(t, step{mustHex(t, "9071000002000000"), []byte{0x91, 0xAE}}))
	err = c.AuthenticateEV2First(0, wrong)
	require.ErrorIs(t, err, ErrAuthentication)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, CmdAuthenticateEV2First, se.Cmd)
}

type transmitFunc func([]byte) ([]byte, error)

func (f transmitFunc) Transmit(apdu []byte) ([]byte, error) { return f(apdu) }

// TestChainingBothWays checks frame splitting of a long command and the
// joining of a chained answer.
func TestChainingBothWays(t *testing.T) {
	data := make([]byte, 120)
	for i := range data {
		data[i] = byte(i)
	}
	h := []byte{0x01, 0, 0, 0, 120, 0, 0}
	whole := append(append([]byte(nil), h...), data...)
	frame := func(ins byte, d []byte) []byte {
		a, err := buildAPDU(ins, d)
		require.NoError(t, err)
		return a
	}
	c := New(newScript(t,
		step{frame(CmdWriteData, whole[:55]), []byte{0x91, 0xAF}},
		step{frame(CmdAdditionalFrame, whole[55:110]), []byte{0x91, 0xAF}},
		step{frame(CmdAdditionalFrame, whole[110:]), []byte{0x91, 0x00}},
		step{frame(CmdReadData, []byte{0x01, 0, 0, 0, 0, 0, 0}), append(append([]byte(nil), data[:59]...), 0x91, 0xAF)},
		step{[]byte{0x90, 0xAF, 0, 0, 0}, append(append([]byte(nil), data[59:118]...), 0x91, 0xAF)},
		step{[]byte{0x90, 0xAF, 0, 0, 0}, append(append([]byte(nil), data[118:]...), 0x91, 0x00)},
	))
	require.NoError(t, c.WriteData(1, 0, data, CommPlain))
	got, err := c.ReadData(1, 0, 0, CommPlain)
	require.NoError(t, err)
	require.Equal(t, data, got)
}

// TestStatusErrorsFromClient checks that a card status reaches the caller
// as a typed error naming the command, for every known status.
func TestStatusErrorsFromClient(t *testing.T) {
	for status, sentinel := range statusSentinels {
		if status == StatusNoChanges || status == StatusMoreFrames {
			continue
		}
		c := New(newScript(t, step{[]byte{0x90, CmdGetKeyVersion, 0, 0, 1, 0, 0}, []byte{0x91, status}}))
		_, err := c.GetKeyVersion(0)
		require.ErrorIs(t, err, sentinel)
		var se *StatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, CmdGetKeyVersion, se.Cmd)
	}
	// Not a DESFire status word.
	c := New(newScript(t, step{[]byte{0x90, CmdGetFreeMemory, 0, 0, 0}, []byte{0x6A, 0x82}}))
	_, err := c.GetFreeMemory()
	require.ErrorIs(t, err, ErrMalformed)
}

// TestKeysNeverLogged runs an authentication with debug logging and checks
// that no key or random appears in the log.
func TestKeysNeverLogged(t *testing.T) {
	tc := loadVectors(t).AuthEV2First[0]
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var steps []step
	for _, e := range tc.Exchange {
		steps = append(steps, step{e.Command, e.Response})
	}
	key := aesKey(t, mustHex(t, "00112233445566778899AABBCCDDEEFF"))
	c := New(newScript(t, steps...), WithRand(bytes.NewReader(tc.RndA)), WithLogger(log))
	err := c.AuthenticateEV2First(0, aesKey(t, tc.Key))
	require.NoError(t, err)
	require.Contains(t, buf.String(), "desfire authenticated")
	for _, secret := range [][]byte{tc.RndA, tc.RndB, tc.Enc, tc.MAC} {
		require.NotContains(t, buf.String(), hexUpper(secret))
		require.NotContains(t, buf.String(), hexLower(secret))
	}
	// Printing a Key shows no key bytes.
	for _, f := range []string{"%v", "%+v", "%#v", "%x", "%s"} {
		s := sprintf(f, key)
		require.NotContains(t, s, "112233")
		require.NotContains(t, s, "\x11\x22\x33")
	}
}
