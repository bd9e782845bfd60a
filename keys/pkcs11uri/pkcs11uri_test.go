package pkcs11uri

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"loopcard-1.test_x~":  "loopcard-1.test_x~",
		"file:///tmp/a b/pin": "file:///tmp/a%20b/pin",
		"a;b?c&d=e%":          "a%3Bb%3Fc%26d%3De%25",
		"\xff":                "%FF",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
