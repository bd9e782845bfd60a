package ledger

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/pgcluster"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashHelperEnv) != "" {
		os.Exit(crashHelper())
	}
	pgtest.Main(m)
}

const org = int64(7)

var (
	templateOnce sync.Once
	templateErr  error
	dbSeq        atomic.Int64
)

// templateDB migrates a template database once per test binary; each test
// then copies it, which is much faster than migrating again.
func templateDB(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	c := pgtest.Cluster(t)
	templateOnce.Do(func() {
		ctx := context.Background()
		if templateErr = c.CreateDatabase(ctx, "ledger_template"); templateErr != nil {
			return
		}
		pool, err := pgxpool.New(ctx, c.URL("ledger_template"))
		if err != nil {
			templateErr = err
			return
		}
		defer pool.Close()
		templateErr = Migrate(ctx, pool)
	})
	require.NoError(t, templateErr)
	return c
}

// newLedger returns a ledger on a fresh, migrated database with one
// organizer and event. The database is dropped when the test ends.
func newLedger(t testing.TB, opts ...Options) *Ledger {
	t.Helper()
	ctx := context.Background()
	c := templateDB(t)
	name := fmt.Sprintf("ledger_%d", dbSeq.Add(1))
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE ledger_template")
	require.NoError(t, err)
	require.NoError(t, admin.Close(ctx))
	t.Cleanup(func() {
		if admin, err := pgx.Connect(context.Background(), c.URL("postgres")); err == nil {
			_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = admin.Close(context.Background())
		}
	})
	cfg, err := pgxpool.ParseConfig(c.URL(name))
	require.NoError(t, err)
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	l := New(pool, o)
	require.NoError(t, l.CreateOrganizer(ctx, org, "Test Org"))
	require.NoError(t, l.AddEvent(ctx, org, "fest", "Festival", time.Time{}))
	return l
}

func requireInvariants(t *testing.T, l *Ledger) {
	t.Helper()
	require.NoError(t, l.Verify(context.Background()))
}

func TestMigrateTwice(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, l.pool))
	v, err := SchemaVersion(ctx, l.pool)
	require.NoError(t, err)
	require.GreaterOrEqual(t, v, int32(3))
}

func TestCorePostingsAndFloors(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	require.NoError(t, l.AddStore(ctx, org, "store-1", "Main gate"))
	card := []byte{4, 1, 2, 3, 4, 5, 6}
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{card}))

	var cash, cardAcct int64
	post := func(debit, credit, amount int64) error {
		return l.inTx(ctx, func(tx pgx.Tx) error {
			if _, err := lockCard(ctx, tx, org, card); err != nil {
				return err
			}
			e := entry{id: l.newID(), kind: "test", at: time.Now(), postings: transfer(debit, credit, amount)}
			return writeEntries(ctx, tx, org, []entry{e}, nil)
		})
	}
	require.NoError(t, l.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if cash, err = accountID(ctx, tx, org, StoreCash, "store-1"); err != nil {
			return err
		}
		cardAcct, err = accountID(ctx, tx, org, Card, "04010203040506")
		return err
	}))

	require.NoError(t, post(cash, cardAcct, 1000)) // cash top-up
	b, err := l.CardBalance(ctx, org, card)
	require.NoError(t, err)
	require.Equal(t, int64(1000), b)
	cb, err := l.Balance(ctx, org, StoreCash, "store-1")
	require.NoError(t, err)
	require.Equal(t, int64(1000), cb)

	// Taking more than the card holds would break its floor.
	require.ErrorIs(t, post(cardAcct, cash, 1001), ErrInsufficientFunds)
	require.NoError(t, post(cardAcct, cash, 1000))
	b, err = l.CardBalance(ctx, org, card)
	require.NoError(t, err)
	require.Zero(t, b)
	requireInvariants(t, l)

	tests := []struct {
		name string
		sql  string
	}{
		{"unbalanced", `INSERT INTO journal (org_id, txn_id, kind, at) VALUES (7, '00000000-0000-7000-8000-000000000001', 'x', now());
			INSERT INTO postings VALUES (7, '00000000-0000-7000-8000-000000000001', 1, $CASH, 5)`},
		{"no journal", `INSERT INTO postings VALUES (7, '00000000-0000-7000-8000-000000000002', 1, $CASH, 5),
			(7, '00000000-0000-7000-8000-000000000002', 2, $CARD, -5)`},
		{"unknown account", `INSERT INTO journal (org_id, txn_id, kind, at) VALUES (7, '00000000-0000-7000-8000-000000000003', 'x', now());
			INSERT INTO postings VALUES (7, '00000000-0000-7000-8000-000000000003', 1, 999999, 5),
			(7, '00000000-0000-7000-8000-000000000003', 2, $CARD, -5)`},
		{"set balance", `UPDATE accounts SET balance = 5 WHERE account_id = $CASH`},
		{"new account with balance", `INSERT INTO accounts (org_id, kind, ref, side, balance) VALUES (7, 'bank', 'x', 1, 10)`},
		{"delete posting", `DELETE FROM postings`},
		{"update posting", `UPDATE postings SET amount = amount * 2`},
		{"delete account", `DELETE FROM accounts WHERE account_id = $CASH`},
		// Terminal debits post themselves (migration 011): the same rules hold.
		{"terminal debit to unknown account", terminalDebitSQL("posted", "$CARD", "999999", 5)},
		{"terminal debit below floor", terminalDebitSQL("posted", "$CARD", "$CASH", 5)},
		{"held terminal debit with accounts", terminalDebitSQL("held", "$CASH", "$CARD", 5)},
		{"terminal debit to one account", terminalDebitSQL("posted", "$CASH", "$CASH", 5)},
		{"update terminal debit", `UPDATE terminal_txs SET amount = amount * 2`},
		{"delete terminal debit", `DELETE FROM terminal_txs`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sql := replaceAll(tc.sql, map[string]int64{"$CASH": cash, "$CARD": cardAcct})
			_, err := l.pool.Exec(ctx, "BEGIN; "+sql+"; COMMIT")
			require.Error(t, err)
			_, _ = l.pool.Exec(ctx, "ROLLBACK")
			requireInvariants(t, l)
		})
	}

	// The same hand-made terminal debit, funded and to existing accounts, is
	// taken (so the refusals above were the rules, not the SQL) and moves
	// both balances; but the merchant account is not the one of merchant
	// "bar" (there is none), which Verify finds.
	require.NoError(t, post(cash, cardAcct, 10))
	_, err = l.pool.Exec(ctx, replaceAll(terminalDebitSQL("posted", "$CARD", "$CASH", 4), map[string]int64{"$CASH": cash, "$CARD": cardAcct}))
	require.NoError(t, err)
	b, err = l.CardBalance(ctx, org, card)
	require.NoError(t, err)
	require.Equal(t, int64(6), b)
	var inv *InvariantError
	require.ErrorAs(t, l.Verify(ctx), &inv)
	require.Equal(t, "a terminal debit posts to accounts other than its card's and merchant's", inv.Problem)
}

// terminalDebitSQL inserts a terminal transaction by hand, bypassing Upload.
func terminalDebitSQL(status, cardAccount, merchantAccount string, amount int) string {
	return fmt.Sprintf(`INSERT INTO terminal_txs (org_id, txn_id, terminal_id, terminal_seq, card_id, card_seq, amount,
		balance_before, balance_after, merchant_id, at, signature, status, card_account, merchant_account)
		VALUES (7, gen_random_uuid(), 'bar-1', 1, '\\x04010203040506', 1, %d, 0, 0, 'bar', now(), '\\x00', '%s', %s, %s)`,
		amount, status, cardAccount, merchantAccount)
}

func replaceAll(s string, m map[string]int64) string {
	for k, v := range m {
		s = strings.ReplaceAll(s, k, strconv.FormatInt(v, 10))
	}
	return s
}
