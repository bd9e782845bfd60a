package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/migrations"
	"github.com/loopcard/loopcard/ledger/payment"
)

// upgradeMigration is the new binary's migration in TestUpgradeDuringEvent
// (not shipped): expand-only, as every migration applied during an event
// must be, since the old binary still runs beside it: a new column and a
// new index on the busiest table, built while terminals upload.
const upgradeMigration = `ALTER TABLE topups ADD COLUMN upgrade_note text;
CREATE INDEX terminal_txs_upgrade_test ON terminal_txs (org_id, terminal_id, at);
`

// TestUpgradeDuringEvent rolls an upgrade over a running event: while 8
// terminals tap and upload (their queues fill while the API is away) and
// online loads wait to be written onto cards, the new binary's migration is
// applied to the live database, the API is restarted (requests in flight
// are answered, new ones wait for it), and the formation's nodes are
// rolled (a switchover: primary and secondary swap, as for a PostgreSQL
// minor upgrade). Then nothing is lost: every payment the cards committed
// is in the ledger once and the ledger equals the cards; every pending
// load is still pending, and a terminal writes each onto its card and
// confirms it.
func TestUpgradeDuringEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a pg_auto_failover formation")
	}
	f, s := startFailoverStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	first, err := f.Primary(ctx)
	require.NoError(t, err)

	// Online loads, paid and waiting for their cards.
	const org, event, merchant = 1, "sim", "sim-bar"
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, org, "Simulation"))
	require.NoError(t, s.Ledger.AddEvent(ctx, org, event, "Simulation", time.Time{}))
	require.NoError(t, s.Ledger.AddMerchant(ctx, org, merchant, "Simulated bar"))
	cards, err := s.IssueCards(ctx, org, event, 2, t.TempDir(), "", nil)
	require.NoError(t, err)
	for i := range 6 {
		c := cards.Cards[i%2]
		body, _ := json.Marshal(payment.Event{ID: fmt.Sprintf("evt-up-%d", i), Type: payment.TypePaymentSucceeded,
			Payment: fmt.Sprintf("pay-up-%d", i), Org: org, Card: fmt.Sprintf("%X", c.UID), Amount: int64(100 * (i + 1)),
			Currency: "EUR", Created: time.Now().Unix()})
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/v1/payments/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(payment.Header, payment.Sign(webhookSecret, time.Now(), body))
		res, err := s.HTTP.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	pending := map[string][]ledger.PendingLoad{}
	for _, c := range cards.Cards {
		p, err := s.Ledger.PendingLoads(ctx, org, c.UID)
		require.NoError(t, err)
		require.Len(t, p, 3)
		pending[string(c.UID)] = p
	}

	// The new binary's migrations: the shipped ones and one more.
	newFS := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.FS, ".")
	require.NoError(t, err)
	last := ""
	for _, e := range entries {
		b, err := fs.ReadFile(migrations.FS, e.Name())
		require.NoError(t, err)
		newFS[e.Name()] = &fstest.MapFile{Data: b}
		if len(e.Name()) > 3 && e.Name()[3] == '_' && e.Name() > last {
			last = e.Name()
		}
	}
	var n int
	_, err = fmt.Sscanf(last, "%03d_", &n)
	require.NoError(t, err)
	newFS[fmt.Sprintf("%03d_upgrade_test.sql", n+1)] = &fstest.MapFile{Data: []byte(upgradeMigration)}

	rolled := make(chan error, 1)
	rep, err := sim.Simulate(ctx, s, sim.SimConfig{Org: org, Terminals: 8, Taps: 300, CardsPerTerminal: 2, Dir: t.TempDir(),
		TapEvery: 20 * time.Millisecond,
		Midway: func() {
			rolled <- func() error {
				// The new binary starts: it migrates the live database...
				if err := migrations.UpFS(ctx, s.Pool, newFS); err != nil {
					return fmt.Errorf("migrate: %w", err)
				}
				// ...and takes over from the old one.
				if err := s.RestartServer(ctx, api.Config{Limits: api.Limits{PerIP: -1, PerClient: -1, Anonymous: -1},
					Payments: &api.Payments{Provider: "paytest", Secrets: []payment.Secret{webhookSecret}}}); err != nil {
					return fmt.Errorf("restart: %w", err)
				}
				// The formation's nodes are rolled one by one.
				return f.Switchover(ctx)
			}()
		}})
	require.NoError(t, err, "every terminal finishes")
	select {
	case err := <-rolled:
		require.NoError(t, err, "the upgrade")
	case <-time.After(3 * time.Minute):
		t.Fatal("the upgrade did not finish")
	}
	now, err := f.Primary(ctx)
	require.NoError(t, err)
	require.NotEqual(t, first, now, "the nodes swapped")
	v, err := ledger.SchemaVersion(ctx, s.Pool)
	require.NoError(t, err)
	require.Equal(t, int32(n+1), v, "the new migration is applied")
	t.Logf("%d taps at %.0f taps/s through the upgrade, %d acknowledged before it; drain %.1f s", rep.Taps, rep.TapsPerSecond, rep.AckedBeforeMidway, rep.DrainSeconds)

	require.Equal(t, 8*300, rep.Taps)
	require.Equal(t, rep.Taps, rep.Recorded, "every payment the cards committed, once")
	require.Zero(t, rep.Mismatched, "the ledger equals the cards")

	// Every pending load survived the upgrade as it was, and is written
	// onto its card by a terminal of the new binary.
	hq, err := s.StaffToken(ctx, org, api.RoleHQ, "")
	require.NoError(t, err)
	tm, err := s.AddTerminal(ctx, hq, org, "upgrade-t1", s.TerminalConfig(t.TempDir(), event, merchant))
	require.NoError(t, err)
	defer tm.Close()
	for _, c := range cards.Cards {
		p, err := s.Ledger.PendingLoads(ctx, org, c.UID)
		require.NoError(t, err)
		require.Equal(t, pending[string(c.UID)], p, "the pending loads are as they were")
		loads, err := tm.WritePendingLoads(ctx, c.Field(), tm.ConfirmLoad)
		require.NoError(t, err)
		require.Len(t, loads, 3)
		var after int64
		for _, l := range loads {
			require.NotNil(t, l.Write)
			after = l.Write.After
		}
		b, err := s.Ledger.CardBalance(ctx, org, c.UID)
		require.NoError(t, err)
		require.Equal(t, after, b, "the card and the ledger agree")
		p, err = s.Ledger.PendingLoads(ctx, org, c.UID)
		require.NoError(t, err)
		require.Empty(t, p)
	}
	require.NoError(t, s.Ledger.Verify(ctx))
}
