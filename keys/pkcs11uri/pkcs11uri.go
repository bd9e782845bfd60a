// Package pkcs11uri escapes attribute values of PKCS#11 URIs (RFC 7512),
// for keys, which parses and writes them, and softhsm, which writes the URI
// of a test token; it imports nothing of Loopcard so that both can use it.
package pkcs11uri

import (
	"fmt"
	"strings"
)

// Escape percent-encodes everything RFC 7512 does not allow unescaped in an
// attribute value, keeping '/' and ':' readable.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/', c == ':':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
