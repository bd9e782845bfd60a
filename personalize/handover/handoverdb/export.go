package handoverdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/loopcard/loopcard/personalize/handover"
	"golang.org/x/mod/sumdb/tlog"
)

// ExportSummary says what Export wrote.
type ExportSummary struct {
	Dir         string `json:"dir"`
	Entries     int64  `json:"entries"`
	Checkpoints int    `json:"checkpoints"`
	Proofs      int    `json:"proofs"`
	StoreKeys   int    `json:"store_keys"`
}

// Errors of Export.
var (
	// ErrExportDir: the export directory exists and is not empty.
	ErrExportDir = errors.New("export directory is not empty")
	// ErrNoLog: the organizer has no handover log yet.
	ErrNoLog = errors.New("no handover log")
)

// Export writes organizer org's log to the new or empty directory dir, as
// docs/audit-export.md describes: the entries exactly as stored, every
// signed checkpoint, the consistency proof between each checkpoint and
// the next (computed from the entries), HQ's verifier key hq and the store
// keys enrolled in the log. Export checks nothing: a database that was
// tampered with is exported as it is, and the auditor's verification
// finds it. Errors wrap ErrExportDir or ErrNoLog.
func Export(ctx context.Context, pool *pgxpool.Pool, org int64, hq handover.PublicKey, dir string) (ExportSummary, error) {
	sum := ExportSummary{Dir: dir}
	var origin string
	err := pool.QueryRow(ctx, `SELECT origin FROM handover_logs WHERE org_id = $1`, org).Scan(&origin)
	if errors.Is(err, pgx.ErrNoRows) {
		return sum, fmt.Errorf("%w: organizer %d", ErrNoLog, org)
	}
	if err != nil {
		return sum, fmt.Errorf("handover: export: log of organizer %d: %w", org, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	}
	if ents, err := os.ReadDir(dir); err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	} else if len(ents) > 0 {
		return sum, fmt.Errorf("%w: %s", ErrExportDir, dir)
	}
	for _, d := range []string{"keys", handover.ExportCheckpoints, handover.ExportConsistency} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return sum, fmt.Errorf("handover: export: %w", err)
		}
	}
	write := func(name string, data []byte) error {
		return os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	if err := write(handover.ExportOrigin, []byte(origin+"\n")); err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	}
	if err := write(handover.ExportHQKey, []byte(hq.Vkey()+"\n")); err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	}

	// Entries, hashed as they are written.
	f, err := os.Create(filepath.Join(dir, handover.ExportEntries))
	if err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var tree handover.MemoryTree
	rows, err := pool.Query(ctx, `SELECT entry FROM handover_entries WHERE org_id = $1 ORDER BY idx`, org)
	if err != nil {
		return sum, fmt.Errorf("handover: export entries: %w", err)
	}
	var entry []byte
	for rows.Next() {
		if err := rows.Scan(&entry); err != nil {
			rows.Close()
			return sum, fmt.Errorf("handover: export entries: %w", err)
		}
		bw.Write(entry)
		bw.WriteByte('\n')
		if err := tree.AppendLeaf(tlog.RecordHash(entry)); err != nil {
			rows.Close()
			return sum, fmt.Errorf("handover: export: %w", err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sum, fmt.Errorf("handover: export entries: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	}
	if err := f.Close(); err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	}
	sum.Entries = tree.Size()

	// Checkpoints and consistency proofs between neighbours.
	rows, err = pool.Query(ctx, `SELECT size, note FROM handover_checkpoints WHERE org_id = $1 ORDER BY size`, org)
	if err != nil {
		return sum, fmt.Errorf("handover: export checkpoints: %w", err)
	}
	var sizes []int64
	for rows.Next() {
		var n int64
		var msg []byte
		if err := rows.Scan(&n, &msg); err != nil {
			rows.Close()
			return sum, fmt.Errorf("handover: export checkpoints: %w", err)
		}
		if err := write(filepath.Join(handover.ExportCheckpoints, handover.CheckpointName(n)), msg); err != nil {
			rows.Close()
			return sum, fmt.Errorf("handover: export: %w", err)
		}
		sizes = append(sizes, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sum, fmt.Errorf("handover: export checkpoints: %w", err)
	}
	sum.Checkpoints = len(sizes)
	for i := 1; i < len(sizes); i++ {
		from, to := sizes[i-1], sizes[i]
		if to > tree.Size() {
			break // entries are missing; the auditor will say so
		}
		p, err := tlog.ProveTree(to, from, &tree)
		if err != nil {
			return sum, fmt.Errorf("handover: export: consistency %d-%d: %w", from, to, err)
		}
		if err := write(filepath.Join(handover.ExportConsistency, handover.ConsistencyName(from, to)), handover.FormatProof(p)); err != nil {
			return sum, fmt.Errorf("handover: export: %w", err)
		}
		sum.Proofs++
	}

	// Store keys, for people: the log's key_enrolled entries are the record.
	rows, err = pool.Query(ctx, `SELECT store_id, vkey FROM handover_store_keys WHERE org_id = $1 ORDER BY idx`, org)
	if err != nil {
		return sum, fmt.Errorf("handover: export keys: %w", err)
	}
	var keys strings.Builder
	for rows.Next() {
		var store, vkey string
		if err := rows.Scan(&store, &vkey); err != nil {
			rows.Close()
			return sum, fmt.Errorf("handover: export keys: %w", err)
		}
		fmt.Fprintf(&keys, "%s %s\n", store, vkey)
		sum.StoreKeys++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sum, fmt.Errorf("handover: export keys: %w", err)
	}
	if err := write(handover.ExportStoreKeys, []byte(keys.String())); err != nil {
		return sum, fmt.Errorf("handover: export: %w", err)
	}
	return sum, nil
}

// Export writes the log to dir; see the function Export.
func (l *Log) Export(ctx context.Context, dir string) (ExportSummary, error) {
	return Export(ctx, l.pool, l.cfg.Org, l.cfg.HQ.PublicKey(), dir)
}

// ExportTar writes the same export as Export, as an uncompressed tar
// stream of the directory's files (for serving over HTTPS). It uses a
// temporary directory under tmpDir ("" for the system's), removed after.
func ExportTar(ctx context.Context, pool *pgxpool.Pool, org int64, hq handover.PublicKey, tmpDir string, w io.Writer) (ExportSummary, error) {
	d, err := os.MkdirTemp(tmpDir, "loopcard-export-")
	if err != nil {
		return ExportSummary{}, fmt.Errorf("handover: export: %w", err)
	}
	defer os.RemoveAll(d)
	sum, err := Export(ctx, pool, org, hq, d)
	if err != nil {
		return sum, err
	}
	sum.Dir = ""
	return sum, handover.WriteTar(w, d)
}
