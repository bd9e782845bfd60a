package api

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseBearer(t *testing.T) {
	good, _, err := newTokenText(42)
	require.NoError(t, err)
	tests := []struct {
		name string
		tok  string
		org  int64
		ok   bool
	}{
		{"issued", good, 42, true},
		{"no prefix", strings.TrimPrefix(good, tokenPrefix), 0, false},
		{"org zero", "lc1_0_" + strings.SplitN(good, "_", 3)[2], 0, false},
		{"negative org", "lc1_-1_" + strings.SplitN(good, "_", 3)[2], 0, false},
		{"org with a leading zero", "lc1_042_" + strings.SplitN(good, "_", 3)[2], 0, false},
		{"short secret", good[:len(good)-2], 0, false},
		{"padded secret", good + "==", 0, false},
		{"no secret", "lc1_42", 0, false},
		{"empty", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			org, hash, ok := parseBearer(tc.tok)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.org, org)
			if ok {
				require.Len(t, hash, 32)
			}
		})
	}
}

func TestParseKeyID(t *testing.T) {
	tests := []struct {
		id   string
		org  int64
		term string
		ok   bool
	}{
		{"1:bar-1", 1, "bar-1", true},
		{"17:a.b_c", 17, "a.b_c", true},
		{"0:bar", 0, "", false},
		{"1:", 0, "", false},
		{"1:Bar", 0, "", false},
		{"x:bar", 0, "", false},
		{"bar", 0, "", false},
		{"1:bar:2", 0, "", false},
		{"01:bar", 0, "", false},
		{"+1:bar", 0, "", false},
	}
	for _, tc := range tests {
		org, term, ok := parseKeyID(tc.id)
		require.Equal(t, tc.ok, ok, tc.id)
		require.Equal(t, tc.org, org, tc.id)
		require.Equal(t, tc.term, term, tc.id)
	}
	require.Equal(t, "3:t", KeyID(3, "t"))
}

func TestValidIBAN(t *testing.T) {
	for iban, ok := range map[string]bool{
		"DE89 3704 0044 0532 0130 00": true,
		"GB82WEST12345698765432":      true,
		"gb82 west 1234 5698 7654 32": true,
		"GB83WEST12345698765432":      false,
		"DE89 3704 0044 0532 0130 0":  false,
		"DE89-3704-0044-0532-0130-00": false,
		"":                            false,
	} {
		require.Equal(t, ok, validIBAN(iban), iban)
	}
}

func TestPasswordHash(t *testing.T) {
	s := &Server{limits: Limits{PasswordMemory: 64, PasswordTime: 1}}
	h, err := s.hashPassword([]byte("correct horse"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$"))
	require.True(t, checkPassword(h, []byte("correct horse")))
	require.False(t, checkPassword(h, []byte("correct horsf")))
	h2, err := s.hashPassword([]byte("correct horse"))
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salted")
	for _, bad := range []string{"", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=999999999,t=1,p=1$AAAA$AAAA", strings.Replace(h, "p=1", "p=0", 1)} {
		require.False(t, checkPassword(bad, []byte("correct horse")), bad)
	}
}

func FuzzParseBearer(f *testing.F) {
	good, _, _ := newTokenText(1)
	f.Add(good)
	f.Add("lc1_1_")
	f.Fuzz(func(t *testing.T, s string) {
		org, hash, ok := parseBearer(s)
		if ok {
			require.Positive(t, org)
			require.Len(t, hash, 32)
			require.True(t, strings.HasPrefix(s, tokenPrefix))
		}
	})
}

func FuzzParseKeyID(f *testing.F) {
	f.Add("1:bar-1")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		org, term, ok := parseKeyID(s)
		if ok {
			require.Equal(t, s, KeyID(org, term), "a key id has one spelling")
		}
	})
}

// Every path wildcard of the role matrix has a check (checkPath): a
// route's value cannot reach a handler or the database unchecked.
func TestPathWildcardsChecked(t *testing.T) {
	var s *Server
	for _, rt := range s.table() {
		for seg := range strings.SplitSeq(rt.path, "/") {
			name, ok := strings.CutPrefix(seg, "{")
			if !ok {
				continue
			}
			name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
			require.NotNil(t, loggablePathValue[name], "%s: wildcard %s", rt.pattern(), name)
		}
	}
}
