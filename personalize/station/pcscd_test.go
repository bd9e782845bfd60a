package station_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"os/exec"
	"regexp"
	"strings"
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
	sp := spoolPath(t)
	s, _ := e.station(t, b, sp, nil)

	r, err := pcsc.Open(env.Reader)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })

	vcs := make([]*vcard.Card, count)
	for i := range vcs {
		vcs[i] = newCard(t, 5000+i)
	}
	// The operator: puts a card on the reader, takes it away once the
	// station has reported it, puts the next.
	reported := make(chan station.Event)
	feederErr := make(chan error, 1)
	go func() {
		defer close(feederErr)
		for _, vc := range vcs {
			conn, err := vpcd.Connect(ctx, env.Addr(), vc, nil)
			if err != nil {
				feederErr <- err
				return
			}
			select {
			case <-reported:
			case <-ctx.Done():
			}
			conn.Close()
		}
	}()
	var events []station.Event
	start := time.Now()
	err = s.Run(ctx, r, func(ev station.Event) {
		events = append(events, ev)
		reported <- ev
	})
	require.NoError(t, err)
	elapsed := time.Since(start)
	require.NoError(t, <-feederErr)
	require.Len(t, events, count)
	tm := s.Times()
	t.Logf("%d cards through pcscd in %v (%.0f ms/card; card exchanges %.1f ms/card, HSM %.2f ms/card, database %.2f ms/card)",
		count, elapsed.Round(time.Millisecond), ms(elapsed)/count, ms(tm.Card)/count, ms(tm.HSM)/count, ms(tm.DB)/count)

	l := personalize.DefaultLayout()
	infos := map[string][]byte{}
	for i, vc := range vcs {
		require.NoError(t, events[i].Err)
		require.Equal(t, station.Personalized, events[i].Outcome)
		infos[string(vc.UID())] = readInfo(t, l, vc)
	}
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
