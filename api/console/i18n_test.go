package console

import (
	"io/fs"
	"maps"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMessagesComplete: every message has English and Dutch, and every
// message a template or the handler names exists.
func TestMessagesComplete(t *testing.T) {
	for k := range boothMessages {
		require.NotContains(t, messages, k, "one text per key")
	}
	messages := maps.Clone(messages)
	maps.Copy(messages, boothMessages)
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
	for _, k := range []string{"signin", "signout", "dashboard", "alerts", "cards", "nav", "done", "err.login",
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

func TestLastHours(t *testing.T) {
	at := func(h int) time.Time {
		return time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
	}
	var hourly []HourSales
	for h := range 30 {
		hourly = append(hourly, HourSales{Hour: at(h), Merchant: "bar", Amount: 1}, HourSales{Hour: at(h), Merchant: "food", Amount: 2})
	}
	got := lastHours(hourly, 24)
	require.Len(t, got, 48)
	require.Equal(t, at(6), got[0].Hour)
	require.Len(t, lastHours(hourly[:10], 24), 10)
	c := salesChart(got, func(int64) string { return "" })
	require.Len(t, c.Bars, 48)
}
