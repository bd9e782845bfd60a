package cardpage

import "strings"

// ibanLengths is the length of an IBAN by country (SEPA countries and a few
// neighbours), from the SWIFT IBAN registry.
var ibanLengths = map[string]int{
	"AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
	"EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GI": 23, "GL": 18, "GR": 27,
	"HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19,
	"SK": 24, "SM": 27, "VA": 22,
}

// NormalizeIBAN returns s in upper case without spaces, and whether it is
// a valid IBAN: a known country, its length, and the ISO 13616 check
// digits (mod 97).
func NormalizeIBAN(s string) (string, bool) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	if len(s) < 5 || len(s) > 34 {
		return s, false
	}
	if n, ok := ibanLengths[s[:2]]; !ok || n != len(s) {
		return s, false
	}
	if s[2] < '0' || s[2] > '9' || s[3] < '0' || s[3] > '9' {
		return s, false
	}
	// Move the first four characters to the end, read letters as 10..35;
	// the number mod 97 must be 1.
	r := s[4:] + s[:4]
	mod := 0
	for i := 0; i < len(r); i++ {
		switch c := r[i]; {
		case c >= '0' && c <= '9':
			mod = (mod*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			mod = (mod*100 + int(c-'A') + 10) % 97
		default:
			return s, false
		}
	}
	return s, mod == 1
}

// groupIBAN writes a normalised IBAN in groups of four, as printed.
func groupIBAN(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}
