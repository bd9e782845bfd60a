package terminal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/api/terminal"
)

// A terminal's identity is fixed at enrolment: the server's answer names
// its organizer, merchant and event, the identity file keeps them, and the
// terminal pays, uploads and renews its session key without being told
// them again. A configuration that names another merchant or event is
// refused, and the server gives session keys for the terminal's event only.
// (Failure 6 of issue 16: every command asked for --event and --merchant,
// and failure 4: a bar terminal could sign for the food merchant.)
func TestIdentityFixedAtEnrolment(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	require.NoError(t, w.stack.Ledger.AddMerchant(ctx, org, "food", "Food"))
	dir := t.TempDir()
	tok, err := sim.CreateTerminal(ctx, w.stack.HTTP, w.stack.URL, w.hq, "bar-1", "bar", "")
	require.NoError(t, err)
	cfg := terminal.Config{StateDir: dir, URL: w.stack.URL, HTTP: w.stack.HTTP}
	require.NoError(t, terminal.Enrol(ctx, cfg, org, "bar-1", tok))

	term, err := terminal.Open(cfg)
	require.NoError(t, err)
	require.Equal(t, "bar", term.Merchant())
	require.Equal(t, "fest", term.Event(), "the organizer's only event")
	require.NoError(t, term.EnsureSessionKey(ctx))
	s, err := term.Debit(w.cards[0].Field(), 100)
	require.NoError(t, err)
	require.Equal(t, "bar", s.Merchant)
	r, err := term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, r.Accepted)
	require.NoError(t, term.Close())

	// LOOPCARD_MERCHANT=food on a bar terminal: refused before any card.
	for _, c := range []terminal.Config{{Merchant: "food"}, {Event: "other"}} {
		c.StateDir, c.URL, c.HTTP = dir, w.stack.URL, w.stack.HTTP
		_, err := terminal.Open(c)
		require.ErrorContains(t, err, "but this terminal was enrolled for")
	}
	// Naming its own merchant and event is fine.
	c := cfg
	c.Merchant, c.Event = "bar", "fest"
	term, err = terminal.Open(c)
	require.NoError(t, err)
	require.NoError(t, term.Close())
}

// The enrol answer names the terminal's identity; with two events, a
// terminal registered without one cannot enrol until HQ registers its
// event, and then gets session keys for that event only.
func TestEnrolAnswerAndEventRule(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	require.NoError(t, w.stack.Ledger.AddEvent(ctx, org, "winter", "Winter", time.Time{}))
	tok, err := sim.CreateTerminal(ctx, w.stack.HTTP, w.stack.URL, w.hq, "bar-2", "bar", "")
	require.NoError(t, err)
	cfg := terminal.Config{StateDir: t.TempDir(), URL: w.stack.URL, HTTP: w.stack.HTTP}
	err = terminal.Enrol(ctx, cfg, org, "bar-2", tok)
	require.ErrorContains(t, err, "409")
	require.ErrorContains(t, err, "loopcard terminal register --event")
	require.False(t, terminal.Enrolled(cfg.StateDir))

	_, err = sim.CreateTerminal(ctx, w.stack.HTTP, w.stack.URL, w.hq, "bar-2", "bar", "nosuch")
	require.ErrorContains(t, err, "no such event")
	tok, err = sim.CreateTerminal(ctx, w.stack.HTTP, w.stack.URL, w.hq, "bar-2", "bar", "winter")
	require.NoError(t, err)
	require.NoError(t, terminal.Enrol(ctx, cfg, org, "bar-2", tok))
	term, err := terminal.Open(cfg)
	require.NoError(t, err)
	require.Equal(t, "winter", term.Event())
	require.NoError(t, term.RenewSessionKey(ctx))
	require.NoError(t, term.Close())
	recs, err := w.stack.Ledger.Terminals(ctx, org)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "winter", recs[0].Event)
}
