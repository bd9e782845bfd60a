package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEnrolment(t *testing.T) {
	l := newLedger(t)
	var logs bytes.Buffer
	l.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	now := time.Now()
	l.now = func() time.Time { return now }
	require.NoError(t, l.AddMerchant(ctx, org, "bar", "Bar"))
	_, err := l.CreateTerminal(ctx, org, "t-1", "nobody", time.Hour)
	require.ErrorIs(t, err, ErrNotFound)
	tok, err := l.CreateTerminal(ctx, org, "t-1", "bar", time.Hour)
	require.NoError(t, err)
	text := tok.Reveal()
	require.Len(t, text, 32)
	parsed, err := ParseEnrolmentToken(strings.ToLower(text))
	require.NoError(t, err)
	pub, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)

	other, err := ParseEnrolmentToken(strings.Repeat("A", 32))
	require.NoError(t, err)
	var errs []error
	errs = append(errs, l.EnrolTerminal(ctx, org, "t-1", other, pub))
	require.ErrorIs(t, errs[0], ErrEnrolment)
	_, err = ParseEnrolmentToken("short")
	require.ErrorIs(t, err, ErrEnrolment)

	// Expired.
	now = now.Add(2 * time.Hour)
	errs = append(errs, l.EnrolTerminal(ctx, org, "t-1", parsed, pub))
	require.ErrorIs(t, errs[1], ErrEnrolment)
	// A new token replaces it; it works once.
	tok, err = l.CreateTerminal(ctx, org, "t-1", "bar", time.Hour)
	require.NoError(t, err)
	require.NoError(t, l.EnrolTerminal(ctx, org, "t-1", tok, pub))
	errs = append(errs, l.EnrolTerminal(ctx, org, "t-1", tok, pub))
	require.ErrorIs(t, errs[2], ErrEnrolment)
	_, err = l.CreateTerminal(ctx, org, "t-1", "bar", time.Hour)
	require.ErrorIs(t, err, ErrExists)
	errs = append(errs, err)

	// The token never shows in formatting, JSON, logs or errors.
	for _, tk := range []EnrolmentToken{tok, parsed} {
		secret := tk.Reveal()
		shown := fmt.Sprintf("%v %+v %#v", tk, tk, tk)
		//lint:ignore SA9005 the point is that marshalling a token reveals nothing
		js, _ := json.Marshal(tk)
		l.log.Info("token", "tok", tk)
		require.NotContains(t, shown, secret)
		require.NotContains(t, string(js), secret)
		require.NotContains(t, logs.String(), secret)
		for _, e := range errs {
			require.NotContains(t, e.Error(), secret)
		}
	}
}
