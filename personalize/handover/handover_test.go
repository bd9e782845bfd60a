package handover_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
	"github.com/loopcard/loopcard/personalize/handover/handoverdb"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var at = time.Date(2026, 7, 1, 9, 30, 0, 123456789, time.UTC)

func TestEntryCanonical(t *testing.T) {
	hq := ht.Signer(t, "loopcard/handover/org-7")
	store := ht.StoreSigner(t, "north")
	issued := handover.Entry{V: 1, Type: handover.TypeBatchIssued, Org: 7, At: at, Batch: 1, Event: "fest", Count: handover.N(2),
		Root: handover.MerkleRoot([][]byte{[]byte("1-00001"), []byte("1-00002")}).String()}
	require.NoError(t, hq.SignEntry(&issued))
	good, err := issued.Marshal()
	require.NoError(t, err)
	back, err := handover.ParseEntry(good)
	require.NoError(t, err)
	again, err := back.Marshal()
	require.NoError(t, err)
	require.Equal(t, good, again)
	require.True(t, handover.VerifyEntry(hq.PublicKey().Key, back))
	require.False(t, handover.VerifyEntry(store.PublicKey().Key, back))

	received, err := handover.NewReceipt(store, 7, 1, "north", 0, at)
	require.NoError(t, err)
	rb, err := received.Marshal()
	require.NoError(t, err)
	require.Contains(t, string(rb), `"count":0`, "a count of zero is kept, not omitted")

	s := string(good)
	bad := []struct {
		name, text string
	}{
		{"space after colon", strings.Replace(s, `"v":1`, `"v": 1`, 1)},
		{"fields reordered", strings.Replace(s, `{"v":1,"type":"batch_issued"`, `{"type":"batch_issued","v":1`, 1)},
		{"unknown field", strings.Replace(s, `"v":1,`, `"v":1,"x":1,`, 1)},
		{"version 2", strings.Replace(s, `"v":1`, `"v":2`, 1)},
		{"not UTC", strings.Replace(s, `Z"`, `+00:00"`, 1)},
		{"trailing newline", s + "\n"},
		{"two entries", s + s},
		{"escaped differently", strings.Replace(s, `"fest"`, `"\u0066est"`, 1)},
		{"field of another type", strings.Replace(s, `"count":2`, `"count":2,"card":"1-00001"`, 1)},
		{"missing root", strings.Replace(s, `,"root":"`+issued.Root+`"`, "", 1)},
		{"negative count", strings.Replace(s, `"count":2`, `"count":-2`, 1)},
		{"unknown type", strings.Replace(s, `batch_issued`, `batch_stolen`, 1)},
		{"bad signer", strings.Replace(s, `"signer":"loopcard/handover/org-7+`, `"signer":"loopcard handover+`, 1)},
		{"short signature", strings.Replace(s, `"sig":"`, `"sig":"AAAA`, 1)[:len(s)-10] + `"}`},
		{"empty", ""},
		{"not json", "batch issued"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			require.NotEqual(t, s, tc.text)
			_, err := handover.ParseEntry([]byte(tc.text))
			require.ErrorIs(t, err, handover.ErrMalformed)
		})
	}
}

func TestCheckerRules(t *testing.T) {
	hq := ht.Signer(t, "loopcard/handover/org-7")
	north := ht.StoreSigner(t, "north")
	south := ht.StoreSigner(t, "south")
	stranger := ht.StoreSigner(t, "west")
	entry := func(s *handover.Signer, typ handover.Type, store string) handover.Entry {
		e := handover.Entry{V: 1, Type: typ, Org: 7, At: at, Store: store}
		switch typ {
		case handover.TypeHandedOver, handover.TypeReceived:
			e.Batch, e.Count = 1, handover.N(3)
		case handover.TypeBatchIssued:
			e.Batch, e.Event, e.Count, e.Root = 1, "fest", handover.N(3), handover.MerkleRoot(nil).String()
		default:
			e.Card = "1-00001"
		}
		require.NoError(t, s.SignEntry(&e))
		return e
	}
	tests := []struct {
		name string
		e    handover.Entry
		want error
	}{
		{"HQ issues", entry(hq, handover.TypeBatchIssued, ""), nil},
		{"HQ hands over", entry(hq, handover.TypeHandedOver, "north"), nil},
		{"store receives as itself", entry(north, handover.TypeReceived, "north"), nil},
		{"store sells as itself", entry(north, handover.TypeCardSold, "north"), nil},
		{"HQ voids", entry(hq, handover.TypeCardVoided, ""), nil},
		{"store destroys its own", entry(south, handover.TypeCardDestroyed, "south"), nil},
		{"store hands over", entry(north, handover.TypeHandedOver, "north"), handover.ErrNotAllowed},
		{"store issues", entry(north, handover.TypeBatchIssued, ""), handover.ErrNotAllowed},
		{"store receives for another", entry(north, handover.TypeReceived, "south"), handover.ErrNotAllowed},
		{"HQ receives for a store", entry(hq, handover.TypeReceived, "north"), handover.ErrNotAllowed},
		{"HQ sells for a store", entry(hq, handover.TypeCardSold, "north"), handover.ErrNotAllowed},
		{"store voids another's card", entry(south, handover.TypeCardVoided, "north"), handover.ErrNotAllowed},
		{"store voids at HQ", entry(south, handover.TypeCardVoided, ""), handover.ErrNotAllowed},
		{"key never enrolled", entry(stranger, handover.TypeCardSold, "west"), handover.ErrUnknownSigner},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := handover.NewChecker(hq.PublicKey(), 5)
			c.AddStoreKey("north", north.PublicKey())
			c.AddStoreKey("south", south.PublicKey())
			b, err := tc.e.Marshal()
			require.NoError(t, err)
			sc, err := c.Add(tc.e, tlogRecordHash(b))
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				var ee *handover.EntryError
				require.ErrorAs(t, err, &ee)
				require.EqualValues(t, 5, ee.Index)
				return
			}
			require.NoError(t, err)
			require.NoError(t, sc.Verify())
		})
	}
}

func TestSeals(t *testing.T) {
	hq := ht.Signer(t, "loopcard/handover/org-7")
	north := ht.StoreSigner(t, "north")
	south := ht.StoreSigner(t, "south")
	events := func(n int, store string) []handover.CardEvent {
		var out []handover.CardEvent
		for i := 1; i <= n; i++ {
			out = append(out, handover.CardEvent{Type: handover.TypeCardSold, Card: ht.Card(t, 1, i), Store: store})
		}
		return out
	}
	sealed, err := handover.SignCardEvents(north, 7, at, events(3, "north"))
	require.NoError(t, err)
	require.Len(t, sealed, 4)
	for _, e := range sealed[:3] {
		require.Empty(t, e.Sig)
	}
	require.Equal(t, handover.TypeSeal, sealed[3].Type)
	other, err := handover.SignCardEvents(south, 7, at, events(2, "south"))
	require.NoError(t, err)

	tests := []struct {
		name    string
		entries []handover.Entry
		want    error
		index   int64
	}{
		{"sealed run", sealed, nil, 0},
		{"two runs", append(append([]handover.Entry{}, sealed...), other...), nil, 0},
		{"unsealed end", sealed[:3], handover.ErrNotSealed, 0},
		{"entry dropped", []handover.Entry{sealed[0], sealed[2], sealed[3]}, handover.ErrBadSeal, 2},
		{"entries swapped", []handover.Entry{sealed[1], sealed[0], sealed[2], sealed[3]}, handover.ErrBadSeal, 3},
		{"foreign entry inside", []handover.Entry{sealed[0], other[0], sealed[1], sealed[2], sealed[3]}, handover.ErrNotSealed, 1},
		{"seal of another run", []handover.Entry{sealed[0], sealed[1], sealed[2], other[2]}, handover.ErrBadSeal, 3},
		{"signed entry inside", []handover.Entry{sealed[0], signed(t, north, sealed[1]), sealed[2], sealed[3]}, handover.ErrNotSealed, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := handover.NewChecker(hq.PublicKey(), 0)
			c.AddStoreKey("north", north.PublicKey())
			c.AddStoreKey("south", south.PublicKey())
			var err error
			for _, e := range tc.entries {
				b, merr := e.Marshal()
				require.NoError(t, merr)
				var sc *handover.SigCheck
				if sc, err = c.Add(e, tlogRecordHash(b)); err != nil {
					break
				}
				if sc != nil {
					require.NoError(t, sc.Verify())
				}
			}
			if err == nil {
				err = c.Finish()
			}
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			var ee *handover.EntryError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, tc.index, ee.Index)
		})
	}
}

func signed(t *testing.T, s *handover.Signer, e handover.Entry) handover.Entry {
	require.NoError(t, s.SignEntry(&e))
	return e
}

func TestTally(t *testing.T) {
	n := handover.N
	e := func(typ handover.Type, f func(*handover.Entry)) handover.Entry {
		x := handover.Entry{Type: typ}
		f(&x)
		return x
	}
	issue := e(handover.TypeBatchIssued, func(x *handover.Entry) { x.Batch, x.Count = 1, n(3) })
	give := func(store string, c int64) handover.Entry {
		return e(handover.TypeHandedOver, func(x *handover.Entry) { x.Batch, x.Store, x.Count = 1, store, n(c) })
	}
	recv := func(store string, c int64) handover.Entry {
		return e(handover.TypeReceived, func(x *handover.Entry) { x.Batch, x.Store, x.Count = 1, store, n(c) })
	}
	card := func(typ handover.Type, c, store string) handover.Entry {
		return e(typ, func(x *handover.Entry) { x.Card, x.Store = c, store })
	}
	// run hands over c cards from first on (issue 17, M3).
	run := func(store, first string, c int64) handover.Entry {
		return e(handover.TypeHandedOver, func(x *handover.Entry) { x.Batch, x.Store, x.Count, x.Card = 1, store, n(c), first })
	}
	sold := func(c, store string) handover.Entry { return card(handover.TypeCardSold, c, store) }
	tests := []struct {
		name    string
		entries []handover.Entry
		want    error
		index   int64
	}{
		{"sell what was received", []handover.Entry{issue, give("a", 2), recv("a", 2), card(handover.TypeCardSold, "1-00001", "a")}, nil, 0},
		{"batch issued twice", []handover.Entry{issue, issue}, handover.ErrState, 1},
		{"hand over more than HQ has", []handover.Entry{issue, give("a", 2), give("b", 2)}, handover.ErrCount, 2},
		{"receive without handover", []handover.Entry{issue, recv("a", 1)}, handover.ErrState, 1},
		{"receive twice", []handover.Entry{issue, give("a", 1), recv("a", 1), recv("a", 1)}, handover.ErrState, 3},
		{"sell before receipt", []handover.Entry{issue, give("a", 1), card(handover.TypeCardSold, "1-00001", "a")}, handover.ErrCount, 2},
		{"sell twice", []handover.Entry{issue, give("a", 2), recv("a", 2), card(handover.TypeCardSold, "1-00001", "a"), card(handover.TypeCardSold, "1-00001", "a")}, handover.ErrState, 4},
		{"sell a card of no batch", []handover.Entry{issue, card(handover.TypeCardSold, "2-00001", "a")}, handover.ErrState, 1},
		{"sell a slot beyond the batch", []handover.Entry{issue, give("a", 2), recv("a", 2), card(handover.TypeCardSold, "1-00004", "a")}, handover.ErrState, 3},
		{"return an unsold card", []handover.Entry{issue, card(handover.TypeCardReturned, "1-00001", "a")}, handover.ErrState, 1},
		{"destroy twice", []handover.Entry{issue, card(handover.TypeCardDestroyed, "1-00001", ""), card(handover.TypeCardDestroyed, "1-00001", "")}, handover.ErrState, 2},
		{"void at HQ with none left", []handover.Entry{issue, give("a", 3), card(handover.TypeCardVoided, "1-00001", "")}, handover.ErrCount, 2},

		// Runs of cards: each store sells only the cards of its own runs.
		{"each store sells its run", []handover.Entry{issue, run("a", "1-00001", 2), run("b", "1-00003", 1), recv("a", 2), recv("b", 1),
			sold("1-00002", "a"), sold("1-00003", "b"), sold("1-00001", "a")}, nil, 0},
		{"sell another store's card", []handover.Entry{issue, run("a", "1-00001", 2), run("b", "1-00003", 1), recv("a", 2), recv("b", 1),
			sold("1-00001", "b")}, handover.ErrState, 5},
		{"sell a card of a run not received", []handover.Entry{issue, run("a", "1-00001", 2), sold("1-00001", "a")}, handover.ErrState, 2},
		{"void at HQ a card at a store", []handover.Entry{issue, run("a", "1-00001", 2), recv("a", 2), card(handover.TypeCardVoided, "1-00002", "")}, handover.ErrState, 3},
		{"a store's counted cards are not another run's", []handover.Entry{issue, run("a", "1-00001", 2), give("b", 1), recv("a", 2), recv("b", 1),
			sold("1-00002", "b")}, handover.ErrState, 5},
		{"counted cards sell outside the runs", []handover.Entry{issue, run("a", "1-00001", 2), give("b", 1), recv("a", 2), recv("b", 1),
			sold("1-00003", "b")}, nil, 0},
		{"a run handed over twice", []handover.Entry{issue, run("a", "1-00001", 2), run("b", "1-00002", 1)}, handover.ErrState, 2},
		{"a run beyond the batch", []handover.Entry{issue, run("a", "1-00002", 3)}, handover.ErrState, 1},
		{"a run of another batch", []handover.Entry{issue, run("a", "2-00001", 1)}, handover.ErrState, 1},
		{"a run with a destroyed card", []handover.Entry{issue, card(handover.TypeCardDestroyed, "1-00002", ""), run("a", "1-00001", 2)}, handover.ErrState, 2},
		{"a missing card of a run", []handover.Entry{issue, run("a", "1-00001", 2), recv("a", 1), sold("1-00001", "a"), sold("1-00002", "a")}, handover.ErrCount, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ta := handover.NewTally()
			var err error
			for i, x := range tc.entries {
				if err = ta.Add(int64(i), x); err != nil {
					break
				}
			}
			if tc.want == nil {
				require.NoError(t, err)
				for _, b := range ta.Batches() {
					require.Equal(t, b.Issued, b.Accounted())
				}
				return
			}
			require.ErrorIs(t, err, tc.want)
			var ee *handover.EntryError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, tc.index, ee.Index)
		})
	}
}

// The scenario through PostgreSQL, exported and verified: the counts are
// those the scenario made.
func TestLogExportVerify(t *testing.T) {
	pool := ht.Pool(t)
	hq := ht.Signer(t, handover.DefaultOrigin(ht.Org))
	l := ht.Log(t, pool, hq)
	ht.Populate(t, l)

	dir := filepath.Join(t.TempDir(), "export")
	sum, err := l.Export(context.Background(), dir)
	require.NoError(t, err)
	require.EqualValues(t, 22, sum.Entries)
	require.Equal(t, 15, sum.Checkpoints)
	require.Equal(t, 14, sum.Proofs)
	require.Equal(t, 2, sum.StoreKeys)

	rep, err := audit.Verify(os.DirFS(dir), audit.Options{HQKey: hq.PublicKey().Vkey()})
	require.NoError(t, err)
	require.True(t, rep.OK)
	require.True(t, rep.HQKeyPinned)
	require.EqualValues(t, 22, rep.Entries)
	require.EqualValues(t, 7, rep.Sealed)
	require.EqualValues(t, 15, rep.Signatures)
	require.Len(t, rep.Batches, 2)
	b1 := rep.Batches[0]
	require.Equal(t, handover.BatchCounts{Batch: 1, Issued: 20, AtHQ: 5, AtStores: map[string]int64{"north": 1, "south": 3},
		Sold: 7, Returned: 1, Voided: 1, Destroyed: 1, Missing: 1}, b1)
	require.Equal(t, handover.BatchCounts{Batch: 2, Issued: 10, AtHQ: 6, InTransit: 4, AtStores: map[string]int64{}}, rep.Batches[1])
	require.Len(t, rep.OpenHandovers, 1)
	require.Equal(t, "north", rep.OpenHandovers[0].Store)
	require.EqualValues(t, 2, rep.OpenHandovers[0].Batch)
	require.Len(t, rep.Discrepancies, 1)
	require.Equal(t, handover.Handover{Batch: 1, Store: "south", Index: 5, Count: 6, Received: 7, Counted: 5}, rep.Discrepancies[0])

	// Another organizer has no log: nothing is written.
	none := filepath.Join(t.TempDir(), "none")
	_, err = handoverdb.Export(context.Background(), pool, ht.Org+1, hq.PublicKey(), none)
	require.ErrorIs(t, err, handoverdb.ErrNoLog)
	require.NoDirExists(t, none)

	// A second export into the same, now full, directory is refused.
	_, err = l.Export(context.Background(), dir)
	require.ErrorIs(t, err, handoverdb.ErrExportDir)
}

// Append checks everything before it writes anything.
func TestAppendRefuses(t *testing.T) {
	ctx := context.Background()
	pool := ht.Pool(t)
	hq := ht.Signer(t, handover.DefaultOrigin(ht.Org))
	l := ht.Log(t, pool, hq)
	north := ht.StoreSigner(t, "north")
	_, err := l.EnrolStore(ctx, "north", north.PublicKey())
	require.NoError(t, err)
	_, err = l.IssueBatch(ctx, 1, "fest", ht.Cards(t, 1, 3))
	require.NoError(t, err)
	_, err = l.HandOver(ctx, 1, "north", 3)
	require.NoError(t, err)

	receipt := func(s *handover.Signer, org int64) handover.Entry {
		e, err := handover.NewReceipt(s, org, 1, "north", 3, at)
		require.NoError(t, err)
		return e
	}
	forged := receipt(north, ht.Org)
	forged.Count = handover.N(2) // changed after signing
	sales, err := handover.SignCardEvents(north, ht.Org, at, []handover.CardEvent{
		{Type: handover.TypeCardSold, Card: ht.Card(t, 1, 1), Store: "north"},
		{Type: handover.TypeCardSold, Card: ht.Card(t, 1, 2), Store: "north"}})
	require.NoError(t, err)
	hqEntry := func(e handover.Entry) handover.Entry {
		e.V, e.Org, e.At = handover.Version, ht.Org, at
		require.NoError(t, hq.SignEntry(&e))
		return e
	}
	var replayed handover.Entry
	rows, err := pool.Query(ctx, `SELECT entry FROM handover_entries WHERE idx = 2`)
	require.NoError(t, err)
	for rows.Next() {
		var b []byte
		require.NoError(t, rows.Scan(&b))
		replayed, err = handover.ParseEntry(b)
		require.NoError(t, err)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, handover.TypeHandedOver, replayed.Type)
	tests := []struct {
		name    string
		entries []handover.Entry
		want    error
	}{
		{"nothing", nil, handover.ErrMalformed},
		{"changed after signing", []handover.Entry{forged}, handover.ErrBadSignature},
		{"key not enrolled", []handover.Entry{receipt(ht.StoreSigner(t, "north"), ht.Org)}, handover.ErrUnknownSigner},
		{"HQ signs a receipt", []handover.Entry{receipt(hq, ht.Org)}, handover.ErrNotAllowed},
		{"other organizer", []handover.Entry{receipt(north, ht.Org+1)}, handover.ErrMalformed},
		{"seal missing", []handover.Entry{receipt(north, ht.Org), sales[0], sales[1]}, handover.ErrNotSealed},
		{"good entry then bad", []handover.Entry{receipt(north, ht.Org), forged}, handover.ErrBadSignature},
		{"sale before receipt", sales, handover.ErrCount},
		{"hand over more than HQ holds", []handover.Entry{hqEntry(handover.Entry{Type: handover.TypeHandedOver, Batch: 1, Store: "north", Count: handover.N(1)})}, handover.ErrCount},
		{"batch issued twice", []handover.Entry{hqEntry(handover.Entry{Type: handover.TypeBatchIssued, Batch: 1, Event: "fest", Count: handover.N(3),
			Root: handover.MerkleRoot(nil).String()})}, handover.ErrState},
		{"receipt twice in one append", []handover.Entry{receipt(north, ht.Org), receipt(north, ht.Org)}, handoverdb.ErrDuplicate},
		{"replay of a signed entry", []handover.Entry{replayed}, handoverdb.ErrDuplicate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Append(ctx, tc.entries...)
			require.ErrorIs(t, err, tc.want)
			var n, cps int64
			require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM handover_entries), (SELECT count(*) FROM handover_checkpoints)`).Scan(&n, &cps))
			require.EqualValues(t, 3, n, "nothing appended")
			require.EqualValues(t, 3, cps)
		})
	}
	// After all these refusals, the valid receipt and sales go in.
	_, err = l.Append(ctx, receipt(north, ht.Org))
	require.NoError(t, err)
	_, err = l.Append(ctx, sales...)
	require.NoError(t, err)
	// Another process's view (a second Log on the same database) catches up.
	other := ht.Log(t, pool, hq)
	_, err = other.RecordCards(ctx, north, handover.CardEvent{Type: handover.TypeCardSold, Card: ht.Card(t, 1, 1), Store: "north"})
	require.ErrorIs(t, err, handover.ErrState, "card 1-00001 was sold already")
	_, err = other.RecordCards(ctx, north, handover.CardEvent{Type: handover.TypeCardSold, Card: ht.Card(t, 1, 3), Store: "north"})
	require.NoError(t, err)
	_, err = l.RecordCards(ctx, north, handover.CardEvent{Type: handover.TypeCardReturned, Card: ht.Card(t, 1, 3), Store: "north"})
	require.NoError(t, err, "the first Log catches up with the second's sale")

	// A log whose stored entries no longer add up takes nothing more.
	_, err = pool.Exec(ctx, `ALTER TABLE handover_entries DISABLE TRIGGER USER`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM handover_entries WHERE idx = 2`)
	require.NoError(t, err)
	_, err = ht.Log(t, pool, hq).HandOver(ctx, 1, "north", 1)
	require.ErrorIs(t, err, handoverdb.ErrLogCounts)
}

// Concurrent appends, from two Logs, get dense indices and one checkpoint
// each; the append-only triggers refuse UPDATE and DELETE.
func TestConcurrentAppendsAndTriggers(t *testing.T) {
	ctx := context.Background()
	pool := ht.Pool(t)
	hq := ht.Signer(t, handover.DefaultOrigin(ht.Org))
	// Two Logs on one database, as two processes would be.
	logs := []*handoverdb.Log{ht.Log(t, pool, hq), ht.Log(t, pool, hq)}
	l := logs[0]
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				no := int64(g*5 + i + 1)
				_, err := logs[g%2].IssueBatch(ctx, no, "fest", ht.Cards(t, no, 2))
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var n, maxIdx, cps int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*), max(idx) FROM handover_entries`).Scan(&n, &maxIdx))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM handover_checkpoints`).Scan(&cps))
	require.EqualValues(t, 20, n)
	require.EqualValues(t, 19, maxIdx)
	require.EqualValues(t, 20, cps)
	// Each Log sees what the other appended.
	_, err := logs[1].HandOver(ctx, 1, "north", 2)
	require.NoError(t, err)
	_, err = logs[0].HandOver(ctx, 1, "north", 1)
	require.ErrorIs(t, err, handover.ErrCount, "HQ holds no card of batch 1 any more")

	for _, q := range []string{
		`UPDATE handover_entries SET entry = 'x' WHERE idx = 0`,
		`DELETE FROM handover_entries WHERE idx = 19`,
		`DELETE FROM handover_checkpoints`,
		`UPDATE handover_hashes SET hash = hash`,
	} {
		_, err := pool.Exec(ctx, q)
		require.ErrorContains(t, err, "append-only", q)
	}
	dir := filepath.Join(t.TempDir(), "x")
	_, err = l.Export(ctx, dir)
	require.NoError(t, err)
	_, err = audit.Verify(os.DirFS(dir), audit.Options{})
	require.NoError(t, err)
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "north.key")
	pub, err := handover.GenerateKeyFile(path, handover.StoreKeyName(7, "north"))
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	_, err = handover.GenerateKeyFile(path, "x")
	require.Error(t, err, "an existing key file is never replaced")

	s, err := handover.OpenKeyFile(path)
	require.NoError(t, err)
	require.Equal(t, pub.Vkey(), s.PublicKey().Vkey())
	text := readFile(t, path)
	// PRIVATE+KEY+name+hash+base64: the base64 may itself hold '+'.
	fields := strings.SplitN(strings.TrimSpace(text), "+", 5)
	require.Len(t, fields, 5)
	seed := fields[4]
	raw, err := base64.StdEncoding.DecodeString(seed)
	require.NoError(t, err)
	raw = raw[1:] // the algorithm byte, then the seed
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		out := fmt.Sprintf(f, s) + fmt.Sprintf(f, *s)
		for _, secret := range []string{seed[4:20], hex.EncodeToString(raw[:8]), strings.Trim(fmt.Sprint(raw[:6]), "[]"), fmt.Sprintf("%#x", raw[:6])} {
			require.NotContains(t, out, secret, "a signer prints no key material (%s)", f)
		}
	}
	sig, err := s.Sign([]byte("m"))
	require.NoError(t, err)
	require.True(t, ed25519.Verify(pub.Key, []byte("m"), sig))
	// The file is a standard signed-note key pair.
	ns, err := note.NewSigner(strings.TrimSpace(readFile(t, path)))
	require.NoError(t, err)
	require.Equal(t, s.KeyHash(), ns.KeyHash())
	_, err = note.NewVerifier(pub.Vkey())
	require.NoError(t, err)

	require.NoError(t, os.Chmod(path, 0o640))
	_, err = handover.OpenKeyFile(path)
	require.ErrorIs(t, err, handover.ErrKeyFile)

	garbled := filepath.Join(dir, "bad.key")
	secret := strings.Replace(readFile(t, path), "+", "-", 1)
	require.NoError(t, os.WriteFile(garbled, []byte(secret), 0o600))
	_, err = handover.OpenKeyFile(garbled)
	require.ErrorIs(t, err, handover.ErrKeyFile)
	body := secret[strings.LastIndexByte(secret, '+')+1:]
	require.NotContains(t, err.Error(), strings.TrimSpace(body), "errors never show key material")
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// ExportTar streams the same files as Export.
func TestExportTar(t *testing.T) {
	ctx := context.Background()
	pool := ht.Pool(t)
	hq := ht.Signer(t, handover.DefaultOrigin(ht.Org))
	l := ht.Log(t, pool, hq)
	ht.Populate(t, l)
	var buf bytes.Buffer
	sum, err := handoverdb.ExportTar(ctx, pool, ht.Org, hq.PublicKey(), t.TempDir(), &buf)
	require.NoError(t, err)
	require.EqualValues(t, 22, sum.Entries)

	files := fstest.MapFS{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	require.Contains(t, files, handover.ExportEntries)
	require.Contains(t, files, handover.ExportHQKey)
	rep, err := audit.Verify(files, audit.Options{HQKey: hq.PublicKey().Vkey()})
	require.NoError(t, err)
	require.EqualValues(t, 22, rep.Entries)
}
