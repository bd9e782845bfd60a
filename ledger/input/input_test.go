package input

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"", true},
		{"Fest Org", true},
		{"Zoë", true},
		{"a\x00b", false},
		{"a\xffb", false},
		{strings.Repeat("x", 10), true},
		{strings.Repeat("x", 11), false},
		{strings.Repeat("é", 5), true},
		{strings.Repeat("é", 6), false},
	} {
		err := Text("name", tc.s, 10)
		require.Equal(t, tc.ok, err == nil, "%q: %v", tc.s, err)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalid)
			require.NotContains(t, err.Error(), tc.s, "the error does not echo the value")
		}
	}
}

func TestName(t *testing.T) {
	require.NoError(t, Name("name", "Café de Paris"))
	for _, s := range []string{"", "  ", "a\nb", "a\tb", "a\x00b", strings.Repeat("x", MaxName+1)} {
		require.Error(t, Name("name", s), "%q", s)
	}
}

func TestAmount(t *testing.T) {
	for _, n := range []int64{1, 500, MaxAmount} {
		require.NoError(t, Amount("amount", n))
	}
	for _, n := range []int64{0, -1, MaxAmount + 1, math.MaxInt64, math.MinInt64} {
		require.Error(t, Amount("amount", n), "%d", n)
	}
	require.NoError(t, AmountOrZero("deposit", 0))
	require.Error(t, AmountOrZero("deposit", -1))
	require.Error(t, AmountOrZero("deposit", math.MaxInt64))
	// The bound keeps sums in range: 2^32 amounts at most do not overflow.
	require.LessOrEqual(t, MaxAmount, int64(math.MaxInt64>>32))
}

func TestStrings(t *testing.T) {
	type inner struct {
		Note string `json:"note"`
	}
	type req struct {
		Name    string            `json:"name"`
		Skip    string            `json:"-"`
		Bytes   []byte            `json:"bytes"`
		Items   []inner           `json:"items"`
		Ptr     *inner            `json:"ptr"`
		Map     map[string]string `json:"map"`
		private string
	}
	require.NoError(t, Strings(&req{Name: "ok", Bytes: []byte{0}, Skip: "\x00", private: "\x00"}, 10))
	var e *Error
	err := Strings(&req{Items: []inner{{"ok"}, {"a\x00"}}}, 10)
	require.ErrorAs(t, err, &e)
	require.Equal(t, "items[1].note", e.Field)
	require.ErrorAs(t, Strings(&req{Ptr: &inner{"a\xff"}}, 10), &e)
	require.Equal(t, "ptr.note", e.Field)
	require.ErrorAs(t, Strings(req{Map: map[string]string{"k\x00": "v"}}, 10), &e)
	require.Error(t, Strings(req{Name: strings.Repeat("x", 11)}, 10))
	require.True(t, errors.Is(Strings(req{Name: "\x00"}, 10), ErrInvalid))
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\x00b", 10, `a\x00b`},
		{"a\xffb", 10, "a\uFFFDb"},
		{"xé", 2, "x"},
		{"xé", 3, "xé"},
		{strings.Repeat("é", 300), 500, strings.Repeat("é", 250)},
		{"x" + strings.Repeat("é", 300), 500, "x" + strings.Repeat("é", 249)},
	} {
		got := Clean(tc.s, tc.max)
		require.Equal(t, tc.want, got)
		require.True(t, utf8.ValidString(got))
		require.NotContains(t, got, "\x00")
		require.LessOrEqual(t, len(got), tc.max)
	}
}

func FuzzClean(f *testing.F) {
	f.Add("a\x00\xffé", 3)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		got := Clean(s, max)
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 || len(got) > max {
			t.Fatalf("Clean(%q, %d) = %q", s, max, got)
		}
		if Text("x", got, max) != nil {
			t.Fatalf("Clean's result is refused by Text: %q", got)
		}
	})
}
