// Package edbatch verifies batches of Ed25519 signatures of which many
// share a public key, as a terminal's upload does: every transaction in it
// is signed by the one terminal.
//
// It checks the same cofactored batch equation as curve25519-voi's
// BatchVerifier with its default options,
//
//	[8]([-Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢkᵢ]Aᵢ) = 0,
//
// for random 128-bit zᵢ, and accepts and refuses the same encodings: R and
// A canonical and not of small order, s below the group order. What differs
// is only the evaluation: the terms of one key are gathered into one,
// Σᵢ[zᵢkᵢ]A = [Σᵢ zᵢkᵢ]A, so a batch of n signatures by one key is a
// multi-scalar multiplication of n+2 points instead of 2n+1. Reducing the
// summed scalar modulo the group order can only change the sum by a point
// of small order (A may have a torsion component), which the cofactor [8]
// removes, so the outcome is the same as the unmerged equation's.
//
// The cryptography (point decoding, reduction modulo the group order, the
// multi-scalar multiplication) is curve25519-voi's. This package arranges
// the terms, sums the scalars before reducing them once (wide.go), and
// recognises the encodings of points of small order by their bytes.
package edbatch

import (
	cryptorand "crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

const (
	// PublicKeySize and SignatureSize are Ed25519's (RFC 8032).
	PublicKeySize = 32
	SignatureSize = 64
)

// ErrKey refuses a public key that is not a canonical encoding of a point
// of more than small order.
var ErrKey = errors.New("edbatch: invalid Ed25519 public key")

// Key is a public key decoded and checked once, to verify many signatures.
type Key struct {
	compressed [PublicKeySize]byte
	point      curve.EdwardsPoint
}

// NewKey decodes pub, refusing what curve25519-voi's default verification
// refuses: a non-canonical encoding, a point not on the curve, or a point
// of small order.
func NewKey(pub []byte) (*Key, error) {
	k := &Key{}
	if len(pub) != PublicKeySize || !decodePoint(pub, &k.point) {
		return nil, ErrKey
	}
	copy(k.compressed[:], pub)
	return k, nil
}

// decodePoint decodes a canonical encoding of a point that is not of small
// order into p.
func decodePoint(b []byte, p *curve.EdwardsPoint) bool {
	var c curve.CompressedEdwardsY
	if _, err := c.SetBytes(b); err != nil || !c.IsCanonicalVartime() || isSmallOrderEncoding(&c) {
		return false
	}
	_, err := p.SetCompressedY(&c)
	return err == nil
}

// smallOrderEncodings are the canonical encodings of the eight points of
// small order: the identity, the point of order 2, the two of order 4
// (y = 0) and the four of order 8. A canonical encoding decodes to a point
// of small order exactly when it is one of these (TestSmallOrderEncodings
// derives them from the curve), so comparing bytes answers what [8]P = 0
// would, without the three doublings and two field encodings.
var smallOrderEncodings = func() [][32]byte {
	hexes := []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000080",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
	}
	out := make([][32]byte, len(hexes))
	for i, h := range hexes {
		if _, err := hex.Decode(out[i][:], []byte(h)); err != nil {
			panic(err)
		}
	}
	return out
}()

func isSmallOrderEncoding(c *curve.CompressedEdwardsY) bool {
	for i := range smallOrderEncodings {
		if *c == curve.CompressedEdwardsY(smallOrderEncodings[i]) {
			return true
		}
	}
	return false
}

// Verifier gathers signatures for one batch verification.
type Verifier struct {
	entries []entry
	keys    map[*Key]int // index of each key in keyList
	keyList []*Key
	invalid bool      // an entry that cannot be valid was added
	h       hash.Hash // SHA-512, reused for each signature's H(R || A || M)
}

type entry struct {
	r    curve.EdwardsPoint
	s, k limbs // k = H(R || A || M) mod ℓ
	key  int
}

// NewVerifier returns a Verifier with room for n signatures.
func NewVerifier(n int) *Verifier {
	return &Verifier{entries: make([]entry, 0, n), keys: map[*Key]int{}, h: sha512.New()}
}

// Add adds the signature sig of msg by key. A signature that cannot be
// valid (wrong length, R not a canonical point of more than small order, s
// not below the group order) makes Verify return false.
func (v *Verifier) Add(key *Key, msg, sig []byte) {
	if v.invalid {
		return // the batch fails whatever follows
	}
	if key == nil || len(sig) != SignatureSize {
		v.invalid = true
		return
	}
	v.entries = append(v.entries, entry{})
	e := &v.entries[len(v.entries)-1]
	if !decodePoint(sig[:32], &e.r) {
		v.invalid = true
		return
	}
	if e.s = limbsOf(sig[32:]); !belowGroupOrder(e.s) {
		v.invalid = true
		return
	}
	h := v.h
	h.Reset()
	h.Write(sig[:32])
	h.Write(key.compressed[:])
	h.Write(msg)
	var digest [sha512.Size]byte
	var k scalar.Scalar
	if _, err := k.SetBytesModOrderWide(h.Sum(digest[:0])); err != nil {
		v.invalid = true
		return
	}
	var kb [32]byte
	_ = k.ToBytes(kb[:])
	e.k = limbsOf(kb[:])
	j, ok := v.keys[key]
	if !ok {
		j = len(v.keyList)
		v.keys[key] = j
		v.keyList = append(v.keyList, key)
	}
	e.key = j
}

// Verify reports whether every signature added is valid, with the random
// coefficients drawn from rnd (crypto/rand if nil). It returns false for an
// empty batch. When it returns false it does not say which signature is
// bad: verify them one by one to find out.
func (v *Verifier) Verify(rnd io.Reader) bool {
	n := len(v.entries)
	if v.invalid || n == 0 {
		return false
	}
	if rnd == nil {
		rnd = cryptorand.Reader
	}
	random := make([]byte, 16*n)
	if _, err := io.ReadFull(rnd, random); err != nil {
		panic("edbatch: no randomness: " + err.Error())
	}
	nk := len(v.keyList)
	// Points: B, R₁…Rₙ, A₁…A_k.
	scalarVals := make([]scalar.Scalar, 1+n+nk)
	scalars := make([]*scalar.Scalar, len(scalarVals))
	points := make([]*curve.EdwardsPoint, len(scalarVals))
	for i := range scalars {
		scalars[i] = &scalarVals[i]
	}
	rCoeffs := scalars[1 : 1+n]
	points[0] = curve.ED25519_BASEPOINT_POINT
	var sSum wideSum
	kSums := make([]wideSum, nk)
	var zBytes [32]byte
	for i := range v.entries {
		e := &v.entries[i]
		copy(zBytes[:16], random[16*i:])
		if _, err := rCoeffs[i].SetBits(zBytes[:]); err != nil { // z < 2^128 < ℓ
			panic("edbatch: " + err.Error())
		}
		points[1+i] = &e.r
		z0, z1 := binary.LittleEndian.Uint64(zBytes[:8]), binary.LittleEndian.Uint64(zBytes[8:16])
		sSum.addMul(z0, z1, &e.s)
		kSums[e.key].addMul(z0, z1, &e.k)
	}
	if _, err := scalars[0].SetBytesModOrderWide(sSum.bytes()); err != nil {
		panic("edbatch: " + err.Error())
	}
	scalars[0].Neg(scalars[0])
	for j, k := range v.keyList {
		if _, err := scalars[1+n+j].SetBytesModOrderWide(kSums[j].bytes()); err != nil {
			panic("edbatch: " + err.Error())
		}
		points[1+n+j] = &k.point
	}
	var sum curve.EdwardsPoint
	return sum.MultiscalarMulVartime(scalars, points).IsSmallOrder()
}
