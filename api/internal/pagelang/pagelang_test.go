package pagelang

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPick(t *testing.T) {
	for _, c := range []struct {
		query, cookie, accept string
		want                  string
		explicit              bool
	}{
		{"", "", "", English, false},
		{"lang=nl", "en", "en", Dutch, true},
		{"lang=xx", "nl", "en", Dutch, false},
		{"", "", "de-DE,nl-BE;q=0.8,en;q=0.7", Dutch, false},
		{"", "", "en;q=0.3, nl;q=0.7", Dutch, false},
		{"", "", "nl;q=0, en;q=0.1", English, false},
		{"", "xx", "fr", English, false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/?"+c.query, nil)
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "lc_lang", Value: c.cookie})
		}
		if c.accept != "" {
			r.Header.Set("Accept-Language", c.accept)
		}
		got, explicit := Pick(r, "lc_lang")
		require.Equal(t, c.want, got, "%+v", c)
		require.Equal(t, c.explicit, explicit, "%+v", c)
	}
}

// FuzzAccept: any header gives one of the page languages.
func FuzzAccept(f *testing.F) {
	for _, s := range []string{"", "nl-NL,nl;q=0.9,en;q=0.8", "en;q=0.3, nl;q=0.7", "*", "nl;q=abc", "nl;q=-1", ",,;;q="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if l := Accept(h); !slices.Contains(Langs, l) {
			t.Fatalf("Accept(%q) = %q", h, l)
		}
	})
}
