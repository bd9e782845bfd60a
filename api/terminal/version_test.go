package terminal

import "testing"

// The base key's version comes from the label the server names; anything
// else (another key of the hierarchy, which the server never names) is
// version 1.
func TestBaseKeyVersion(t *testing.T) {
	for label, want := range map[string]byte{
		"app-debit":      1,
		"app-debit/v1":   1,
		"app-debit/v7":   7,
		"app-debit/v255": 255,
		"app-debit/v256": 1,
		"app-debit/v0":   1,
		"app-debit/v07":  1,
		"app-debit/vx":   1,
		"app-credit/v3":  1,
		"":               1,
	} {
		if got := baseKeyVersion(label); got != want {
			t.Errorf("baseKeyVersion(%q) = %d, want %d", label, got, want)
		}
	}
}
