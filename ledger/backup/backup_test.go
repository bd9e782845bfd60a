package backup_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/backup"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/softhsm"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// tableDigests returns an md5 over every row of every table, per table.
func tableDigests(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		tables = append(tables, n)
	}
	require.NoError(t, rows.Err())
	out := map[string]string{}
	for _, tb := range tables {
		var d string
		require.NoError(t, pool.QueryRow(ctx, `SELECT coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM `+tb+` x`).Scan(&d))
		out[tb] = d
	}
	return out
}

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	srcURL, dstURL, otherURL := pgtest.NewDatabase(t), pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	uri := softhsm.NewTestToken(t)
	otherURI := softhsm.NewTestToken(t)
	h, err := keys.Open(uri, keys.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	other, err := keys.Open(otherURI, keys.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, other.Close()) })
	_, err = h.Init(ctx)
	require.NoError(t, err)
	_, err = other.Init(ctx)
	require.NoError(t, err)

	src := open(t, srcURL)
	require.NoError(t, ledger.Migrate(ctx, src))
	l := ledger.New(src, ledger.Options{Sealer: h})
	require.NoError(t, l.CreateOrganizer(ctx, 1, "Org"))
	require.NoError(t, l.AddEvent(ctx, 1, "fest", "Fest", time.Time{}))
	require.NoError(t, l.AddStore(ctx, 1, "gate", "Gate"))
	card := []byte{4, 1, 2, 3, 4, 5, 6}
	require.NoError(t, l.RegisterCards(ctx, 1, "fest", [][]byte{card}))
	_, err = l.TopUpCash(ctx, 1, ledger.CashTopUp{Store: "gate", Card: card, Amount: 4200})
	require.NoError(t, err)
	_, _, err = l.RequestRefund(ctx, 1, ledger.RefundRequest{Card: card, Holder: "Ada Lovelace", IBAN: "DE89370400440532013000"})
	require.NoError(t, err)
	want := tableDigests(t, src)
	require.NotEmpty(t, want["postings"])

	var buf bytes.Buffer
	info, err := backup.Write(ctx, srcURL, h, &buf)
	require.NoError(t, err)
	require.Equal(t, "data-kek/v1", info.KEK)
	require.Positive(t, info.Bytes)
	require.NotContains(t, buf.String(), "Ada Lovelace", "personal data is encrypted")
	require.NotContains(t, buf.String(), "DE89370400440532013000")

	// Tampered, truncated, or opened with another HSM: nothing is restored.
	data := buf.Bytes()
	flipped := bytes.Clone(data)
	flipped[len(flipped)-20] ^= 1
	require.ErrorIs(t, backup.Restore(ctx, bytes.NewReader(flipped), h, otherURL), backup.ErrTampered)
	require.ErrorIs(t, backup.Restore(ctx, bytes.NewReader(data[:len(data)-10]), h, otherURL), backup.ErrTampered)
	require.ErrorIs(t, backup.Restore(ctx, bytes.NewReader(append(bytes.Clone(data), 0)), h, otherURL), backup.ErrTampered)
	require.ErrorIs(t, backup.Restore(ctx, bytes.NewReader(data), other, otherURL), keys.ErrEnvelope)
	require.ErrorIs(t, backup.Restore(ctx, bytes.NewReader([]byte("junk")), h, otherURL), backup.ErrFormat)
	var n int
	require.NoError(t, open(t, otherURL).QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n))
	require.Zero(t, n)

	require.NoError(t, backup.Restore(ctx, bytes.NewReader(data), h, dstURL))
	dst := open(t, dstURL)
	require.Equal(t, want, tableDigests(t, dst))
	require.NoError(t, ledger.New(dst, ledger.Options{}).Verify(ctx))
	// The restored ledger works: triggers and constraints are back.
	_, err = ledger.New(dst, ledger.Options{}).TopUpCash(ctx, 1, ledger.CashTopUp{Store: "gate", Card: card, Amount: 1})
	require.ErrorIs(t, err, ledger.ErrCardBlocked, "the card was refunded")
	_, err = dst.Exec(ctx, `UPDATE accounts SET balance = balance + 1`)
	require.Error(t, err)
}
