package console

import (
	"io/fs"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMessagesComplete: every message has English and Dutch, and every
// message a template or the handler names exists.
func TestMessagesComplete(t *testing.T) {
	for k, v := range messages {
		require.NotEmpty(t, v[0], k)
		require.NotEmpty(t, v[1], k)
	}
	used := regexp.MustCompile(`\.T\.([a-z]+)`)
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		require.NoError(t, err)
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			require.Contains(t, messages, m[1], "%s names %s", path, m[1])
		}
		return nil
	})
	require.NoError(t, err)
	for _, k := range []string{"signin", "signout", "dashboard", "alerts", "cards", "nav", "done", "err.login", "err.locked",
		"err.session", "err.forbidden", "err.notfound", "err.conflict", "err.invalid", "err.csrf", "err.internal", "err.notfoundpg"} {
		require.Contains(t, messages, k)
	}
}

func TestMoney(t *testing.T) {
	for _, c := range []struct {
		cents  int64
		en, nl string
	}{
		{0, "€ 0.00", "€ 0,00"},
		{5, "€ 0.05", "€ 0,05"},
		{123456789, "€ 1,234,567.89", "€ 1.234.567,89"},
		{-250, "−€ 2.50", "−€ 2,50"},
	} {
		require.Equal(t, c.en, money(English, c.cents))
		require.Equal(t, c.nl, money(Dutch, c.cents))
	}
}
