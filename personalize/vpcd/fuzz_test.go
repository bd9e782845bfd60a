package vpcd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"
)

// fuzzCard answers every APDU with its length and 90 00.
type fuzzCard struct{ on, off int }

func (c *fuzzCard) ATR() []byte                 { return []byte{0x3B, 0x81, 0x80, 0x01, 0x80, 0x80} }
func (c *fuzzCard) UID() []byte                 { return []byte{4, 1, 2, 3, 4, 5, 6} }
func (c *fuzzCard) PowerOn()                    { c.on++ }
func (c *fuzzCard) PowerOff()                   { c.off++ }
func (c *fuzzCard) Transmit(apdu []byte) []byte { return []byte{byte(len(apdu)), 0x90, 0x00} }

// stream is vpcd's side: what it sent, and what the bridge wrote back.
type stream struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (s *stream) Read(p []byte) (int, error)  { return s.in.Read(p) }
func (s *stream) Write(p []byte) (int, error) { return s.out.Write(p) }

func frame(msg ...byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// FuzzSession feeds the bridge arbitrary byte streams from vpcd: it must
// neither panic nor hang, must end with an error when the stream ends, and
// must write only whole, well-formed messages.
func FuzzSession(f *testing.F) {
	f.Add(frame(4))
	f.Add(bytes.Join([][]byte{frame(1), frame(4), frame(0x90, 0x60, 0, 0, 0), frame(2), frame(0)}, nil))
	f.Add(frame(0xFF, 0xCA, 0, 0, 0))
	f.Add(frame(0xFF, 0xCA, 0, 0, 3))
	f.Add([]byte{0xFF, 0xFF, 1, 2, 3})
	f.Add([]byte{0x00})
	f.Add(frame())
	f.Fuzz(func(t *testing.T, in []byte) {
		st := &stream{in: bytes.NewReader(in)}
		s := &session{rw: st, card: &fuzzCard{}, log: slog.New(slog.DiscardHandler), beforeRead: func() error { return nil }}
		err := s.loop()
		if err == nil {
			t.Fatal("loop returned nil at the end of the stream")
		}
		out := st.out.Bytes()
		for len(out) > 0 {
			if len(out) < 2 {
				t.Fatalf("torn length prefix: % X", out)
			}
			n := int(binary.BigEndian.Uint16(out))
			if len(out) < 2+n || n < 2 {
				t.Fatalf("bad message of %d bytes, %d left", n, len(out)-2)
			}
			out = out[2+n:]
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
