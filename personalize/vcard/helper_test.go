package vcard_test

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// fixedRand returns its bytes, then zeros; tests use it to fix RndB and TI.
type fixedRand struct{ b []byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	clear(p[n:])
	return len(p), nil
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

var testUID = []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}

func newCard(t testing.TB, opts vcard.Options) *vcard.Card {
	t.Helper()
	if opts.UID == nil {
		opts.UID = testUID
	}
	c, err := vcard.New(opts)
	require.NoError(t, err)
	return c
}

// client is a minimal test-side DESFire client: framing, EV2 and EV1
// sessions from the desfire package, and the authentication handshakes.
type client struct {
	t   testing.TB
	c   *vcard.Card
	ev2 *desfire.EV2Session
	ev1 *desfire.EV1Session
}

func newClient(t testing.TB, c *vcard.Card) *client { return &client{t: t, c: c} }

// apdu wraps a native command.
func apdu(cmd byte, data []byte) []byte {
	if len(data) == 0 {
		return []byte{0x90, cmd, 0, 0, 0}
	}
	return slices.Concat([]byte{0x90, cmd, 0, 0, byte(len(data))}, data, []byte{0})
}

// exchange sends a native command's data field in frames of at most 55 bytes
// and collects all response frames. It returns the final status and data.
func (x *client) exchange(cmd byte, data []byte) (byte, []byte) {
	x.t.Helper()
	const frame = 55
	first := data
	if len(first) > frame {
		first = data[:frame]
	}
	rest := data[len(first):]
	resp := x.c.Transmit(apdu(cmd, first))
	for len(rest) > 0 {
		require.Equal(x.t, []byte{0x91, 0xAF}, resp, "card must ask for the next frame")
		n := min(frame, len(rest))
		resp = x.c.Transmit(apdu(0xAF, rest[:n]))
		rest = rest[n:]
	}
	var out []byte
	for {
		require.GreaterOrEqual(x.t, len(resp), 2)
		require.Equal(x.t, byte(0x91), resp[len(resp)-2])
		out = append(out, resp[:len(resp)-2]...)
		if resp[len(resp)-1] != 0xAF {
			return resp[len(resp)-1], out
		}
		resp = x.c.Transmit(apdu(0xAF, nil))
	}
}

// do runs a command in the current session with mode and returns status and
// plain response data. Errors drop the session, as the card does.
func (x *client) do(cmd byte, hdr, data []byte, mode desfire.CommMode) (byte, []byte) {
	x.t.Helper()
	payload := slices.Concat(hdr, data)
	var err error
	switch {
	case x.ev2 != nil:
		var a []byte
		a, err = x.ev2.WrapCommand(cmd, hdr, data, mode)
		require.NoError(x.t, err)
		payload = a[5 : len(a)-1]
		if len(a) == 5 {
			payload = nil
		}
	case x.ev1 != nil:
		var a []byte
		a, err = x.ev1.WrapCommand(cmd, hdr, data, mode)
		require.NoError(x.t, err)
		payload = nil
		if len(a) > 5 {
			payload = a[5 : len(a)-1]
		}
	}
	st, out := x.exchange(cmd, payload)
	if !desfire.IsSuccess(st) {
		x.ev1, x.ev2 = nil, nil
		return st, nil
	}
	full := append(out, 0x91, st)
	switch {
	case x.ev2 != nil:
		out, err = x.ev2.UnwrapResponse(full, mode)
		require.NoError(x.t, err, "response of command %02X", cmd)
	case x.ev1 != nil:
		out, err = x.ev1.UnwrapResponse(full, mode)
		require.NoError(x.t, err, "response of command %02X", cmd)
	}
	return st, out
}

// ok runs do and requires status OK.
func (x *client) ok(cmd byte, hdr, data []byte, mode desfire.CommMode) []byte {
	x.t.Helper()
	st, out := x.do(cmd, hdr, data, mode)
	require.Equal(x.t, byte(0), st, "status of command %02X", cmd)
	return out
}

func (x *client) selectApp(aid uint32) byte {
	x.t.Helper()
	st, _ := x.exchange(desfire.CmdSelectApplication, []byte{byte(aid), byte(aid >> 8), byte(aid >> 16)})
	x.ev1, x.ev2 = nil, nil
	return st
}

func aesCrypt(t testing.TB, key, iv, data []byte, enc bool) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	require.NoError(t, err)
	out := make([]byte, len(data))
	if enc {
		cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, data)
	} else {
		cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, data)
	}
	return out
}

func rot(b []byte) []byte { return append(slices.Clone(b[1:]), b[0]) }

// authEV2 runs AuthenticateEV2First (or NonFirst when x has an EV2 session)
// and returns the card's status.
func (x *client) authEV2(first bool, keyNo byte, key, rndA []byte) byte {
	x.t.Helper()
	cmd, data := byte(0x77), []byte{keyNo}
	if first {
		cmd, data = 0x71, []byte{keyNo, 0x00}
	}
	prev := x.ev2
	x.ev1, x.ev2 = nil, nil
	st, encB := x.exchange1(cmd, data)
	if st != 0xAF {
		return st
	}
	zero := make([]byte, 16)
	rndB := aesCrypt(x.t, key, zero, encB, false)
	st, out := x.exchange1(0xAF, aesCrypt(x.t, key, zero, slices.Concat(rndA, rot(rndB)), true))
	if st != 0 {
		return st
	}
	pt := aesCrypt(x.t, key, zero, out, false)
	enc, mac, err := desfire.EV2SessionKeys(key, rndA, rndB)
	require.NoError(x.t, err)
	if first {
		require.Len(x.t, pt, 32)
		require.Equal(x.t, rot(rndA), pt[4:20])
		x.ev2, err = desfire.NewEV2Session(enc, mac, pt[:4], 0)
	} else {
		require.Equal(x.t, rot(rndA), pt)
		x.ev2, err = desfire.NewEV2Session(enc, mac, prev.TI(), prev.CmdCtr())
	}
	require.NoError(x.t, err)
	return st
}

// authAES runs AuthenticateAES (EV1).
func (x *client) authAES(keyNo byte, key, rndA []byte) byte {
	x.t.Helper()
	x.ev1, x.ev2 = nil, nil
	st, encB := x.exchange1(0xAA, []byte{keyNo})
	if st != 0xAF {
		return st
	}
	rndB := aesCrypt(x.t, key, make([]byte, 16), encB, false)
	msg := aesCrypt(x.t, key, encB, slices.Concat(rndA, rot(rndB)), true)
	st, out := x.exchange1(0xAF, msg)
	if st != 0 {
		return st
	}
	require.Equal(x.t, rot(rndA), aesCrypt(x.t, key, msg[16:], out, false))
	var err error
	x.ev1, err = desfire.NewEV1Session(desfire.EV1SessionKeyAES(rndA, rndB))
	require.NoError(x.t, err)
	return st
}

// exchange1 sends one frame and returns status and data.
func (x *client) exchange1(cmd byte, data []byte) (byte, []byte) {
	x.t.Helper()
	resp := x.c.Transmit(apdu(cmd, data))
	require.GreaterOrEqual(x.t, len(resp), 2)
	require.Equal(x.t, byte(0x91), resp[len(resp)-2], "% X", resp)
	return resp[len(resp)-1], resp[:len(resp)-2]
}

func le24(n int) []byte { return []byte{byte(n), byte(n >> 8), byte(n >> 16)} }

func le32(v int32) []byte {
	u := uint32(v)
	return []byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)}
}

// rwHdr is the 7-byte header of ReadData/WriteData/WriteRecord/ReadRecords.
func rwHdr(file byte, off, n int) []byte { return slices.Concat([]byte{file}, le24(off), le24(n)) }
