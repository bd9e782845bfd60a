package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
	"github.com/loopcard/loopcard/personalize/handover/handoverdb"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// export is an export held in memory, to tamper with.
type export map[string][]byte

func readExport(t *testing.T, dir string) export {
	t.Helper()
	out := export{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	require.NoError(t, err)
	return out
}

func exportLog(t *testing.T, l *handoverdb.Log) export {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "export")
	_, err := l.Export(context.Background(), dir)
	require.NoError(t, err)
	return readExport(t, dir)
}

func (e export) clone() export {
	out := export{}
	for k, v := range e {
		out[k] = bytes.Clone(v)
	}
	return out
}

func (e export) fs() fstest.MapFS {
	m := fstest.MapFS{}
	for k, v := range e {
		m[k] = &fstest.MapFile{Data: v, Mode: 0o644}
	}
	// Directories that are empty still exist in a real export.
	for _, d := range []string{handover.ExportCheckpoints, handover.ExportConsistency} {
		if _, ok := m[d]; !ok {
			m[d] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
		}
	}
	return m
}

func (e export) lines() [][]byte {
	b := e[handover.ExportEntries]
	return bytes.SplitAfter(b[:len(b)-1], []byte("\n"))
}

func (e export) setLines(ls [][]byte) {
	var b []byte
	for _, l := range ls {
		b = append(b, l...)
		if len(l) == 0 || l[len(l)-1] != '\n' {
			b = append(b, '\n')
		}
	}
	e[handover.ExportEntries] = b
}

func (e export) checkpointNames() []string {
	var out []string
	for k := range e {
		if strings.HasPrefix(k, handover.ExportCheckpoints+"/") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// fixture is the scenario's log, exported, with what tampering needs.
type fixture struct {
	hq     *handover.Signer
	log    *handoverdb.Log
	pool   *pgxpool.Pool
	stores map[string]*handover.Signer
	good   export
	latest []byte // the latest checkpoint, as an auditor keeps it
}

func newFixture(t *testing.T) *fixture {
	pool := ht.Pool(t)
	hq := ht.Signer(t, handover.DefaultOrigin(ht.Org))
	l := ht.Log(t, pool, hq)
	stores := ht.Populate(t, l)
	f := &fixture{hq: hq, log: l, pool: pool, stores: stores, good: exportLog(t, l)}
	names := f.good.checkpointNames()
	f.latest = f.good[names[len(names)-1]]
	return f
}

// shared holds two fixtures' exports (two logs, two HQ keys) for the
// tests that only tamper with exports: building a log costs seconds.
var shared struct {
	sync.Mutex
	fixtures []*fixture
}

// exportFixture returns the in-memory part of fixture i (0 or 1), built
// once per test binary; its database is gone (pool and log are nil).
func exportFixture(t *testing.T, i int) *fixture {
	shared.Lock()
	defer shared.Unlock()
	for len(shared.fixtures) <= i {
		f := newFixture(t)
		f.pool, f.log = nil, nil
		shared.fixtures = append(shared.fixtures, f)
	}
	return shared.fixtures[i]
}

func verify(t *testing.T, e export, opts audit.Options) (*audit.Report, *audit.Failure) {
	t.Helper()
	rep, err := audit.Verify(e.fs(), opts)
	if err == nil {
		require.True(t, rep.OK)
		require.Nil(t, rep.Failure)
		return rep, nil
	}
	var f *audit.Failure
	require.ErrorAs(t, err, &f)
	require.False(t, rep.OK)
	require.Equal(t, f, rep.Failure)
	require.NotEmpty(t, f.Check)
	require.NotEmpty(t, f.Message)
	return rep, f
}

func TestUntouchedExportVerifies(t *testing.T) {
	f := exportFixture(t, 0)
	rep, fail := verify(t, f.good, audit.Options{HQKey: f.hq.PublicKey().Vkey(), Since: f.latest})
	require.Nil(t, fail)
	require.EqualValues(t, 22, rep.Entries)
	require.Len(t, rep.Checked, 7, "every step reports what it checked: %v", rep.Checked)
	require.EqualValues(t, 22, rep.SinceSize)
	// An older checkpoint the auditor kept is extended too.
	names := f.good.checkpointNames()
	_, fail = verify(t, f.good, audit.Options{Since: f.good[names[3]]})
	require.Nil(t, fail)
}

// sealOf returns, for each entry, the index of the entry whose signature
// covers it: itself, or the seal after it.
func sealOf(t *testing.T, e export) []int64 {
	ls := e.lines()
	out := make([]int64, len(ls))
	var run []int
	for i, l := range ls {
		en, err := handover.ParseEntry(bytes.TrimSuffix(l, []byte("\n")))
		require.NoError(t, err)
		if en.Sig == "" {
			run = append(run, i)
			continue
		}
		out[i] = int64(i)
		for _, j := range run {
			out[j] = int64(i)
		}
		run = nil
	}
	return out
}

// Changing any byte of any entry fails at that entry (or at the seal that
// covers it).
func TestTamperEntryBytes(t *testing.T) {
	f := exportFixture(t, 0)
	sealed := sealOf(t, f.good)
	lines := f.good.lines()
	// Every byte of the shortest signed entry; a spread of bytes of every
	// other entry.
	full := map[int]bool{}
	for _, own := range []bool{true} {
		best := -1
		for i, line := range lines {
			if (sealed[i] == int64(i)) == own && (best < 0 || len(line) < len(lines[best])) {
				best = i
			}
		}
		full[best] = true
	}
	for i, line := range lines {
		n := len(line) - 1 // keep the newline; a separate case below
		positions := []int{0, n / 5, n / 2, 4 * n / 5, n - 1}
		if full[i] {
			positions = positions[:0]
			for p := range n {
				positions = append(positions, p)
			}
		}
		for _, p := range positions {
			for _, x := range []byte{0x01} {
				e := f.good.clone()
				ls := e.lines()
				ls[i][p] ^= x
				e.setLines(ls)
				_, fail := verify(t, e, audit.Options{})
				require.NotNil(t, fail, "entry %d byte %d ^ %#x verified", i, p, x)
				require.Contains(t, []int64{int64(i), sealed[i]}, fail.Index, "entry %d byte %d ^ %#x: %v", i, p, x, fail)
			}
		}
	}
	// Joining two lines, a missing final newline, an empty line.
	for _, mod := range []func([]byte) []byte{
		func(b []byte) []byte { return bytes.Replace(b, []byte("}\n{"), []byte("}{"), 1) },
		func(b []byte) []byte { return b[:len(b)-1] },
		func(b []byte) []byte { return append(b, '\n') },
		func(b []byte) []byte { return append([]byte("\n"), b...) },
	} {
		e := f.good.clone()
		e[handover.ExportEntries] = mod(e[handover.ExportEntries])
		_, fail := verify(t, e, audit.Options{})
		require.NotNil(t, fail)
		require.GreaterOrEqual(t, fail.Index, int64(0))
	}
}

// Changing any byte of a checkpoint breaks its signature.
func TestTamperCheckpointBytes(t *testing.T) {
	f := exportFixture(t, 0)
	for k, name := range f.good.checkpointNames() {
		n := len(f.good[name])
		positions := []int{0, n / 2, n - 2}
		if k == 2 {
			positions = positions[:0]
			for p := range n {
				positions = append(positions, p)
			}
		}
		for _, p := range positions {
			e := f.good.clone()
			e[name][p] ^= 0x01
			_, fail := verify(t, e, audit.Options{})
			require.NotNil(t, fail, "%s byte %d", name, p)
			require.Contains(t, []string{"checkpoint", "checkpoint-signature"}, fail.Check, "%s byte %d: %v", name, p, fail)
		}
	}
}

func TestTamperStructure(t *testing.T) {
	f := exportFixture(t, 0)
	other := exportFixture(t, 1) // another log of another HQ key, for foreign material
	sealed := sealOf(t, f.good)
	n := len(f.good.lines())
	type tamper struct {
		name  string
		mod   func(e export)
		opts  audit.Options
		check string // "" when any check may catch it
		index int64  // -2: do not compare
	}
	var cases []tamper
	for i := range n {
		cases = append(cases,
			tamper{name: fmt.Sprintf("drop entry %d", i), index: -2, mod: func(e export) {
				ls := e.lines()
				e.setLines(append(ls[:i:i], ls[i+1:]...))
			}},
			tamper{name: fmt.Sprintf("duplicate entry %d", i), index: -2, mod: func(e export) {
				ls := e.lines()
				out := append(append(ls[:i+1:i+1], ls[i]), ls[i+1:]...)
				e.setLines(out)
			}},
			tamper{name: fmt.Sprintf("insert a foreign entry at %d", i), index: int64(i), mod: func(e export) {
				ls := e.lines()
				foreign := other.good.lines()[i%len(other.good.lines())]
				e.setLines(append(append(ls[:i:i], foreign), ls[i:]...))
			}},
		)
		if i+1 < n {
			cases = append(cases, tamper{name: fmt.Sprintf("swap entries %d and %d", i, i+1), index: -2, mod: func(e export) {
				ls := e.lines()
				ls[i], ls[i+1] = ls[i+1], ls[i]
				e.setLines(ls)
			}})
		}
	}
	// Replace a signature by another signature of the same signer.
	replaced := 0
	for i := range n {
		ei := parse(t, f.good.lines()[i])
		for j := range n {
			ej := parse(t, f.good.lines()[j])
			if i == j || ei.Sig == "" || ej.Sig == "" || ei.Signer != ej.Signer {
				continue
			}
			cases = append(cases, tamper{name: fmt.Sprintf("signature of %d on %d", j, i), check: "signature", index: sealed[i], mod: func(e export) {
				ls := e.lines()
				ls[i] = bytes.Replace(ls[i], []byte(ei.Sig), []byte(ej.Sig), 1)
				e.setLines(ls)
			}})
			replaced++
			break
		}
	}
	require.Greater(t, replaced, 10)

	names := f.good.checkpointNames()
	latest := names[len(names)-1]
	cases = append(cases,
		tamper{name: "drop the latest checkpoint", check: "inclusion", index: -2, mod: func(e export) { delete(e, latest) }},
		tamper{name: "drop a middle checkpoint", check: "consistency", index: -1, mod: func(e export) { delete(e, names[4]) }},
		tamper{name: "drop a consistency proof", check: "consistency", index: -1, mod: func(e export) {
			for k := range e {
				if strings.HasPrefix(k, handover.ExportConsistency+"/") {
					delete(e, k)
					return
				}
			}
		}},
		tamper{name: "change a consistency proof", check: "consistency", index: -2, mod: func(e export) {
			for k := range e {
				if strings.HasPrefix(k, handover.ExportConsistency+"/") && len(e[k]) > 0 {
					e[k][3] ^= 1
				}
			}
		}},
		tamper{name: "checkpoint of another log", check: "checkpoint-signature", index: -1, mod: func(e export) {
			e[latest] = other.latest
		}},
		tamper{name: "HQ key replaced by another, all re-signed (pinned key)", check: "hq-key", index: -1,
			opts: audit.Options{HQKey: f.hq.PublicKey().Vkey()},
			mod: func(e export) {
				for k := range e {
					delete(e, k)
				}
				for k, v := range other.good {
					e[k] = v
				}
			}},
		tamper{name: "HQ key replaced, checkpoints not", check: "checkpoint-signature", index: -1, mod: func(e export) {
			e[handover.ExportHQKey] = other.good[handover.ExportHQKey]
		}},
		tamper{name: "store key list changed", check: "store-keys", index: -1, mod: func(e export) {
			e[handover.ExportStoreKeys] = other.good[handover.ExportStoreKeys]
		}},
		tamper{name: "store key dropped from the list", check: "store-keys", index: -1, mod: func(e export) {
			e[handover.ExportStoreKeys] = bytes.SplitAfter(e[handover.ExportStoreKeys], []byte("\n"))[0]
		}},
		tamper{name: "origin changed", check: "checkpoint", index: -1, mod: func(e export) {
			e[handover.ExportOrigin] = []byte("loopcard/handover/org-8\n")
		}},
		tamper{name: "entries missing", check: "entries", index: -1, mod: func(e export) { delete(e, handover.ExportEntries) }},
		tamper{name: "an entry of the other log's organizer key set", index: -2, mod: func(e export) {
			ls := e.lines()
			e.setLines(append(ls, other.good.lines()[0]))
		}},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := f.good.clone()
			tc.mod(e)
			_, fail := verify(t, e, tc.opts)
			require.NotNil(t, fail, "tampered export verified")
			if tc.check != "" {
				require.Equal(t, tc.check, fail.Check, "%v", fail)
			}
			if tc.index != -2 {
				require.Equal(t, tc.index, fail.Index, "%v", fail)
			}
			t.Log(fail)
		})
	}
}

func parse(t *testing.T, line []byte) handover.Entry {
	e, err := handover.ParseEntry(bytes.TrimSuffix(line, []byte("\n")))
	require.NoError(t, err)
	return e
}

// truncate makes e the export of the log as it was at checkpoint size n.
func truncate(t *testing.T, e export, n int) {
	ls := e.lines()
	e.setLines(ls[:n])
	for _, k := range e.checkpointNames() {
		var size int
		_, err := fmt.Sscanf(path.Base(k), "%d", &size)
		require.NoError(t, err)
		if size > n {
			delete(e, k)
		}
	}
	for k := range e {
		if strings.HasPrefix(k, handover.ExportConsistency+"/") && !strings.HasSuffix(k, "-"+handover.CheckpointName(int64(n))) {
			var a, b int
			_, err := fmt.Sscanf(path.Base(k), "%d-%d", &a, &b)
			require.NoError(t, err)
			if b > n {
				delete(e, k)
			}
		}
	}
}

// A rollback to an older checkpoint is consistent in itself; the auditor
// who kept the latest checkpoint sees it.
func TestTamperRollback(t *testing.T) {
	f := exportFixture(t, 0)
	e := f.good.clone()
	truncate(t, e, 19)
	e[handover.ExportStoreKeys] = f.good[handover.ExportStoreKeys]
	rep, fail := verify(t, e, audit.Options{})
	require.Nil(t, fail, "an older log on its own is a valid log")
	require.EqualValues(t, 19, rep.Entries)
	_, fail = verify(t, e, audit.Options{Since: f.latest})
	require.NotNil(t, fail)
	require.Equal(t, "rollback", fail.Check)
	require.EqualValues(t, 19, fail.Index)
}

// A fork: a second log with the same HQ key shares a prefix with the
// first and then differs. Each verifies alone; against a checkpoint of the
// other, or mixed with the other's checkpoints, it fails.
func TestTamperFork(t *testing.T) {
	f := exportFixture(t, 0)
	ctx := context.Background()
	pool := ht.Pool(t)
	fork := ht.Log(t, pool, f.hq)
	// Replay the first 16 entries append by append, then differ.
	ls := f.good.lines()
	prev := 0
	for _, name := range f.good.checkpointNames() {
		var size int
		_, err := fmt.Sscanf(path.Base(name), "%d", &size)
		require.NoError(t, err)
		if size > 16 {
			break
		}
		var batch []handover.Entry
		for _, l := range ls[prev:size] {
			batch = append(batch, parse(t, l))
		}
		_, err = fork.Append(ctx, batch...)
		require.NoError(t, err)
		prev = size
	}
	_, err := fork.HandOver(ctx, 2, "south", 6)
	require.NoError(t, err)
	forked := exportLog(t, fork)
	require.Equal(t, ls[:16], forked.lines()[:16])
	_, fail := verify(t, forked, audit.Options{})
	require.Nil(t, fail, "the fork alone verifies")

	_, fail = verify(t, forked, audit.Options{Since: f.latest})
	require.NotNil(t, fail)
	require.Equal(t, "rollback", fail.Check, "the fork is shorter than the checkpoint held")

	fn := forked.checkpointNames()
	_, fail = verify(t, f.good, audit.Options{Since: forked[fn[len(fn)-1]]})
	require.NotNil(t, fail)
	require.Equal(t, "fork", fail.Check)

	// The fork's latest checkpoint among the original's checkpoints.
	mixed := f.good.clone()
	mixed[fn[len(fn)-1]] = forked[fn[len(fn)-1]]
	_, fail = verify(t, mixed, audit.Options{})
	require.NotNil(t, fail)
	require.Equal(t, "consistency", fail.Check)
}

// Deleting a checkpoint row hides nothing: the entries are still all
// there and the checkpoints left still sign them.
func TestDatabaseCheckpointDeleted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	names := f.good.checkpointNames()
	_, err := f.pool.Exec(ctx, `ALTER TABLE handover_checkpoints DISABLE TRIGGER USER`)
	require.NoError(t, err)
	tag, err := f.pool.Exec(ctx, `DELETE FROM handover_checkpoints WHERE size = 9`)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	e := exportLog(t, f.log)
	require.Len(t, e.checkpointNames(), len(names)-1)
	_, fail := verify(t, e, audit.Options{Since: f.good[names[8]]})
	require.Nil(t, fail)
}

// An administrator changes the database behind the log's back (triggers
// off) and exports again: the auditor sees it.
func TestTamperDatabase(t *testing.T) {
	tests := []struct {
		name  string
		sql   []string
		since bool // caught only against the checkpoint the auditor kept
		check string
		index int64
	}{
		{"update a handover's count", []string{
			`UPDATE handover_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '"count":6', '"count":5'), 'UTF8') WHERE idx = 5`},
			false, "signature", 5},
		{"update a sealed sale", []string{
			`UPDATE handover_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '1-00003', '1-00011'), 'UTF8') WHERE idx = 11`},
			false, "seal", 14},
		{"delete a receipt", []string{`DELETE FROM handover_entries WHERE idx = 7`}, false, "", -2},
		{"delete the last entry", []string{`DELETE FROM handover_entries WHERE idx = 21`}, false, "", -2},
		{"insert a copy of an entry", []string{
			`INSERT INTO handover_entries (org_id, idx, entry) SELECT org_id, 22, entry FROM handover_entries WHERE idx = 3`},
			false, "duplicate", 22},
		{"renumber two entries", []string{
			`UPDATE handover_entries SET idx = idx + 1000 WHERE idx IN (4, 5)`,
			`UPDATE handover_entries SET idx = 1009 - idx WHERE idx >= 1000`},
			false, "", -2},
		{"update a checkpoint", []string{
			`UPDATE handover_checkpoints SET note = convert_to(replace(convert_from(note, 'UTF8'), E'\n16\n', E'\n17\n'), 'UTF8') WHERE size = 16`},
			false, "checkpoint-signature", -1},

		{"roll back the last append", []string{
			`DELETE FROM handover_entries WHERE idx >= 19`,
			`DELETE FROM handover_checkpoints WHERE size > 19`,
			`DELETE FROM handover_hashes WHERE sidx >= 37`,
			`UPDATE handover_logs SET size = 19`},
			true, "rollback", 19},
	}
	// One populated database, copied for each case.
	base := newFixture(t)
	template := base.pool.Config().ConnConfig.Database
	base.pool.Close() // a template database has no connections
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := *base
			f.pool = cloneDatabase(t, template, fmt.Sprintf("tamper%d", i))
			f.log = ht.Log(t, f.pool, base.hq)
			tx, err := f.pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx)                                                //nolint:errcheck
			_, err = tx.Exec(ctx, `SET LOCAL session_replication_role = replica`) // triggers off
			require.NoError(t, err)
			for _, q := range tc.sql {
				tag, err := tx.Exec(ctx, q)
				require.NoError(t, err, q)
				require.NotZero(t, tag.RowsAffected(), q)
			}
			require.NoError(t, tx.Commit(ctx))

			e := exportLog(t, f.log)
			opts := audit.Options{HQKey: f.hq.PublicKey().Vkey()}
			if tc.since {
				_, fail := verify(t, e, opts)
				require.Nil(t, fail, "a rolled-back log is consistent in itself")
				opts.Since = f.latest
			}
			_, fail := verify(t, e, opts)
			require.NotNil(t, fail, "tampered database verified")
			if tc.check != "" {
				require.Equal(t, tc.check, fail.Check, "%v", fail)
			}
			if tc.index != -2 {
				require.Equal(t, tc.index, fail.Index, "%v", fail)
			}
			t.Log(fail)
		})
	}
}

// cloneDatabase copies database template into a new database name, dropped
// when t ends, and returns a pool on it.
func cloneDatabase(t *testing.T, template, name string) *pgxpool.Pool {
	ctx := context.Background()
	c := pgtest.Cluster(t)
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	pool, err := pgxpool.New(ctx, c.URL(name))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}
