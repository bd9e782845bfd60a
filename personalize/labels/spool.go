package labels

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/loopcard/loopcard/personalize/qrpin"
)

// Spool is an append-only label CSV that a station writes, and syncs to
// disk, before it records a card as finished: after a crash the labels of
// every recorded card are still there. A card relabelled after a crash
// appears twice; ReadCSV keeps the last row.
type Spool struct {
	mu        sync.Mutex
	f         *os.File
	publicURL string
}

// OpenSpool opens or creates the spool at path with mode 0600 and returns
// it with the labels already in it.
func OpenSpool(path, publicURL string) (*Spool, []Label, error) {
	if err := qrpin.CheckPublicURL(publicURL); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return nil, nil, fmt.Errorf("labels: %w", err)
	}
	if err := f.Chmod(FileMode); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("labels: %w", err)
	}
	// A crash in the middle of an append leaves a line without its end; that
	// card was not recorded, so the partial line is dropped.
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("labels: %w", err)
	}
	if n := bytes.LastIndexByte(data, '\n') + 1; n < len(data) {
		if err := f.Truncate(int64(n)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("labels: %w", err)
		}
		data = data[:n]
	}
	ls, err := ReadCSV(bytes.NewReader(data), publicURL)
	clear(data)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("labels: spool %s: %w", path, err)
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("labels: %w", err)
	}
	s := &Spool{f: f, publicURL: publicURL}
	if end == 0 {
		if err := s.write(csvHeader); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return s, ls, nil
}

// Append writes the label and syncs the file.
func (s *Spool) Append(l Label) error {
	if l.PIN.Reveal() == "" {
		return fmt.Errorf("labels: card %s has no PIN", l.Number)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(csvRow(l, s.publicURL))
}

func (s *Spool) write(row []string) error {
	cw := csv.NewWriter(s.f)
	if err := cw.Write(row); err != nil {
		return fmt.Errorf("labels: spool: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("labels: spool: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("labels: spool: %w", err)
	}
	return nil
}

// Labels rereads the spool: every label, the last one per card number,
// sorted by card number.
func (s *Spool) Labels() ([]Label, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	defer s.f.Seek(0, io.SeekEnd)
	return ReadCSV(s.f, s.publicURL)
}

// Close closes the spool file.
func (s *Spool) Close() error { return s.f.Close() }
