package desfire

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func fuzzEV2(t testing.TB) *EV2Session {
	s, err := NewEV2Session(
		[]byte{0x19, 0x54, 0x28, 0x11, 0x9C, 0x85, 0x28, 0xD5, 0x95, 0x80, 0xA7, 0x3C, 0x7C, 0x96, 0xC6, 0xA3},
		[]byte{0x0A, 0xF0, 0x0F, 0x6E, 0x39, 0xF9, 0x04, 0xC4, 0xA6, 0x38, 0x8C, 0x81, 0x2D, 0x53, 0xDC, 0x94},
		[]byte{0x9D, 0x00, 0xC4, 0xDF}, 5)
	require.NoError(t, err)
	return s
}

func fuzzEV1(t testing.TB) *EV1Session {
	s, err := NewEV1Session([]byte{0x01, 0x23, 0x45, 0x67, 0xFE, 0xDC, 0xBA, 0x98, 0x89, 0xAB, 0xCD, 0xEF, 0x76, 0x54, 0x32, 0x10})
	require.NoError(t, err)
	return s
}

// addResponseSeeds adds valid responses of every mode and a few lengths.
func addResponseSeeds(f *testing.F, card func() interface {
	WrapResponse(byte, []byte, CommMode) ([]byte, error)
}) {
	for _, mode := range allModes {
		for _, n := range []int{0, 1, 4, 7, 15, 16, 17, 32, 60} {
			data := bytes.Repeat([]byte{byte(n + 1)}, n)
			body, err := card().WrapResponse(StatusOK, data, mode)
			require.NoError(f, err)
			f.Add(byte(mode), append(body, 0x91, 0x00))
		}
	}
	f.Add(byte(0), []byte{0x91, 0xAE})
	f.Add(byte(1), []byte{0x90, 0x00})
	f.Add(byte(2), []byte{})
}

// FuzzEV2UnwrapResponse feeds arbitrary responses to the EV2 client side.
// Whatever it accepts must be exactly what a card would have sent for that
// data (parse, re-wrap, compare), and it advances the counter only then.
func FuzzEV2UnwrapResponse(f *testing.F) {
	addResponseSeeds(f, func() interface {
		WrapResponse(byte, []byte, CommMode) ([]byte, error)
	} {
		return fuzzEV2(f)
	})
	f.Fuzz(func(t *testing.T, m byte, resp []byte) {
		mode := CommMode(m % 3)
		s := fuzzEV2(t)
		out, err := s.UnwrapResponse(resp, mode)
		if err != nil {
			require.Equal(t, uint16(5), s.CmdCtr())
			return
		}
		require.Equal(t, uint16(6), s.CmdCtr())
		status := resp[len(resp)-1]
		body, err := fuzzEV2(t).WrapResponse(status, out, mode)
		require.NoError(t, err)
		require.Equal(t, resp[:len(resp)-2], nonNil(body))
	})
}

// FuzzEV1UnwrapResponse is the same for EV1 secure messaging.
func FuzzEV1UnwrapResponse(f *testing.F) {
	addResponseSeeds(f, func() interface {
		WrapResponse(byte, []byte, CommMode) ([]byte, error)
	} {
		return fuzzEV1(f)
	})
	f.Fuzz(func(t *testing.T, m byte, resp []byte) {
		mode := CommMode(m % 3)
		out, err := fuzzEV1(t).UnwrapResponse(resp, mode)
		if err != nil {
			return
		}
		body := resp[:len(resp)-2]
		if mode == CommFull && len(out) == 0 && len(body) != 8 {
			return // a cryptogram of nothing but a CRC: valid, never sent
		}
		again, err := fuzzEV1(t).WrapResponse(resp[len(resp)-1], out, mode)
		require.NoError(t, err)
		require.Equal(t, body, nonNil(again))
	})
}

// FuzzCardUnwrapCommand feeds arbitrary APDUs to the card side (what a
// virtual card does with a reader's bytes): ParseCommandAPDU, then
// UnwrapCommand of an EV2 or EV1 session. Whatever is accepted must be what
// the client sends for that data.
func FuzzCardUnwrapCommand(f *testing.F) {
	for _, mode := range allModes {
		for _, n := range []int{0, 3, 16, 40} {
			hdr := []byte{0x01, 0, 0, 0, byte(n), 0, 0}
			data := bytes.Repeat([]byte{0x5A}, n)
			a2, err := fuzzEV2(f).WrapCommand(CmdWriteData, hdr, data, mode)
			require.NoError(f, err)
			f.Add(true, byte(mode), byte(7), a2)
			a1, err := fuzzEV1(f).WrapCommand(CmdWriteData, hdr, data, mode)
			require.NoError(f, err)
			f.Add(false, byte(mode), byte(7), a1)
		}
	}
	f.Fuzz(func(t *testing.T, ev2 bool, m, h byte, apdu []byte) {
		mode := CommMode(m % 3)
		cmd, field, err := ParseCommandAPDU(apdu)
		if err != nil || cmd == CmdChangeKey {
			return
		}
		hl := int(h) % (len(field) + 1)
		header, body := field[:hl], field[hl:]
		var card, client sessionCodec = fuzzEV1(t), fuzzEV1(t)
		if ev2 {
			card, client = fuzzEV2(t), fuzzEV2(t)
		}
		out, err := card.UnwrapCommand(cmd, header, body, mode)
		if err != nil {
			return
		}
		if mode == CommFull && len(out) == 0 && len(body) > 8 {
			return // a cryptogram of only padding or CRC: valid, never sent
		}
		if !ev2 && mode == CommMAC && len(out) == 0 && len(body) > 0 {
			return // EV1: a CMAC over no data is never sent
		}
		again, err := client.WrapCommand(cmd, header, out, mode)
		require.NoError(t, err)
		_, field2, err := ParseCommandAPDU(again)
		require.NoError(t, err)
		require.Equal(t, nonNil(field), nonNil(field2))
	})
}
