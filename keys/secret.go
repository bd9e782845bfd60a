package keys

// The secret types below (and keyderiv.AESKey) keep their bytes behind a
// pointer in an unexported field: fmt, slog and encoding/json then show an
// address or nothing, never the bytes, without any String or Format method
// that could be got wrong. The zero-length func array makes them
// incomparable with ==.

// secretBytes is a variable-length secret: a PIN, a key component, a data key.
type secretBytes struct {
	_ [0]func()
	b *[]byte
}

func newSecretBytes(b []byte) *secretBytes {
	c := make([]byte, len(b))
	copy(c, b)
	return &secretBytes{b: &c}
}

func (s *secretBytes) bytes() []byte { return *s.b }

func (s *secretBytes) destroy() {
	if s != nil && s.b != nil {
		clear(*s.b)
	}
}
