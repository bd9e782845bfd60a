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
		{"version", append(append([]byte("LCTX"), 3), good[5:]...), ErrVersion},
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
	v2 := sampleItems()
	s2, err := Sign(&v2, testKey)
	require.NoError(f, err)
	f.Add(s2.Bytes())
	f.Add([]byte("LCTX\x01"))
	f.Add([]byte("LCTX\x02"))
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

// sampleItems is sample with a basket: two beers and a returned cup.
func sampleItems() Tx {
	tx := sample()
	tx.Items = []Item{
		{Product: "beer", Quantity: 2, UnitPrice: 350, VATRateBP: 2100, MenuVersion: 3},
		{Product: "fries", Quantity: 1, UnitPrice: 0, VATRateBP: 900, MenuVersion: 3},
		{Product: "cup", Quantity: -1, UnitPrice: 250, VATRateBP: 0, MenuVersion: 3},
	}
	tx.Amount = 450
	tx.BalanceAfter = tx.BalanceBefore - tx.Amount
	return tx
}

func TestRoundTripItems(t *testing.T) {
	tx := sampleItems()
	s, err := Sign(&tx, testKey)
	require.NoError(t, err)
	b := s.Bytes()
	require.Equal(t, byte(VersionItems), b[4])
	p, err := Parse(b)
	require.NoError(t, err)
	require.Equal(t, tx, p.Tx)
	require.Equal(t, b, p.Bytes())
	require.NoError(t, p.Verify(testKey.Public().(ed25519.PublicKey)))

	// Without items the same transaction is version 1, shorter by the items.
	v1 := sample()
	s1, err := Sign(&v1, testKey)
	require.NoError(t, err)
	require.Equal(t, byte(Version), s1.Bytes()[4])
	require.Equal(t, len(s1.Payload())+1+3*(1+4+8+2+4)+4+5+3, len(s.Payload()))
	require.Equal(t, s1.Payload()[5:], s.Payload()[5:len(s1.Payload())], "v2 is v1 with items before the signature")
}

func TestValidateItems(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Tx)
	}{
		{"sum above amount", func(t *Tx) { t.Items[0].Quantity = 3 }},
		{"sum below amount", func(t *Tx) { t.Items[2].Quantity = -2 }},
		{"amount not the sum", func(t *Tx) { t.Amount++; t.BalanceAfter-- }},
		{"quantity zero", func(t *Tx) { t.Items[1].Quantity = 0 }},
		{"quantity too large", func(t *Tx) { t.Items[1].Quantity = MaxQuantity + 1 }},
		{"quantity too small", func(t *Tx) { t.Items[1].Quantity = -MaxQuantity - 1 }},
		{"negative price", func(t *Tx) { t.Items[1].UnitPrice = -1 }},
		{"vat", func(t *Tx) { t.Items[1].VATRateBP = 10001 }},
		{"menu version", func(t *Tx) { t.Items[1].MenuVersion = 0 }},
		{"product empty", func(t *Tx) { t.Items[1].Product = "" }},
		{"product upper case", func(t *Tx) { t.Items[1].Product = "Fries" }},
		{"product too long", func(t *Tx) { t.Items[1].Product = string(bytes.Repeat([]byte{'a'}, 33)) }},
		{"too many items", func(t *Tx) {
			for len(t.Items) <= MaxItems {
				t.Items = append(t.Items, Item{Product: "x", Quantity: 1, UnitPrice: 0, VATRateBP: 0, MenuVersion: 1})
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sampleItems()
			tc.edit(&tx)
			_, err := tx.MarshalPayload()
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

// TestParseItemsRejects: a version 2 encoding without items, or with its
// sum changed under the signature, does not parse.
func TestParseItemsRejects(t *testing.T) {
	tx := sample()
	s, err := Sign(&tx, testKey)
	require.NoError(t, err)
	b := s.Bytes()
	// Version 2 with a zero item count where the signature begins.
	noItems := append(bytes.Clone(s.Payload()), 0)
	noItems[4] = VersionItems
	_, err = Parse(append(noItems, s.Signature...))
	require.ErrorIs(t, err, ErrMalformed)
	// Version 1 bytes with the version byte set to 2: the signature's first
	// byte is read as a count and the rest does not fit.
	b2 := bytes.Clone(b)
	b2[4] = VersionItems
	_, err = Parse(b2)
	require.ErrorIs(t, err, ErrMalformed)

	ti := sampleItems()
	si, err := Sign(&ti, testKey)
	require.NoError(t, err)
	bi := si.Bytes()
	// The last item's quantity (-1) made -2: the sum no longer matches.
	q := len(bi) - SignatureSize - 4 - 2 - 8 - 4
	require.Equal(t, []byte{0xff, 0xff, 0xff, 0xff}, bi[q:q+4])
	bi[q+3] = 0xfe
	_, err = Parse(bi)
	require.ErrorIs(t, err, ErrMalformed)
	// Version 2 read as version 1 leaves trailing bytes.
	bi = si.Bytes()
	bi[4] = Version
	_, err = Parse(bi)
	require.ErrorIs(t, err, ErrMalformed)
}
