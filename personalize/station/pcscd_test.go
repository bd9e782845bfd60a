package station_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/labels"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
	"github.com/loopcard/loopcard/personalize/reader/pcsctest"
	"github.com/loopcard/loopcard/personalize/station"
	"github.com/loopcard/loopcard/personalize/vcard"
	"github.com/loopcard/loopcard/personalize/vpcd"
)

// TestBatchThroughPCSC personalizes a batch of 50 virtual cards through a
// real pcscd and the vpcd driver, one card in the slot at a time, checks
// every card with keys recomputed by the reference implementation, and
// checks that a dump of the database holds no QR token and no PIN.
func TestBatchThroughPCSC(t *testing.T) {
	const count = 50
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t)
	env := pcsctest.Start(t)
	b := e.newBatch(t, count)
	require.Len(t, env.Readers, 2, "vpcd has two slots")

	vcs := make([]*vcard.Card, count)
	for i := range vcs {
		vcs[i] = newCard(t, 5000+i)
	}
	// Two stations share the batch, one per vpcd slot, each with its
	// operator putting a card on the reader and taking it away once the
	// station has reported it.
	type run struct {
		spool  string
		events []station.Event
		times  station.Times
		// feedErr is the operator's, runErr the station's.
		feedErr, runErr error
	}
	runs := make([]*run, 2)
	var wg sync.WaitGroup
	// A station whose operator has no more cards waits for the next one
	// until the other station completes the batch.
	stationCtx, stopStations := context.WithCancel(ctx)
	defer stopStations()
	start := time.Now()
	for slot := range runs {
		ru := &run{spool: spoolPath(t)}
		runs[slot] = ru
		s, _ := e.station(t, b, ru.spool, nil)
		r, err := pcsc.Open(env.Readers[slot])
		require.NoError(t, err)
		t.Cleanup(func() { r.Close() })
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(env.Port+slot))
		reported := make(chan station.Event)
		mine := vcs[slot*count/2 : (slot+1)*count/2]
		wg.Go(func() {
			for _, vc := range mine {
				conn, err := vpcd.Connect(ctx, addr, vc, nil)
				if err != nil {
					ru.feedErr = err
					cancel()
					return
				}
				select {
				case <-reported:
				case <-ctx.Done():
				}
				conn.Close()
			}
		})
		wg.Go(func() {
			// A station stops when the shared batch is complete; its last
			// card may then still be waiting in the slot.
			err := s.Run(stationCtx, r, func(ev station.Event) {
				ru.events = append(ru.events, ev)
				reported <- ev
				if ev.Complete {
					stopStations()
				}
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				ru.runErr = err
			}
			ru.times = s.Times()
			close(reported)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var events []station.Event
	var tm station.Times
	for _, ru := range runs {
		require.NoError(t, ru.feedErr)
		require.NoError(t, ru.runErr)
		events = append(events, ru.events...)
		tm.Card += ru.times.Card
		tm.HSM += ru.times.HSM
		tm.DB += ru.times.DB
	}
	require.Len(t, events, count)
	require.NoError(t, ctx.Err(), "the batch completed in time")
	t.Logf("%d cards through pcscd with two readers in %v (%.0f ms/card; card exchanges %.1f ms/card, HSM %.2f ms/card, database %.2f ms/card)",
		count, elapsed.Round(time.Millisecond), ms(elapsed)/count, ms(tm.Card)/count, ms(tm.HSM)/count, ms(tm.DB)/count)

	l := personalize.DefaultLayout()
	infos := map[string][]byte{}
	for _, ev := range events {
		require.NoError(t, ev.Err)
		require.Equal(t, station.Personalized, ev.Outcome)
	}
	for _, vc := range vcs {
		infos[string(vc.UID())] = readInfo(t, l, vc)
	}
	// One spool for the checks: the two stations' labels together.
	sp := spoolPath(t)
	all, _, err := labels.OpenSpool(sp, publicURL)
	require.NoError(t, err)
	for _, ru := range runs {
		rs, ls, err := labels.OpenSpool(ru.spool, publicURL)
		require.NoError(t, err)
		require.NoError(t, rs.Close())
		for _, lb := range ls {
			require.NoError(t, all.Append(lb))
		}
	}
	require.NoError(t, all.Close())
	e.checkRecords(t, b, sp, infos)

	// No QR token and no PIN in a dump of the database.
	dump := pgDump(t, e.dbURL)
	require.Contains(t, dump, "batch_cards", "the dump has the card table")
	_, ls, err := labels.OpenSpool(sp, publicURL)
	require.NoError(t, err)
	require.Len(t, ls, count)
	words := map[string]bool{}
	for _, w := range regexp.MustCompile(`[0-9A-Za-z_-]+`).FindAllString(dump, -1) {
		words[w] = true
	}
	for _, lb := range ls {
		u := lb.Token.URL(publicURL)
		tok := strings.TrimPrefix(u, publicURL)
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		require.NoError(t, err)
		require.NotContains(t, dump, tok, "token of %s in the dump", lb.Number)
		require.NotContains(t, strings.ToLower(dump), hex.EncodeToString(raw), "token of %s in the dump", lb.Number)
		require.NotContains(t, dump, u)
		pin := lb.PIN.Reveal()
		require.False(t, words[pin], "PIN of %s in the dump", lb.Number)
		require.NotContains(t, strings.ToLower(dump), hex.EncodeToString([]byte(pin)), "PIN of %s in the dump as bytes", lb.Number)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pgDump dumps the test database with pg_dump (schema and data, plain SQL).
func pgDump(t *testing.T, url string) string {
	t.Helper()
	bin := "/usr/lib/postgresql/15/bin/pg_dump"
	if _, err := exec.LookPath(bin); err != nil {
		p, err := exec.LookPath("pg_dump")
		if err != nil {
			t.Fatalf("pg_dump not found: install the Debian package postgresql-client (scripts/setup)")
		}
		bin = p
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--no-owner", "-d", url)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "pg_dump: %s", stderr.String())
	return string(out)
}
