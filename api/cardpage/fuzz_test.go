package cardpage

import (
	"slices"
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

// FuzzAcceptLanguage: any header gives one of the page languages.
func FuzzAcceptLanguage(f *testing.F) {
	for _, s := range []string{"", "nl-NL,nl;q=0.9,en;q=0.8", "en;q=0.3, nl;q=0.7", "*", "nl;q=abc", "nl;q=-1", ",,;;q="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if l := acceptLanguage(h); !slices.Contains(Langs, l) {
			t.Fatalf("acceptLanguage(%q) = %q", h, l)
		}
	})
}
