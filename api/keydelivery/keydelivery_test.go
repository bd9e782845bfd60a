package keydelivery

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWrapUnwrap(t *testing.T) {
	key := bytes.Repeat([]byte{0x5a}, 16)
	now := time.Unix(1_800_000_000, 0)
	b := Binding{Kind: KindSession, Organizer: 1, Terminal: "bar-1", Event: "fest", KeyID: "k1", Expires: now.Add(time.Hour)}
	for _, tc := range []struct {
		alg   string
		curve ecdh.Curve
	}{{X25519, ecdh.X25519()}, {P256, ecdh.P256()}} {
		t.Run(tc.alg, func(t *testing.T) {
			priv, err := tc.curve.GenerateKey(rand.Reader)
			require.NoError(t, err)
			w, err := Wrap(tc.alg, priv.PublicKey().Bytes(), b, key)
			require.NoError(t, err)
			require.NotContains(t, string(w.Ciphertext), string(key))

			got, err := Unwrap(priv, w, now)
			require.NoError(t, err)
			require.Equal(t, key, got)

			_, err = Unwrap(priv, w, now.Add(time.Hour))
			require.ErrorIs(t, err, ErrExpired)

			for name, mutate := range map[string]func(w *Wrapped){
				"later expiry": func(w *Wrapped) { w.Expires = w.Expires.Add(time.Hour) },
				"other event":  func(w *Wrapped) { w.Event = "other" },
				"other kind":   func(w *Wrapped) { w.Kind = KindCredit },
				"other card":   func(w *Wrapped) { w.Card = []byte{1, 2, 3, 4} },
				"other org":    func(w *Wrapped) { w.Organizer = 2 },
				"flipped bit":  func(w *Wrapped) { w.Ciphertext = bytes.Clone(w.Ciphertext); w.Ciphertext[len(w.Ciphertext)-1] ^= 1 },
			} {
				c := *w
				mutate(&c)
				_, err := Unwrap(priv, &c, now)
				require.ErrorIs(t, err, ErrOpen, name)
			}
			other, err := tc.curve.GenerateKey(rand.Reader)
			require.NoError(t, err)
			_, err = Unwrap(other, w, now)
			require.ErrorIs(t, err, ErrOpen)
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	p, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	tests := []struct {
		name string
		alg  string
		pub  []byte
		ok   bool
	}{
		{"x25519", X25519, x.PublicKey().Bytes(), true},
		{"p256", P256, p.PublicKey().Bytes(), true},
		{"x25519 short", X25519, x.PublicKey().Bytes()[:31], false},
		{"p256 given x25519", P256, x.PublicKey().Bytes(), false},
		{"p256 off curve", P256, append([]byte{4}, bytes.Repeat([]byte{1}, 64)...), false},
		{"unknown alg", "rsa", x.PublicKey().Bytes(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKey(tc.alg, tc.pub)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrKey)
			}
		})
	}
}
