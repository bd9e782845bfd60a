package console

// Secret holds a password or a session's cookie value. It cannot be
// compared with ==, has no String method and formats as an address, so it
// does not end up in logs or error messages by accident.
type Secret struct {
	_ [0]func()
	p *string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{p: &s} }

// Reveal returns the secret's text, for the one place that must use it.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.p == nil || *s.p == "" }
