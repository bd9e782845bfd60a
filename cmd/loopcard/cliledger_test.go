package main

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
)

// cliLedger is a fresh, migrated database for the commands a test runs
// (LOOPCARD_DATABASE_URL and LOOPCARD_DATA_DIR are set for them), with
// organizer 1 and its event fest; the test sets up the rest through l.
func cliLedger(t *testing.T) (*ledger.Ledger, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	t.Setenv("LOOPCARD_DATABASE_URL", url)
	t.Setenv("LOOPCARD_DATA_DIR", t.TempDir())
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, ledger.Migrate(ctx, pool))
	l := ledger.New(pool, ledger.Options{})
	require.NoError(t, l.CreateOrganizer(ctx, 1, "Org"))
	require.NoError(t, l.AddEvent(ctx, 1, "fest", "Fest", time.Time{}))
	return l, pool
}

// cliBarTerminal adds merchant bar and enrols its terminal bar-1 with a
// fixed key, which it returns for signing the terminal's transactions.
func cliBarTerminal(t *testing.T, l *ledger.Ledger) ed25519.PrivateKey {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, l.AddMerchant(ctx, 1, "bar", "Bar"))
	tok, err := l.RegisterTerminal(ctx, 1, ledger.TerminalRegistration{Terminal: "bar-1", Merchant: "bar", Event: "fest", TTL: time.Hour})
	require.NoError(t, err)
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	require.NoError(t, l.EnrolTerminal(ctx, 1, "bar-1", tok, key.Public().(ed25519.PublicKey)))
	return key
}
