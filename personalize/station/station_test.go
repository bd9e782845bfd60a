package station_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/labels"
	"github.com/loopcard/loopcard/personalize/reader"
	"github.com/loopcard/loopcard/personalize/station"
	"github.com/loopcard/loopcard/personalize/vcard"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPersonalizeStates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := e.newBatch(t, 2)
	other := e.newBatch(t, 1)
	sp := spoolPath(t)
	s, _ := e.station(t, b, sp, nil)
	l := personalize.DefaultLayout()

	// Blank card: personalized.
	vc := newCard(t, 1)
	res, err := s.Personalize(ctx, present(vc))
	require.NoError(t, err)
	require.Equal(t, station.Personalized, res.Outcome)
	require.Equal(t, "1-00001", res.Number)
	info := checkCard(t, l, present(vc), vc.UID())
	require.Equal(t, res.CardID, info.CardID)

	// Presented again: verified and left alone.
	res, err = s.Personalize(ctx, present(vc))
	require.NoError(t, err)
	require.Equal(t, station.AlreadyDone, res.Outcome)

	// Ours, of another batch: refused.
	so, _ := e.station(t, other, spoolPath(t), nil)
	_, err = so.Personalize(ctx, present(vc))
	require.ErrorIs(t, err, station.ErrOtherBatch)

	// Foreign: a card whose PICC master key is someone else's AES key.
	foreign := newCard(t, 2)
	c := desfire.New(present(foreign))
	require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	k, _ := desfire.NewAESKey([]byte("someone elses k!"), 1)
	require.NoError(t, c.ChangeKey(0, k, desfire.Key{}))
	_, err = s.Personalize(ctx, present(foreign))
	require.ErrorIs(t, err, station.ErrForeign)

	// Foreign: factory key but someone's application on it.
	withApp := newCard(t, 3)
	c = desfire.New(present(withApp))
	require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	require.NoError(t, c.CreateApplication(0x123456, 0x0F, 1, desfire.KeyAES))
	_, err = s.Personalize(ctx, present(withApp))
	require.ErrorIs(t, err, station.ErrForeign)
	got, err := e.batches.Get(ctx, orgID, b.No)
	require.NoError(t, err)
	require.Equal(t, 0, got.Reserved, "foreign cards take no slot")

	// Ours, half-done and not recorded (its record was lost): finished.
	half := newCard(t, 4)
	lk := present(half)
	lk.failAt = 12
	_, err = s.Personalize(ctx, lk)
	require.ErrorIs(t, err, errCrash)
	// As if an operating-system crash lost the reservation, which is
	// committed without waiting for the disk.
	_, err = e.pool.Exec(ctx, `DELETE FROM batch_cards WHERE uid = $1`, half.UID())
	require.NoError(t, err)
	_, err = e.pool.Exec(ctx, `UPDATE card_batches SET next_slot = next_slot - 1 WHERE org_id = $1 AND batch_no = $2`, orgID, b.No)
	require.NoError(t, err)
	res, err = s.Personalize(ctx, present(half))
	require.NoError(t, err)
	require.Equal(t, station.Resumed, res.Outcome)
	require.True(t, res.Complete)
	checkCard(t, l, present(half), half.UID())

	// The batch is full now.
	_, err = s.Personalize(ctx, present(newCard(t, 5)))
	require.ErrorIs(t, err, batch.ErrFull)
}

// countAPDUs personalizes one blank card and returns the number of APDUs it
// took.
func countAPDUs(t *testing.T, e *testEnv) int {
	b := e.newBatch(t, 1)
	s, _ := e.station(t, b, spoolPath(t), nil)
	lk := present(newCard(t, 999999))
	_, err := s.Personalize(context.Background(), lk)
	require.NoError(t, err)
	return lk.n
}

func TestTearAtEveryStep(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	n := countAPDUs(t, e)
	require.Greater(t, n, 20)
	t.Logf("a blank card takes %d APDUs", n)

	const repeated = 10
	b := e.newBatch(t, 2*n+repeated)
	sp := spoolPath(t)
	s, _ := e.station(t, b, sp, nil)
	l := personalize.DefaultLayout()
	infos := map[string][]byte{}
	// Cards torn again and again, at pseudo-random points of whatever path
	// the station takes on them, until one attempt goes through.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range repeated {
		t.Run(fmt.Sprintf("repeated tears %d", i), func(t *testing.T) {
			vc := newCard(t, 1000+i)
			tears := 0
			for {
				lk := present(vc)
				if tears < 6 {
					lk.tearAt, lk.after = 1+rng.IntN(n), rng.IntN(2) == 0
				}
				_, err := s.Personalize(ctx, lk)
				if err == nil {
					break
				}
				require.ErrorIs(t, err, station.ErrTorn)
				tears++
			}
			infos[string(vc.UID())] = readInfo(t, l, vc)
		})
	}
	for i := 1; i <= 2*n; i++ {
		tearAt, after := (i+1)/2, i%2 == 0
		t.Run(fmt.Sprintf("apdu %d after=%v", tearAt, after), func(t *testing.T) {
			vc := newCard(t, i)
			lk := present(vc)
			lk.tearAt, lk.after = tearAt, after
			_, err := s.Personalize(ctx, lk)
			require.ErrorIs(t, err, station.ErrTorn)
			require.ErrorIs(t, err, reader.ErrRemoved)

			res, err := s.Personalize(ctx, present(vc))
			require.NoError(t, err)
			if tearAt <= 2 {
				// Torn during recognition, before anything was written.
				require.Equal(t, station.Personalized, res.Outcome)
			}
			infos[string(vc.UID())] = readInfo(t, l, vc)
		})
	}
	e.checkRecords(t, b, sp, infos)
}

// faultyBatches fails like a station process dying around its database
// calls: before a call reaches the database, or after it committed.
type faultyBatches struct {
	station.Batches
	failReserve, failFinishBefore, failFinishAfter bool
}

func (f *faultyBatches) Reserve(ctx context.Context, org, no int64, uid []byte) (batch.Reservation, error) {
	if f.failReserve {
		return batch.Reservation{}, errCrash
	}
	return f.Batches.Reserve(ctx, org, no, uid)
}

func (f *faultyBatches) Finish(ctx context.Context, org, no int64, slot int, uid []byte, fin batch.Finished) (batch.Progress, error) {
	if f.failFinishBefore {
		return batch.Progress{}, errCrash
	}
	p, err := f.Batches.Finish(ctx, org, no, slot, uid, fin)
	if f.failFinishAfter {
		return batch.Progress{}, errCrash
	}
	return p, err
}

func TestCrashAndRestart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	n := countAPDUs(t, e)
	type crash struct {
		name    string
		batches func() *faultyBatches
		apdu    int // the process dies at this APDU
	}
	crashes := []crash{
		{"before reserving", func() *faultyBatches { return &faultyBatches{failReserve: true} }, 0},
		{"after the label, before recording", func() *faultyBatches { return &faultyBatches{failFinishBefore: true} }, 0},
		{"after recording", func() *faultyBatches { return &faultyBatches{failFinishAfter: true} }, 0},
	}
	for a := 3; a <= n; a += 3 {
		crashes = append(crashes, crash{fmt.Sprintf("at APDU %d", a), func() *faultyBatches { return &faultyBatches{} }, a})
	}
	b := e.newBatch(t, len(crashes))
	sp := spoolPath(t)
	l := personalize.DefaultLayout()
	infos := map[string][]byte{}
	for i, c := range crashes {
		t.Run(c.name, func(t *testing.T) {
			fs := c.batches()
			fs.Batches = e.batches
			s, spool := e.station(t, b, sp, fs)
			vc := newCard(t, i)
			lk := present(vc)
			lk.failAt = c.apdu
			_, err := s.Personalize(ctx, lk)
			require.ErrorIs(t, err, errCrash)
			s.Close()
			require.NoError(t, spool.Close())

			// A new station process on the same database and spool.
			s2, _ := e.station(t, b, sp, nil)
			res, err := s2.Personalize(ctx, present(vc))
			require.NoError(t, err)
			if c.name == "after recording" {
				require.Equal(t, station.AlreadyDone, res.Outcome)
			}
			infos[string(vc.UID())] = readInfo(t, l, vc)
		})
	}
	e.checkRecords(t, b, sp, infos)
}

// cards presents the given virtual cards one after another.
type cards struct {
	list []*link
	next int
}

func (c *cards) Name() string { return "test" }
func (c *cards) Close() error { return nil }
func (c *cards) WaitForCard(ctx context.Context) (reader.Card, error) {
	if c.next == len(c.list) {
		return nil, errors.New("no more cards")
	}
	c.next++
	lk := c.list[c.next-1]
	lk.vc.PowerOn()
	return lk, nil
}

func TestRunCrashMidBatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const count = 6
	b := e.newBatch(t, count)
	sp := spoolPath(t)
	var vcs []*vcard.Card
	var links []*link
	for i := range count + 1 {
		vc := newCard(t, 100+i)
		vcs = append(vcs, vc)
		links = append(links, &link{vc: vc})
	}
	// The first run dies in the middle of the fourth card; a foreign card
	// (already ours, of this batch, but torn) and a torn card are skipped.
	links[1].tearAt = 9
	links[3].failAt = 17
	s, spool := e.station(t, b, sp, nil)
	var events []station.Event
	err := s.Run(ctx, &cards{list: links[:5]}, func(ev station.Event) { events = append(events, ev) })
	require.ErrorIs(t, err, errCrash)
	require.Len(t, events, 4)
	require.ErrorIs(t, events[1].Err, station.ErrTorn)
	require.Equal(t, 2, events[3].Done)
	s.Close()
	require.NoError(t, spool.Close())

	// Restart: the torn card, the interrupted card and the rest come again.
	again := []*link{{vc: vcs[3]}, {vc: vcs[4]}, {vc: vcs[1]}, {vc: vcs[5]}, {vc: vcs[0]}, {vc: vcs[6]}}
	s2, _ := e.station(t, b, sp, nil)
	events = nil
	require.NoError(t, s2.Run(ctx, &cards{list: again}, func(ev station.Event) { events = append(events, ev) }))
	require.Len(t, events, 4, "the run stops when the batch is complete")
	require.Equal(t, count, events[3].Done)
	require.True(t, events[3].Complete)

	l := personalize.DefaultLayout()
	infos := map[string][]byte{}
	for _, vc := range vcs[:6] {
		infos[string(vc.UID())] = readInfo(t, l, vc)
	}
	e.checkRecords(t, b, sp, infos)

	// The print files take one label per recorded card from the spool and
	// refuse a spool that misses a recorded card's label.
	hashes, err := e.batches.TokenHashes(ctx, orgID, b.No)
	require.NoError(t, err)
	require.Len(t, hashes, count)
	sp2, spooled, err := labels.OpenSpool(sp, publicURL)
	require.NoError(t, err)
	require.NoError(t, sp2.Close())
	ls, err := station.PrintLabels(spooled, hashes)
	require.NoError(t, err)
	require.Len(t, ls, count)
	delete(hashes, ls[0].Number)
	_, err = station.PrintLabels(spooled[1:], hashes)
	require.NoError(t, err)
	hashes[ls[0].Number] = make([]byte, 32)
	_, err = station.PrintLabels(spooled, hashes)
	require.Error(t, err, "a recorded card without its label")
}

func TestBlankCardsReader(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := e.newBatch(t, 3)
	sp := spoolPath(t)
	s, _ := e.station(t, b, sp, nil)
	r := &station.BlankCards{}
	var events []station.Event
	require.NoError(t, s.Run(ctx, r, func(ev station.Event) { events = append(events, ev) }))
	require.Equal(t, 3, r.Presented())
	require.Len(t, events, 3)
	for _, ev := range events {
		require.NoError(t, ev.Err)
		require.Equal(t, station.Personalized, ev.Outcome)
	}
	got, err := e.batches.Get(ctx, orgID, b.No)
	require.NoError(t, err)
	require.Equal(t, batch.StatusComplete, got.Status)
	tm := s.Times()
	require.Equal(t, 3, tm.Cards)
	require.Greater(t, tm.HSM, tm.Total/100)
	// The shares are parts of the cards' own time; the station's start
	// (which registers the batch's recorded cards) is not one of them.
	require.Less(t, tm.HSM+tm.Card+tm.DB+tm.Spool, tm.Total)
}

// With Dir, the virtual cards last: each is a state file that loads as the
// personalized card, with the card info of its slot.
func TestBlankCardsKeptInDir(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := e.newBatch(t, 2)
	sp := spoolPath(t)
	s, _ := e.station(t, b, sp, nil)
	dir := t.TempDir()
	r := &station.BlankCards{Dir: dir}
	var events []station.Event
	require.NoError(t, s.Run(ctx, r, func(ev station.Event) { events = append(events, ev) }))
	files := r.Files()
	require.Len(t, files, 2)
	infos := map[string][]byte{}
	for i, f := range files {
		require.Equal(t, filepath.Join(dir, events[i].UIDHex+".json"), f)
		fi, err := os.Stat(f)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		vc, err := vcard.New(vcard.Options{StatePath: f})
		require.NoError(t, err)
		require.Equal(t, events[i].UIDHex, fmt.Sprintf("%X", vc.UID()))
		infos[string(vc.UID())] = readInfo(t, personalize.DefaultLayout(), vc)
	}
	e.checkRecords(t, b, sp, infos)
}

// TestNoSecretsInLogs runs cards through a station whose logs, and the
// HSM's audit records, are kept at debug level, tears one card, makes one
// foreign, and checks that no PIN, QR token or key appears in any log line
// or error.
func TestNoSecretsInLogs(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t)
	b := e.newBatch(t, 3)
	sp := spoolPath(t)
	spool, _, err := labels.OpenSpool(sp, publicURL)
	require.NoError(t, err)
	t.Cleanup(func() { spool.Close() })
	bt, err := e.batches.Get(ctx, orgID, b.No)
	require.NoError(t, err)
	h, err := keys.Open(e.uri, keys.Options{Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	s, err := station.New(ctx, station.Config{Batch: bt, PublicURL: publicURL, HSM: h, Batches: e.batches, Spool: spool, Ledger: e.ledger, Logger: log})
	require.NoError(t, err)
	defer s.Close()

	var errs []string
	var vcs []*vcard.Card
	for i := range 3 {
		vc := newCard(t, 700+i)
		vcs = append(vcs, vc)
		lk := present(vc)
		lk.tearAt = 20
		if _, err := s.Personalize(ctx, lk); err != nil {
			errs = append(errs, err.Error())
		}
		_, err := s.Personalize(ctx, present(vc))
		require.NoError(t, err)
	}
	foreign := newCard(t, 799)
	c := desfire.New(present(foreign))
	require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
	k, _ := desfire.NewAESKey([]byte("someone elses k!"), 1)
	require.NoError(t, c.ChangeKey(0, k, desfire.Key{}))
	_, err = s.Personalize(ctx, present(foreign))
	require.Error(t, err)
	errs = append(errs, err.Error())

	text := strings.ToLower(logs.String() + strings.Join(errs, "\n"))
	require.Contains(t, text, "card finished", "the station's logs were captured")
	require.Contains(t, text, "keys.diversify", "the HSM's audit records were captured")
	words := map[string]bool{}
	for _, w := range regexp.MustCompile(`[0-9a-z_-]+`).FindAllString(text, -1) {
		words[w] = true
	}
	_, ls, err := labels.OpenSpool(sp, publicURL)
	require.NoError(t, err)
	require.Len(t, ls, 3)
	for _, l := range ls {
		require.False(t, words[l.PIN.Reveal()], "PIN of %s logged", l.Number)
		tok := strings.TrimPrefix(l.Token.URL(publicURL), publicURL)
		require.NotContains(t, text, strings.ToLower(tok))
	}
	layout := personalize.DefaultLayout()
	for _, vc := range vcs {
		picc, app := refKeyBytes(t, layout, vc.UID())
		for _, k := range [][]byte{picc, app[0], app[1], app[2], app[3]} {
			require.NotContains(t, text, hex.EncodeToString(k), "a card key was logged")
		}
	}
	for _, v := range baseKeys {
		require.NotContains(t, text, strings.ToLower(v))
	}
}

// TestRotationMidBatch: keys rotated while a batch is half done do not
// change the keys its cards get; a new batch takes the new versions.
func TestRotationMidBatch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := e.newBatch(t, 2)
	sp := spoolPath(t)
	s, spool := e.station(t, b, sp, nil)
	vc := newCard(t, 1)
	lk := present(vc)
	lk.failAt = 15
	_, err := s.Personalize(ctx, lk)
	require.ErrorIs(t, err, errCrash)
	s.Close()
	require.NoError(t, spool.Close())

	for _, name := range []string{keys.PICCMaster, keys.AppMaster, keys.AppDebit, keys.AppRead} {
		_, err := e.hsm.Rotate(ctx, name)
		require.NoError(t, err)
	}
	s2, _ := e.station(t, b, sp, nil)
	require.Equal(t, map[string]int{"picc-master": 1, "app-master": 1, "app-debit": 1, "app-credit": 1, "app-read": 1}, s2.KeyVersions())
	res, err := s2.Personalize(ctx, present(vc))
	require.NoError(t, err)
	require.Equal(t, station.Resumed, res.Outcome)
	res, err = s2.Personalize(ctx, present(newCard(t, 2)))
	require.NoError(t, err)
	require.True(t, res.Complete)
	// The card answers to the keys of version 1 (the imported ones).
	readInfo(t, personalize.DefaultLayout(), vc)

	nb := e.newBatch(t, 1)
	s3, _ := e.station(t, nb, spoolPath(t), nil)
	require.Equal(t, map[string]int{"picc-master": 2, "app-master": 2, "app-debit": 2, "app-credit": 1, "app-read": 2}, s3.KeyVersions())
}

// faultyLedger fails to register cards, with the card being recorded.
type faultyLedger struct {
	station.CardRegistrar
	calls int
}

func (f *faultyLedger) QueueRegisterCards(b *pgx.Batch, org int64, event string, cards [][]byte) {
	f.calls++
	b.Queue("SELECT 1").Exec(func(pgconn.CommandTag) error { return errCrash })
}

// A finished card is registered in the ledger in the transaction that
// records it: when registering fails, the card is not recorded either (no
// card recorded but unknown to the ledger); presented again, it is resumed,
// recorded and registered once.
func TestRegisterInLedger(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b := e.newBatch(t, 2)
	sp := spoolPath(t)
	spool, _, err := labels.OpenSpool(sp, publicURL)
	require.NoError(t, err)
	fl := &faultyLedger{CardRegistrar: e.ledger}
	s, err := station.New(ctx, station.Config{Batch: b, PublicURL: publicURL, HSM: e.hsm, Batches: e.batches, Spool: spool, Ledger: fl})
	require.NoError(t, err)
	vc := newCard(t, 200)
	_, err = s.Personalize(ctx, present(vc))
	require.ErrorIs(t, err, errCrash)
	require.Equal(t, 1, fl.calls)
	s.Close()
	require.NoError(t, spool.Close())
	got, err := e.batches.Get(ctx, orgID, b.No)
	require.NoError(t, err)
	require.Equal(t, 0, got.Done, "the card's record rolled back with its registration")
	_, err = e.ledger.Card(ctx, orgID, vc.UID())
	require.ErrorIs(t, err, ledger.ErrNotFound)

	// The next station resumes the card, records and registers it.
	s2, _ := e.station(t, b, sp, nil)
	res, err := s2.Personalize(ctx, present(vc))
	require.NoError(t, err)
	require.Equal(t, station.Resumed, res.Outcome)
	info, err := e.ledger.Card(ctx, orgID, vc.UID())
	require.NoError(t, err)
	require.Equal(t, event, info.Event)

	// Presented again and a second card: registered once each; a station
	// opened later registers the recorded cards again, changing nothing.
	res, err = s2.Personalize(ctx, present(vc))
	require.NoError(t, err)
	require.Equal(t, station.AlreadyDone, res.Outcome)
	vc2 := newCard(t, 201)
	_, err = s2.Personalize(ctx, present(vc2))
	require.NoError(t, err)
	s3, _ := e.station(t, b, sp, nil)
	s3.Close()
	var n int
	require.NoError(t, e.pool.QueryRow(ctx, `SELECT count(*) FROM cards WHERE org_id = $1`, orgID).Scan(&n))
	require.Equal(t, 2, n)
	require.NoError(t, e.ledger.Verify(ctx))
	e.checkRecords(t, b, sp, map[string][]byte{
		string(vc.UID()): readInfo(t, personalize.DefaultLayout(), vc), string(vc2.UID()): readInfo(t, personalize.DefaultLayout(), vc2)})
}

// A station refuses a batch whose event the ledger does not know, before
// it writes to any card.
func TestUnknownEvent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	b, err := e.batches.Create(ctx, orgID, "nosuch", 1, personalize.DefaultLayout())
	require.NoError(t, err)
	spool, _, err := labels.OpenSpool(spoolPath(t), publicURL)
	require.NoError(t, err)
	defer spool.Close()
	_, err = station.New(ctx, station.Config{Batch: b, PublicURL: publicURL, HSM: e.hsm, Batches: e.batches, Spool: spool, Ledger: e.ledger})
	var ue *ledger.UnknownError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, "nosuch", ue.ID)
}
