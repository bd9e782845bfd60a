package audit_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
)

// writeSyntheticExport writes an export of about n entries straight to
// dir, made with the same signers, seals, tree and checkpoints as Log and
// Export, without the database: stores enrolled, batches of 99,999 cards
// issued, handed over and received, and every card sold in sealed appends
// of sealEvery sales, one checkpoint per append.
func writeSyntheticExport(tb testing.TB, dir string, n, sealEvery int) *handover.Signer {
	hq := ht.Signer(tb, handover.DefaultOrigin(ht.Org))
	stores := []string{"north", "south", "east", "west"}
	keys := map[string]*handover.Signer{}
	for _, s := range stores {
		keys[s] = ht.StoreSigner(tb, s)
	}
	for _, d := range []string{"keys", handover.ExportCheckpoints, handover.ExportConsistency} {
		require.NoError(tb, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(tb, os.WriteFile(filepath.Join(dir, handover.ExportOrigin), []byte(handover.DefaultOrigin(ht.Org)+"\n"), 0o644))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, handover.ExportHQKey), []byte(hq.PublicKey().Vkey()+"\n"), 0o644))
	var sk strings.Builder
	for _, s := range stores {
		fmt.Fprintf(&sk, "%s %s\n", s, keys[s].PublicKey().Vkey())
	}
	require.NoError(tb, os.WriteFile(filepath.Join(dir, handover.ExportStoreKeys), []byte(sk.String()), 0o644))

	f, err := os.Create(filepath.Join(dir, handover.ExportEntries))
	require.NoError(tb, err)
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var tree handover.MemoryTree
	lastCP := int64(0)
	at := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	appendEntries := func(es ...handover.Entry) {
		for _, e := range es {
			b, err := e.Marshal()
			require.NoError(tb, err)
			w.Write(b)
			w.WriteByte('\n')
			require.NoError(tb, tree.AppendLeaf(tlog.RecordHash(b)))
		}
		size := tree.Size()
		root, err := tree.Root(size)
		require.NoError(tb, err)
		msg, err := handover.SignCheckpoint(handover.Checkpoint{Origin: handover.DefaultOrigin(ht.Org), Size: size, Root: root}, hq)
		require.NoError(tb, err)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, handover.ExportCheckpoints, handover.CheckpointName(size)), msg, 0o644))
		if lastCP > 0 {
			p, err := tlog.ProveTree(size, lastCP, &tree)
			require.NoError(tb, err)
			require.NoError(tb, os.WriteFile(filepath.Join(dir, handover.ExportConsistency, handover.ConsistencyName(lastCP, size)), handover.FormatProof(p), 0o644))
		}
		lastCP = size
	}
	hqEntry := func(e handover.Entry) handover.Entry {
		e.V, e.Org, e.At = handover.Version, ht.Org, at
		require.NoError(tb, hq.SignEntry(&e))
		return e
	}
	for _, s := range stores {
		appendEntries(hqEntry(handover.Entry{Type: handover.TypeKeyEnrolled, Store: s, Key: keys[s].PublicKey().Vkey()}))
	}
	const perBatch = 99999
	for no := int64(1); tree.Size() < int64(n); no++ {
		cards := make([][]byte, perBatch)
		for i := range cards {
			cards[i] = []byte(ht.Card(tb, no, i+1).String())
		}
		appendEntries(hqEntry(handover.Entry{Type: handover.TypeBatchIssued, Batch: no, Event: "fest", Count: handover.N(perBatch),
			Root: handover.MerkleRoot(cards).String()}))
		store := stores[int(no)%len(stores)]
		appendEntries(hqEntry(handover.Entry{Type: handover.TypeHandedOver, Batch: no, Store: store, Count: handover.N(perBatch)}))
		r, err := handover.NewReceipt(keys[store], ht.Org, no, store, perBatch, at)
		require.NoError(tb, err)
		appendEntries(r)
		for slot := 1; slot <= perBatch && tree.Size() < int64(n); slot += sealEvery {
			var evs []handover.CardEvent
			for s := slot; s < slot+sealEvery && s <= perBatch; s++ {
				evs = append(evs, handover.CardEvent{Type: handover.TypeCardSold, Card: ht.Card(tb, no, s), Store: store})
			}
			es, err := handover.SignCardEvents(keys[store], ht.Org, at, evs)
			require.NoError(tb, err)
			appendEntries(es...)
		}
	}
	require.NoError(tb, w.Flush())
	return hq
}

// BenchmarkVerify1M verifies an export of one million entries (sales
// sealed 1,000 per append, a checkpoint per append). Run with
// -bench Verify1M -benchtime 1x; the goal is under 10 s on 2 cores.
func BenchmarkVerify1M(b *testing.B) {
	dir := b.TempDir()
	start := time.Now()
	hq := writeSyntheticExport(b, dir, 1_000_000, 1000)
	b.Logf("export of 1M entries written in %v", time.Since(start).Round(time.Millisecond))
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		rep, err := audit.Verify(os.DirFS(dir), audit.Options{HQKey: hq.PublicKey().Vkey()})
		require.NoError(b, err)
		require.GreaterOrEqual(b, rep.Entries, int64(1_000_000))
		b.ReportMetric(float64(rep.Entries), "entries")
		b.ReportMetric(float64(rep.Signatures), "signatures")
		b.ReportMetric(float64(rep.Checkpoints), "checkpoints")
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
	// The CPU time tells what the machine's other load hides.
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/verify")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The synthetic export is a valid export: the same generator, small.
func TestSyntheticExportVerifies(t *testing.T) {
	dir := t.TempDir()
	hq := writeSyntheticExport(t, dir, 3000, 100)
	rep, err := audit.Verify(os.DirFS(dir), audit.Options{HQKey: hq.PublicKey().Vkey()})
	require.NoError(t, err)
	require.GreaterOrEqual(t, rep.Entries, int64(3000))
	require.EqualValues(t, 3000, rep.Sealed)
	require.Len(t, rep.Batches, 1)
	require.EqualValues(t, 3000, rep.Batches[0].Sold)
}
