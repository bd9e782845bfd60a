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

// A terminal's identity is fixed at enrolment: its merchant and its event,
// registered by HQ or else the organizer's only one.
func TestTerminalRegistrationAndIdentity(t *testing.T) {
	l := newLedger(t) // organizer with event "fest"
	ctx := context.Background()
	require.NoError(t, l.AddMerchant(ctx, org, "bar", "Bar"))
	reg := func(id, merchant, event string) (EnrolmentToken, error) {
		return l.RegisterTerminal(ctx, org, TerminalRegistration{Terminal: id, Merchant: merchant, Event: event, TTL: time.Hour})
	}
	_, err := reg("t-1", "nobody", "")
	require.ErrorIs(t, err, ErrNoSuchMerchant)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = reg("t-1", "bar", "nosuch")
	require.ErrorIs(t, err, ErrNoSuchEvent)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = l.Terminal(ctx, org, "t-1")
	require.ErrorIs(t, err, ErrNotFound, "a refused registration writes nothing")

	pub, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	// No event registered, one event: enrolment fixes it.
	tok, err := reg("t-1", "bar", "")
	require.NoError(t, err)
	rec, err := l.Terminal(ctx, org, "t-1")
	require.NoError(t, err)
	require.Equal(t, TerminalCreated, rec.Status)
	require.Empty(t, rec.Event)
	require.NotNil(t, rec.TokenExpiresAt)
	require.NoError(t, l.EnrolTerminal(ctx, org, "t-1", tok, pub))
	rec, err = l.Terminal(ctx, org, "t-1")
	require.NoError(t, err)
	require.Equal(t, TerminalRecord{Terminal: "t-1", Merchant: "bar", Event: "fest", Status: TerminalEnrolled, EnrolledAt: rec.EnrolledAt}, rec)
	require.NotNil(t, rec.EnrolledAt)

	// Two events: a terminal without one cannot enrol, and its token stays
	// usable once HQ registers the event.
	require.NoError(t, l.AddEvent(ctx, org, "winter", "Winter", time.Time{}))
	tok, err = reg("t-2", "bar", "")
	require.NoError(t, err)
	require.ErrorIs(t, l.EnrolTerminal(ctx, org, "t-2", tok, pub), ErrEventRequired)
	tok, err = reg("t-2", "bar", "winter")
	require.NoError(t, err)
	require.NoError(t, l.EnrolTerminal(ctx, org, "t-2", tok, pub))

	// The list, with the last upload once there is one.
	_, err = reg("t-3", "bar", "fest")
	require.NoError(t, err)
	require.NoError(t, l.RevokeTerminal(ctx, org, "t-1"))
	recs, err := l.Terminals(ctx, org)
	require.NoError(t, err)
	var got []string
	for _, r := range recs {
		got = append(got, r.Terminal+"/"+r.Merchant+"/"+r.Event+"/"+r.Status)
		require.Nil(t, r.LastUpload)
	}
	require.Equal(t, []string{"t-1/bar/fest/revoked", "t-2/bar/winter/enrolled", "t-3/bar/fest/created"}, got)
	bar := newTerminal(t, l, "bar-9", "bar2")
	c := newCard(1)
	fund(t, l, 100, c)
	_, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 10)})
	require.NoError(t, err)
	rec, err = l.Terminal(ctx, org, "bar-9")
	require.NoError(t, err)
	require.NotNil(t, rec.LastUpload)
	require.Equal(t, "fest", rec.Event)
}
