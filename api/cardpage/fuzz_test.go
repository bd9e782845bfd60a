package cardpage

import (
	"strings"
	"testing"
)

// FuzzNormalizeIBAN: any input is handled, and a valid IBAN is upper case
// without spaces, of its country's length, and stays valid when
// normalised again.
func FuzzNormalizeIBAN(f *testing.F) {
	for _, s := range []string{"NL91 ABNA 0417 1643 00", "de89370400440532013000", "GB82 WEST 1234 5698 7654 32", "", "NL", "XX00", "NL91ABNA04171643000000000000000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		norm, ok := NormalizeIBAN(in)
		if !ok {
			return
		}
		if strings.ContainsAny(norm, " \t\n") || strings.ToUpper(norm) != norm || len(norm) != ibanLengths[norm[:2]] {
			t.Fatalf("NormalizeIBAN(%q) = %q, valid", in, norm)
		}
		if again, ok := NormalizeIBAN(groupIBAN(norm)); !ok || again != norm {
			t.Fatalf("grouped %q does not normalise back", norm)
		}
	})
}
