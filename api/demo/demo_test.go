package demo_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/demo"
)

// TestDemoEndToEnd runs the whole demo on embedded defaults in a fresh data
// directory and checks every figure the README promises.
func TestDemoEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext is missing: apt-get install poppler-utils")
	}
	dir := t.TempDir()
	// The embedded PostgreSQL runs as the postgres user when the test runs
	// as root: it must be able to enter the data directory.
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := demo.Run(ctx, demo.Config{DataDir: dir, Cards: 12, TapsPerTerminal: 25, Out: &out, Seed: 42})
	require.NoError(t, err, out.String())
	t.Logf("demo took %s", time.Since(start))

	// Cards issued = cards recorded = cards in the ledger.
	require.Equal(t, 12, s.CardsIssued)
	require.Equal(t, s.CardsIssued, s.CardsRecorded)
	require.Equal(t, s.CardsIssued, s.CardsInLedger)
	require.Equal(t, 10, s.CardsSold, "each store keeps one card in stock")

	// The ledger sums to zero and verifies.
	require.True(t, s.Ledger.Verified)
	require.Zero(t, s.Ledger.Sum)
	require.Greater(t, s.Ledger.Accounts, 12)

	// Each store's counted cash equals the ledger's expected cash.
	require.Len(t, s.Stores, 2)
	for _, st := range s.Stores {
		require.True(t, st.Balanced, st.Store)
		require.Equal(t, st.CashCounted, st.CashExpected, st.Store)
		require.Equal(t, int64(st.Sold)*demo.LoadAmount, st.CashExpected, st.Store)
		require.Equal(t, st.Received-st.Sold, st.InStock)
	}

	// The clone is caught and blocked.
	require.True(t, s.Clone.Blocked)
	require.Equal(t, "blocked", s.Clone.Status)
	require.Equal(t, "clone", s.Clone.Alert)

	// The audit export verifies offline.
	require.True(t, s.Audit.Verified)
	require.Positive(t, s.Audit.Entries)

	// Every payment taken is counted exactly once: the re-sent batch came
	// back as duplicates and changed nothing.
	require.Equal(t, s.Taken, s.Counted)
	require.Equal(t, 1, s.Ledger.Held, "the clone's payment is held")
	dups := 0
	for _, tm := range s.Terminals {
		dups += tm.Duplicates
		require.Zero(t, tm.Rejected)
	}
	require.Positive(t, dups)
	require.Equal(t, s.Terminals[0].Accepted-1, dups, "bar-1 sent its first batch twice")

	// The online top-up: delivered twice, recorded once, written once, and
	// the card and the ledger agree.
	require.Empty(t, s.Skipped)
	require.NotNil(t, s.Online)
	require.Equal(t, 2, s.Online.Deliveries)
	require.Equal(t, 1, s.Online.Pending)
	require.Equal(t, 1, s.Online.Loaded)
	require.Equal(t, s.Online.LedgerBalance, s.Online.CardBalance)

	// The files it names are there; the labels PDF has one label per card.
	for name, path := range s.Files {
		_, err := os.Stat(path)
		require.NoError(t, err, name)
	}
	txt, err := exec.Command("pdftotext", s.Files["labels_pdf"], "-").Output()
	require.NoError(t, err)
	f, err := os.Open(s.Files["labels_csv"])
	require.NoError(t, err)
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.Len(t, rows, 1+12, "a header and one row per card")
	for _, row := range rows[1:] {
		require.Contains(t, string(txt), row[0], "card %s has a label in the PDF", row[0])
	}
	var onDisk demo.Summary
	b, err := os.ReadFile(s.Files["summary"])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &onDisk))
	require.Equal(t, s.Counted, onDisk.Counted)

	// The commentary names the steps as they happen.
	for _, want := range []string{"key ceremony", "personalized", "receipt", "duplicates", "clone", "balanced", "verified offline", "pending load"} {
		require.Contains(t, out.String(), want)
	}
}
