package edbatch

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"github.com/stretchr/testify/require"
)

// signed is a test signature with its key and message.
type signed struct {
	pub, msg, sig []byte
}

// voiVerify is the reference: curve25519-voi's single verification with
// its default options (cofactored, small-order and non-canonical R and A
// refused, s below the group order).
func voiVerify(s signed) bool {
	return voied25519.VerifyWithOptions(s.pub, s.msg, s.sig, &voied25519.Options{})
}

// batchVerify verifies sigs in one batch, with one Key per distinct public
// key as a caller would hold them.
func batchVerify(t *testing.T, sigs []signed) bool {
	keys := map[string]*Key{}
	v := NewVerifier(len(sigs))
	for _, s := range sigs {
		k, ok := keys[string(s.pub)]
		if !ok {
			var err error
			if k, err = NewKey(s.pub); err != nil {
				return false
			}
			keys[string(s.pub)] = k
		}
		v.Add(k, s.msg, s.sig)
	}
	return v.Verify(nil)
}

func stdSign(t *testing.T, priv ed25519.PrivateKey, i int) signed {
	msg := []byte(fmt.Sprintf("transaction %d", i))
	return signed{pub: priv.Public().(ed25519.PublicKey), msg: msg, sig: ed25519.Sign(priv, msg)}
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return priv
}

func TestValidBatches(t *testing.T) {
	keys := []ed25519.PrivateKey{newKey(t), newKey(t), newKey(t)}
	for _, tc := range []struct{ n, keys int }{{1, 1}, {2, 1}, {64, 1}, {300, 1}, {300, 3}, {7, 3}} {
		var sigs []signed
		for i := 0; i < tc.n; i++ {
			sigs = append(sigs, stdSign(t, keys[i%tc.keys], i))
		}
		require.True(t, batchVerify(t, sigs), "n=%d keys=%d", tc.n, tc.keys)
	}
	require.False(t, NewVerifier(0).Verify(nil), "an empty batch proves nothing")
}

// TestOneBadSignature: a batch with one bad signature anywhere fails, for
// each way a signature can be bad.
func TestOneBadSignature(t *testing.T) {
	a, b := newKey(t), newKey(t)
	l := scalarBytes(t, scalar.BASEPOINT_ORDER)
	bad := map[string]func(s signed) signed{
		"other message": func(s signed) signed { s.msg = append([]byte("x"), s.msg...); return s },
		"other key":     func(s signed) signed { s.pub = b.Public().(ed25519.PublicKey); return s },
		"R changed":     func(s signed) signed { s.sig = flip(s.sig, 3); return s },
		"s changed":     func(s signed) signed { s.sig = flip(s.sig, 40); return s },
		"s plus the group order": func(s signed) signed {
			// The same equation holds, but the encoding is malleated.
			s.sig = append(append([]byte{}, s.sig[:32]...), addLE(s.sig[32:], l)...)
			return s
		},
		"truncated": func(s signed) signed { s.sig = s.sig[:63]; return s },
	}
	for name, mutate := range bad {
		for _, at := range []int{0, 17, 99} {
			var sigs []signed
			for i := 0; i < 100; i++ {
				sigs = append(sigs, stdSign(t, a, i))
			}
			sigs[at] = mutate(sigs[at])
			require.False(t, voiVerify(sigs[at]), "%s: the reference must refuse the mutated signature", name)
			require.False(t, batchVerify(t, sigs), "%s at %d", name, at)
		}
	}
}

// TestCancellingErrors: two bad signatures whose errors cancel in the plain
// sum of the equations are caught, because each equation is weighted by
// its own random coefficient.
func TestCancellingErrors(t *testing.T) {
	a := newKey(t)
	s1, s2 := stdSign(t, a, 1), stdSign(t, a, 2)
	one := scalar.NewFromUint64(1)
	s1.sig = withS(t, s1.sig, func(s *scalar.Scalar) { s.Add(s, one) })
	s2.sig = withS(t, s2.sig, func(s *scalar.Scalar) { s.Sub(s, one) })
	require.False(t, voiVerify(s1))
	require.False(t, voiVerify(s2))
	require.False(t, batchVerify(t, []signed{s1, s2}))
}

// torsion is a point of order 8 (RFC 8032's curve has cofactor 8).
func torsion(t *testing.T) *curve.EdwardsPoint {
	b, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	var c curve.CompressedEdwardsY
	_, err := c.SetBytes(b)
	require.NoError(t, err)
	var p, four curve.EdwardsPoint
	_, err = p.SetCompressedY(&c)
	require.NoError(t, err)
	require.True(t, p.IsSmallOrder())
	four.Add(&p, &p)
	four.Add(&four, &four)
	require.False(t, four.IsIdentity(), "the point must have order 8")
	return &p
}

// handSign signs msg with secret scalar a and nonce point R = [r]B + rT,
// where the public key is A = [a]B + aT: with torsion in R or A the
// cofactored equation holds and the cofactorless one does not.
func handSign(t *testing.T, a, r *scalar.Scalar, aT, rT *curve.EdwardsPoint, msg []byte) signed {
	var A, R curve.EdwardsPoint
	A.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, a)
	if aT != nil {
		A.Add(&A, aT)
	}
	R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r)
	if rT != nil {
		R.Add(&R, rT)
	}
	var ac, rc curve.CompressedEdwardsY
	ac.SetEdwardsPoint(&A)
	rc.SetEdwardsPoint(&R)
	h := sha512.New()
	h.Write(rc[:])
	h.Write(ac[:])
	h.Write(msg)
	k, err := scalar.NewFromBytesModOrderWide(h.Sum(nil))
	require.NoError(t, err)
	var s scalar.Scalar
	s.Mul(k, a)
	s.Add(&s, r)
	sig := append([]byte{}, rc[:]...)
	sig = append(sig, scalarBytes(t, &s)...)
	return signed{pub: append([]byte{}, ac[:]...), msg: msg, sig: sig}
}

func randomScalar(t *testing.T) *scalar.Scalar {
	var s scalar.Scalar
	_, err := s.SetRandom(rand.Reader)
	require.NoError(t, err)
	return &s
}

// TestSameAsReference compares the batch verdict with the reference's, one
// signature at a time and in batches, over signatures with torsion in R,
// in A or both, small-order and non-canonical encodings, and plain ones.
func TestSameAsReference(t *testing.T) {
	T := torsion(t)
	var T2 curve.EdwardsPoint
	T2.Add(T, T)
	a := randomScalar(t)
	var cases []signed
	for i, tc := range []struct{ aT, rT *curve.EdwardsPoint }{{nil, nil}, {nil, T}, {T, nil}, {T, &T2}, {&T2, T}} {
		for j := 0; j < 3; j++ {
			cases = append(cases, handSign(t, a, randomScalar(t), tc.aT, tc.rT, []byte(fmt.Sprintf("m%d.%d", i, j))))
		}
	}
	good := cases[0]
	// R of small order: the identity, and the order-8 point.
	for _, r := range [][]byte{identityEncoding(), compress(T)} {
		s := good
		s.sig = append(append([]byte{}, r...), good.sig[32:]...)
		cases = append(cases, s)
	}
	// A of small order.
	s := good
	s.pub = compress(T)
	cases = append(cases, s)
	// Non-canonical encodings (y ≥ p) of R and of A.
	for _, y := range nonCanonicalEncodings(t) {
		s := good
		s.sig = append(append([]byte{}, y...), good.sig[32:]...)
		cases = append(cases, s)
		s = good
		s.pub = y
		cases = append(cases, s)
	}
	accepted := 0
	for i, c := range cases {
		want := voiVerify(c)
		if want {
			accepted++
		}
		require.Equal(t, want, batchVerify(t, []signed{c}), "case %d alone", i)
		batch := []signed{good, c, cases[i%3]}
		require.Equal(t, want, batchVerify(t, batch), "case %d in a batch", i)
		bv := voied25519.NewBatchVerifier()
		for _, s := range batch {
			bv.Add(s.pub, s.msg, s.sig)
		}
		require.Equal(t, bv.VerifyBatchOnly(nil), batchVerify(t, batch), "case %d: voi's batch verifier", i)
	}
	require.Equal(t, 15, accepted, "the torsion cases are accepted by the cofactored reference, the malformed ones refused")
}

func TestNewKey(t *testing.T) {
	_, err := NewKey(newKey(t).Public().(ed25519.PublicKey))
	require.NoError(t, err)
	for name, pub := range map[string][]byte{
		"short":       make([]byte, 31),
		"small order": identityEncoding(),
		"off curve":   offCurve(t),
	} {
		_, err := NewKey(pub)
		require.ErrorIs(t, err, ErrKey, name)
	}
}

func identityEncoding() []byte {
	b := make([]byte, 32)
	b[0] = 1
	return b
}

func compress(p *curve.EdwardsPoint) []byte {
	var c curve.CompressedEdwardsY
	c.SetEdwardsPoint(p)
	return append([]byte{}, c[:]...)
}

// nonCanonicalEncodings returns encodings y+p (little-endian, y < 19) that
// decode to points of more than small order.
func nonCanonicalEncodings(t *testing.T) [][]byte {
	var out [][]byte
	for y := 2; y < 19; y++ {
		b := make([]byte, 32)
		// p = 2^255 - 19, so y + p = 2^255 - 19 + y.
		b[0] = byte(256 - 19 + y)
		for i := 1; i < 31; i++ {
			b[i] = 0xff
		}
		b[31] = 0x7f
		var c curve.CompressedEdwardsY
		var p curve.EdwardsPoint
		if _, err := c.SetBytes(b); err != nil {
			continue
		}
		if _, err := p.SetCompressedY(&c); err != nil || p.IsSmallOrder() {
			continue
		}
		require.False(t, c.IsCanonicalVartime())
		out = append(out, b)
	}
	require.NotEmpty(t, out)
	return out
}

// offCurve returns an encoding that is no point's.
func offCurve(t *testing.T) []byte {
	for y := byte(2); ; y++ {
		b := make([]byte, 32)
		b[0] = y
		var c curve.CompressedEdwardsY
		var p curve.EdwardsPoint
		_, err := c.SetBytes(b)
		require.NoError(t, err)
		if _, err := p.SetCompressedY(&c); err != nil {
			return b
		}
	}
}

func flip(b []byte, i int) []byte {
	b = append([]byte{}, b...)
	b[i] ^= 1
	return b
}

func scalarBytes(t *testing.T, s *scalar.Scalar) []byte {
	b := make([]byte, 32)
	require.NoError(t, s.ToBytes(b))
	return b
}

// addLE returns x + y as 32-byte little-endian numbers.
func addLE(x, y []byte) []byte {
	out := make([]byte, 32)
	carry := 0
	for i := range out {
		v := int(x[i]) + int(y[i]) + carry
		out[i], carry = byte(v), v>>8
	}
	return out
}

func withS(t *testing.T, sig []byte, f func(*scalar.Scalar)) []byte {
	s, err := scalar.NewFromCanonicalBytes(sig[32:])
	require.NoError(t, err)
	f(s)
	return append(append([]byte{}, sig[:32]...), scalarBytes(t, s)...)
}

// BenchmarkVerify compares, per signature, a batch by one key verified
// here and with curve25519-voi's BatchVerifier (the baseline), measured in
// the same run.
func BenchmarkVerify(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub := priv.Public().(ed25519.PublicKey)
	for _, n := range []int{64, 500} {
		msgs, sigs := make([][]byte, n), make([][]byte, n)
		for i := range msgs {
			msgs[i] = []byte(fmt.Sprintf("transaction %d of a terminal's upload, about a hundred bytes long, like the real ones", i))
			sigs[i] = ed25519.Sign(priv, msgs[i])
		}
		b.Run(fmt.Sprintf("edbatch/n=%d", n), func(b *testing.B) {
			k, _ := NewKey(pub)
			for b.Loop() {
				v := NewVerifier(n)
				for i := range msgs {
					v.Add(k, msgs[i], sigs[i])
				}
				if !v.Verify(nil) {
					b.Fatal("refused")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1000, "us/sig")
		})
		b.Run(fmt.Sprintf("voi/n=%d", n), func(b *testing.B) {
			x, _ := voied25519.NewExpandedPublicKey(voied25519.PublicKey(pub))
			for b.Loop() {
				v := voied25519.NewBatchVerifierWithCapacity(n)
				for i := range msgs {
					v.AddExpanded(x, msgs[i], sigs[i])
				}
				if !v.VerifyBatchOnly(nil) {
					b.Fatal("refused")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1000, "us/sig")
		})
	}
}
