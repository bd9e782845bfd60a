package handover

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Names in an export directory; docs/audit-export.md describes them.
const (
	ExportOrigin      = "origin"
	ExportHQKey       = "keys/hq.vkey"
	ExportStoreKeys   = "keys/stores.txt"
	ExportEntries     = "entries.jsonl"
	ExportCheckpoints = "checkpoints"
	ExportConsistency = "proofs/consistency"
)

// CheckpointName is the file name of the checkpoint of a tree of size n.
func CheckpointName(n int64) string { return fmt.Sprintf("%012d", n) }

// ConsistencyName is the file name of the proof that the tree of size
// from is a prefix of the tree of size to.
func ConsistencyName(from, to int64) string { return CheckpointName(from) + "-" + CheckpointName(to) }

// WriteTar writes the regular files under dir to w as a tar stream with
// paths relative to dir, in lexical order.
func WriteTar(w io.Writer, dir string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("handover: tar: %w", err)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, p := range names {
		if err := addTarFile(tw, dir, p); err != nil {
			return fmt.Errorf("handover: tar: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("handover: tar: %w", err)
	}
	return nil
}

func addTarFile(tw *tar.Writer, dir, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: st.Size(), ModTime: st.ModTime(), Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
