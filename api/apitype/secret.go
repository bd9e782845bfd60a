package apitype

import (
	"encoding/json"
	"errors"
	"log/slog"
)

// Secret is a secret field of a request body: a profile's password. It
// decodes from a JSON string into bytes it keeps out of reach of fmt and
// encoding/json (behind a function value): it cannot be compared with ==,
// has no String method, prints as an address with any verb, encodes to
// JSON as {} (there is no MarshalJSON: a request carrying it is built by
// its client from its own types) and logs as "[redacted]" (slog).
type Secret struct {
	_ [0]func()
	b func() []byte
}

// newSecret copies s into a Secret.
func newSecret(s string) Secret {
	b := []byte(s)
	return Secret{b: func() []byte { return b }}
}

// Bytes returns the secret's bytes, not a copy: for the server that hashes
// or checks a password. Callers must not keep, log or change them.
func (s Secret) Bytes() []byte {
	if s.b == nil {
		return nil
	}
	return s.b()
}

// Len is the secret's length in bytes.
func (s Secret) Len() int { return len(s.Bytes()) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Len() == 0 }

// Destroy zeroes the secret's bytes.
func (s Secret) Destroy() { clear(s.Bytes()) }

// UnmarshalJSON decodes a JSON string.
func (s *Secret) UnmarshalJSON(data []byte) error {
	var text string
	if err := json.Unmarshal(data, &text); err != nil {
		return errors.New("api: a secret must be a JSON string")
	}
	*s = newSecret(text)
	return nil
}

// LogValue keeps the secret out of structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }
