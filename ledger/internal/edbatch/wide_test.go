package edbatch

import (
	"crypto/rand"
	"encoding/binary"
	"math/big"
	mathrand "math/rand/v2"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
	"github.com/stretchr/testify/require"
)

// TestSmallOrderEncodings derives the points of small order from the
// curve, as the torsion components of random points, and checks that
// smallOrderEncodings are exactly their encodings, and that voi agrees
// that a canonical encoding is of small order exactly when it is listed.
func TestSmallOrderEncodings(t *testing.T) {
	var eight, eightInv scalar.Scalar
	eight.SetUint64(8)
	eightInv.Invert(&eight)
	order := func(p *curve.EdwardsPoint) int {
		var q curve.EdwardsPoint
		q.Set(p)
		for n := 1; n <= 8; n *= 2 {
			if q.IsIdentity() {
				return n
			}
			q.Add(&q, &q)
		}
		return 0
	}
	// A random point's torsion component is P - [1/8 mod ℓ][8]P; half of
	// them generate the whole torsion group of order 8.
	var gen *curve.EdwardsPoint
	for gen == nil {
		var b [32]byte
		_, _ = rand.Read(b[:])
		var c curve.CompressedEdwardsY
		_, _ = c.SetBytes(b[:])
		var p curve.EdwardsPoint
		if _, err := p.SetCompressedY(&c); err != nil {
			continue
		}
		var p8, prime, torsion curve.EdwardsPoint
		p8.MulByCofactor(&p)
		prime.Mul(&p8, &eightInv)
		torsion.Sub(&p, &prime)
		if order(&torsion) == 8 {
			gen = &torsion
		}
	}
	want := map[[32]byte]bool{}
	var q curve.EdwardsPoint
	q.Identity()
	for range 8 {
		var c curve.CompressedEdwardsY
		c.SetEdwardsPoint(&q)
		want[[32]byte(c)] = true
		q.Add(&q, gen)
	}
	require.True(t, q.IsIdentity())
	require.Len(t, want, 8)
	got := map[[32]byte]bool{}
	for _, e := range smallOrderEncodings {
		got[e] = true
	}
	require.Equal(t, want, got)

	// Every listed encoding is canonical and decodes to a point voi calls
	// small; random canonical encodings that decode are not listed and are
	// not small.
	for e := range got {
		var c curve.CompressedEdwardsY
		_, _ = c.SetBytes(e[:])
		require.True(t, c.IsCanonicalVartime())
		var p curve.EdwardsPoint
		_, err := p.SetCompressedY(&c)
		require.NoError(t, err)
		require.True(t, p.IsSmallOrder())
		require.False(t, decodePoint(e[:], &p))
	}
	for range 200 {
		var b [32]byte
		_, _ = rand.Read(b[:])
		var c curve.CompressedEdwardsY
		_, _ = c.SetBytes(b[:])
		var p curve.EdwardsPoint
		if _, err := p.SetCompressedY(&c); err != nil || !c.IsCanonicalVartime() {
			continue
		}
		require.False(t, p.IsSmallOrder())
		require.True(t, decodePoint(b[:], &p))
	}
}

// TestBelowGroupOrder compares with voi's canonical scalar decoding at the
// edges and at random.
func TestBelowGroupOrder(t *testing.T) {
	l := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 252), bigFromString("27742317777372353535851937790883648493"))
	le := func(x *big.Int) []byte {
		b := make([]byte, 32)
		x.FillBytes(b)
		for i, j := 0, 31; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		return b
	}
	cases := []*big.Int{big.NewInt(0), big.NewInt(1), new(big.Int).Sub(l, big.NewInt(1)), l,
		new(big.Int).Add(l, big.NewInt(1)), new(big.Int).Lsh(big.NewInt(1), 252),
		new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 253), big.NewInt(1)),
		new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))}
	r := mathrand.New(mathrand.NewPCG(1, 2))
	for range 1000 {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		b[31] &= 0x1f // mostly near ℓ's size
		x := new(big.Int)
		for i := 31; i >= 0; i-- {
			x.Lsh(x, 8).Or(x, big.NewInt(int64(b[i])))
		}
		cases = append(cases, x)
	}
	for _, x := range cases {
		b := le(x)
		var s scalar.Scalar
		_, err := s.SetCanonicalBytes(b)
		require.Equal(t, err == nil, belowGroupOrder(limbsOf(b)), "%x", b)
	}
}

// TestWideSum compares the unreduced sums with big integers.
func TestWideSum(t *testing.T) {
	r := mathrand.New(mathrand.NewPCG(3, 4))
	var w wideSum
	want := new(big.Int)
	maxS := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	for i := range 2000 {
		var z [16]byte
		var s [32]byte
		for j := range z {
			z[j] = byte(r.Uint32())
		}
		for j := range s {
			s[j] = byte(r.Uint32())
		}
		if i%7 == 0 { // extremes: carries through every limb
			for j := range z {
				z[j] = 0xff
			}
			for j := range s {
				s[j] = 0xff
			}
		}
		sl := limbsOf(s[:])
		w.addMul(binary.LittleEndian.Uint64(z[:8]), binary.LittleEndian.Uint64(z[8:]), &sl)
		zb, sb := leInt(z[:]), leInt(s[:])
		require.True(t, sb.Cmp(maxS) <= 0)
		want.Add(want, new(big.Int).Mul(zb, sb))
	}
	require.Equal(t, want, leInt(w.bytes()))
}

func leInt(b []byte) *big.Int {
	x := new(big.Int)
	for i := len(b) - 1; i >= 0; i-- {
		x.Lsh(x, 8).Or(x, big.NewInt(int64(b[i])))
	}
	return x
}

func bigFromString(s string) *big.Int {
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return x
}
