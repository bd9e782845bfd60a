package blocklist_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/blocklist"
)

// signed returns the delta from version from (0: whole) to version, for
// the list all, signed by key.
func signed(sign func([]byte) []byte, org int64, from, version uint64, all, add, rm [][]byte) blocklist.Delta {
	enc := blocklist.Encode(all)
	st := blocklist.Statement(org, version, countOf(all), sha256.Sum256(enc))
	return blocklist.Delta{From: from, Version: version, Add: blocklist.Encode(add), Remove: blocklist.Encode(rm), Count: countOf(all), Signature: sign(st)}
}

func countOf(ids [][]byte) int {
	d, _ := blocklist.Decode(blocklist.Encode(ids))
	return len(d)
}

func card(i int) []byte {
	b := make([]byte, 7)
	b[0] = 0x04
	binary.BigEndian.PutUint32(b[3:], uint32(i))
	return b
}

func TestApplyVerifiesAndTakesDeltas(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sign := func(m []byte) []byte { return ed25519.Sign(priv, m) }
	const org = 7

	l := blocklist.Empty(org)
	v1 := [][]byte{card(3), card(1), card(2)}
	l1, err := l.Apply(pub, signed(sign, org, 0, 1, v1, v1, nil))
	require.NoError(t, err)
	require.Equal(t, 3, l1.Len())
	require.True(t, l1.Contains(card(2)))
	require.False(t, l1.Contains(card(4)))

	// A delta: card 2 unblocked, card 4 blocked.
	v2 := [][]byte{card(1), card(3), card(4)}
	l2, err := l1.Apply(pub, signed(sign, org, 1, 3, v2, [][]byte{card(4)}, [][]byte{card(2)}))
	require.NoError(t, err)
	require.False(t, l2.Contains(card(2)))
	require.True(t, l2.Contains(card(4)))
	require.Equal(t, uint64(3), l2.Version)

	// A delta from another version changes nothing.
	_, err = l1.Apply(pub, signed(sign, org, 2, 3, v2, nil, nil))
	require.ErrorIs(t, err, blocklist.ErrVersion)

	// A delta that drops a card the signature lists (a server or a
	// network that leaves a stolen card off) does not verify.
	_, err = l1.Apply(pub, signed(sign, org, 1, 3, v2, nil, [][]byte{card(2)}))
	require.ErrorIs(t, err, blocklist.ErrSignature)
	// Another organizer's list, or another key, does not verify either.
	_, err = blocklist.Empty(org+1).Apply(pub, signed(sign, org, 0, 1, v1, v1, nil))
	require.ErrorIs(t, err, blocklist.ErrSignature)
	other, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, err = l.Apply(other, signed(sign, org, 0, 1, v1, v1, nil))
	require.ErrorIs(t, err, blocklist.ErrSignature)

	// A stored list loads back.
	l3, err := blocklist.Load(pub, org, l2.Version, l2.Encoded(), l2.Signature)
	require.NoError(t, err)
	require.Equal(t, l2.Encoded(), l3.Encoded())
}

func TestECDSA(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ids := [][]byte{card(9)}
	st := blocklist.Statement(1, 1, 1, sha256.Sum256(blocklist.Encode(ids)))
	sig, err := blocklist.Sign(priv, st)
	require.NoError(t, err)
	l, err := blocklist.Empty(1).Apply(&priv.PublicKey, blocklist.Delta{Version: 1, Add: blocklist.Encode(ids), Count: 1, Signature: sig})
	require.NoError(t, err)
	require.True(t, l.Contains(card(9)))
}

func TestDecodeRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"short id":   {2, 1, 2},
		"long id":    append([]byte{11}, make([]byte, 11)...),
		"truncated":  {7, 1, 2, 3},
		"unsorted":   append(blocklist.Encode([][]byte{card(2)}), blocklist.Encode([][]byte{card(1)})...),
		"duplicated": append(blocklist.Encode([][]byte{card(1)}), blocklist.Encode([][]byte{card(1)})...),
	} {
		_, err := blocklist.Decode(b)
		require.ErrorIs(t, err, blocklist.ErrMalformed, name)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(blocklist.Encode([][]byte{card(1), card(2), {1, 2, 3, 4}}))
	f.Add([]byte{4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := blocklist.Decode(b)
		if err != nil {
			return
		}
		// What parses encodes back to the same bytes.
		if !bytes.Equal(blocklist.Encode(ids), b) {
			t.Fatalf("decode/encode differ for %x", b)
		}
	})
}

// At 500,000 cards with 1 % blocked: the whole list's size, the size of
// the delta a terminal takes for one more card, and the check of a tap.
func BenchmarkCheck500k(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(b, err)
	const cards, blocked = 500_000, 5_000
	var ids [][]byte
	for i := range blocked {
		ids = append(ids, card(i*(cards/blocked)))
	}
	enc := blocklist.Encode(ids)
	st := blocklist.Statement(1, 1, blocked, sha256.Sum256(enc))
	l, err := blocklist.Empty(1).Apply(pub, blocklist.Delta{Version: 1, Add: enc, Count: blocked, Signature: ed25519.Sign(priv, st)})
	require.NoError(b, err)
	more := append(ids, card(1))
	enc2 := blocklist.Encode(more)
	st2 := blocklist.Statement(1, 2, len(more), sha256.Sum256(enc2))
	delta := blocklist.Delta{From: 1, Version: 2, Add: blocklist.Encode([][]byte{card(1)}), Count: len(more), Signature: ed25519.Sign(priv, st2)}
	probes := make([][]byte, 4096)
	for i := range probes {
		probes[i] = card(i * 97 % cards)
	}
	b.Run("check", func(b *testing.B) {
		hit := 0
		for i := 0; b.Loop(); i++ {
			if l.Contains(probes[i%len(probes)]) {
				hit++
			}
		}
		b.ReportMetric(float64(len(enc)), "list-bytes")
		b.ReportMetric(float64(len(delta.Add)+len(delta.Signature)+16), "delta-bytes")
	})
	b.Run("apply-delta", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Apply(pub, delta); err != nil {
				b.Fatal(err)
			}
		}
	})
}
