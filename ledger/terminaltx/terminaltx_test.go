package terminaltx

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/stretchr/testify/require"
)

var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))

func sample() Tx {
	return Tx{
		Kind:          KindDebit,
		ID:            txid.New(time.UnixMilli(1_760_000_000_000), bytes.Repeat([]byte{0xab}, 10)),
		Organizer:     42,
		Terminal:      "bar-north.1",
		TerminalSeq:   17,
		Card:          []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66},
		CardSeq:       9,
		Amount:        450,
		BalanceBefore: 2000,
		BalanceAfter:  1550,
		Merchant:      "burger_stand",
		Time:          time.UnixMilli(1_760_000_000_123).UTC(),
	}
}

func TestRoundTrip(t *testing.T) {
	tx := sample()
	s, err := Sign(&tx, testKey)
	require.NoError(t, err)
	b := s.Bytes()
	p, err := Parse(b)
	require.NoError(t, err)
	require.Equal(t, tx, p.Tx)
	require.Equal(t, b, p.Bytes())
	require.NoError(t, p.Verify(testKey.Public().(ed25519.PublicKey)))
	require.Equal(t, s.ContentHash(), p.ContentHash())
	require.Equal(t, byte(0x70), p.ID[6]&0xf0, "UUIDv7 version nibble")
	require.Equal(t, "0199c82c-c000-7bab-abab-abababababab", p.ID.String())
}

func TestVerifyRejects(t *testing.T) {
	tx := sample()
	s, err := Sign(&tx, testKey)
	require.NoError(t, err)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	require.ErrorIs(t, s.Verify(other.Public().(ed25519.PublicKey)), ErrSignature)
	require.ErrorIs(t, s.Verify(nil), ErrSignature)

	b := s.Bytes()
	b[25] ^= 1 // inside the organizer id
	p, err := Parse(b)
	require.NoError(t, err)
	require.ErrorIs(t, p.Verify(testKey.Public().(ed25519.PublicKey)), ErrSignature)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Tx)
	}{
		{"kind", func(t *Tx) { t.Kind = 2 }},
		{"zero id", func(t *Tx) { t.ID = txid.ID{} }},
		{"organizer", func(t *Tx) { t.Organizer = 0 }},
		{"terminal empty", func(t *Tx) { t.Terminal = "" }},
		{"terminal upper case", func(t *Tx) { t.Terminal = "Bar" }},
		{"terminal too long", func(t *Tx) { t.Terminal = string(bytes.Repeat([]byte{'a'}, 65)) }},
		{"terminal seq", func(t *Tx) { t.TerminalSeq = 0 }},
		{"card short", func(t *Tx) { t.Card = []byte{1, 2, 3} }},
		{"card long", func(t *Tx) { t.Card = make([]byte, 11) }},
		{"card seq", func(t *Tx) { t.CardSeq = 0 }},
		{"amount zero", func(t *Tx) { t.Amount = 0; t.BalanceAfter = t.BalanceBefore }},
		{"amount negative", func(t *Tx) { t.Amount = -5; t.BalanceAfter = t.BalanceBefore + 5 }},
		{"balance chain", func(t *Tx) { t.BalanceAfter++ }},
		{"negative after", func(t *Tx) { t.BalanceBefore = 100; t.BalanceAfter = -350 }},
		{"merchant", func(t *Tx) { t.Merchant = "a b" }},
		{"time", func(t *Tx) { t.Time = time.Unix(0, 0) }},
		{"time in year 10000", func(t *Tx) { t.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"time far ahead", func(t *Tx) { t.Time = time.UnixMilli(1 << 62) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sample()
			tc.edit(&tx)
			_, err := tx.MarshalPayload()
			require.ErrorIs(t, err, ErrMalformed)
			_, err = Sign(&tx, testKey)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func TestParseRejects(t *testing.T) {
	tx := sample()
	s, err := Sign(&tx, testKey)
	require.NoError(t, err)
	good := s.Bytes()
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"magic", append([]byte("LCTY"), good[4:]...), ErrMalformed},
		{"version", append(append([]byte("LCTX"), 2), good[5:]...), ErrVersion},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing", append(bytes.Clone(good), 0), ErrMalformed},
		{"only magic", []byte("LCTX"), ErrMalformed},
		{"time in year 10000", withTime(good, 253402300800000), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.b)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestBatch(t *testing.T) {
	var txs []*Signed
	for i := range 3 {
		tx := sample()
		tx.TerminalSeq = int64(i + 1)
		s, err := Sign(&tx, testKey)
		require.NoError(t, err)
		txs = append(txs, s)
	}
	body := AppendBatch(nil, txs...)
	parts, err := SplitBatch(body)
	require.NoError(t, err)
	require.Len(t, parts, 3)
	for i, p := range parts {
		require.Equal(t, txs[i].Bytes(), p)
	}
	_, err = SplitBatch(body[:len(body)-1])
	require.ErrorIs(t, err, ErrMalformed)
	_, err = SplitBatch([]byte{0})
	require.ErrorIs(t, err, ErrMalformed)
	empty, err := SplitBatch(nil)
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestCardHex(t *testing.T) {
	b, err := ParseCardHex("04112233445566")
	require.NoError(t, err)
	require.Equal(t, "04112233445566", CardHex(b))
	_, err = ParseCardHex("0411")
	require.True(t, errors.Is(err, ErrMalformed))
	_, err = ParseCardHex("zz112233")
	require.ErrorIs(t, err, ErrMalformed)
}

// FuzzParse checks that every accepted input re-encodes to itself and that
// parsing never panics.
func FuzzParse(f *testing.F) {
	tx := sample()
	s, err := Sign(&tx, testKey)
	require.NoError(f, err)
	f.Add(s.Bytes())
	f.Add([]byte("LCTX\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		if !bytes.Equal(p.Bytes(), b) {
			t.Fatalf("re-encoding differs")
		}
		again, err := p.Tx.MarshalPayload()
		if err != nil || !bytes.Equal(again, p.Payload()) {
			t.Fatalf("MarshalPayload differs from parsed payload: %v", err)
		}
	})
}

func FuzzSplitBatch(f *testing.F) {
	f.Add([]byte{0, 1, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := SplitBatch(b)
		if err != nil {
			return
		}
		n := 0
		for _, p := range parts {
			n += 2 + len(p)
		}
		if n != len(b) {
			t.Fatalf("split lost bytes")
		}
	})
}

// withTime returns the encoding b with its time field (just before the
// signature) set to ms.
func withTime(b []byte, ms uint64) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint64(b[len(b)-SignatureSize-8:], ms)
	return b
}
