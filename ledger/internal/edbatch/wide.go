package edbatch

import (
	"encoding/binary"
	"math/bits"
)

// The batch equation's scalars Σ zᵢsᵢ and, per key, Σ zᵢkᵢ are summed as
// plain integers and reduced modulo the group order once, at the end:
// reducing each product, as scalar.Mul does (two Montgomery reductions),
// cost about as much as hashing the message. A product of a 128-bit zᵢ
// and a scalar below 2^253 has 381 bits, so a 512-bit sum holds 2^131 of
// them; the sum reduced modulo ℓ equals the sum of the reduced products.

// limbs is a 256-bit little-endian integer in 64-bit limbs.
type limbs [4]uint64

func limbsOf(b []byte) limbs {
	return limbs{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:]),
		binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])}
}

// groupOrder is ℓ = 2^252 + 27742317777372353535851937790883648493.
var groupOrder = limbs{0x5812631a5cf5d3ed, 0x14def9dea2f79cd6, 0, 0x1000000000000000}

// belowGroupOrder reports whether s < ℓ: the canonical encodings of a
// scalar, the only s that RFC 8032 (and curve25519-voi) accept.
func belowGroupOrder(s limbs) bool {
	for i := 3; i >= 0; i-- {
		if s[i] != groupOrder[i] {
			return s[i] < groupOrder[i]
		}
	}
	return false
}

// wideSum is a 512-bit little-endian sum of products.
type wideSum [8]uint64

// addMul adds z·s to w, z being 128 bits (z0 low, z1 high).
func (w *wideSum) addMul(z0, z1 uint64, s *limbs) {
	var p [6]uint64
	var carry uint64
	for j := range 4 {
		hi, lo := bits.Mul64(z0, s[j])
		var c uint64
		p[j], c = bits.Add64(lo, carry, 0)
		carry = hi + c
	}
	p[4] = carry
	carry = 0
	for j := range 4 {
		// z1·s[j] + carry + p[j+1] < 2^128: the high word cannot overflow.
		hi, lo := bits.Mul64(z1, s[j])
		var c uint64
		lo, c = bits.Add64(lo, carry, 0)
		hi += c
		p[j+1], c = bits.Add64(lo, p[j+1], 0)
		carry = hi + c
	}
	p[5] = carry
	var c uint64
	for i := range 6 {
		w[i], c = bits.Add64(w[i], p[i], c)
	}
	w[6], c = bits.Add64(w[6], 0, c)
	w[7] += c
}

// bytes returns w as 64 little-endian bytes, for SetBytesModOrderWide.
func (w *wideSum) bytes() []byte {
	out := make([]byte, 64)
	for i, v := range w {
		binary.LittleEndian.PutUint64(out[8*i:], v)
	}
	return out
}
