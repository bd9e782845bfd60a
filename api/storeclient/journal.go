package storeclient

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loopcard/loopcard/api/internal/fsync"
)

// Journal operations, one JSON line each, synced before the client acts
// on them.
const (
	opRequest  = "request"  // a money request, before it is sent
	opAnswered = "answered" // the API recorded it (and its load)
	opDone     = "done"     // its load is on the card and confirmed
	opRefused  = "refused"  // the API refused it: nothing moved
)

type entry struct {
	Op      string   `json:"op"`
	Request *Request `json:"request,omitempty"`
	Key     string   `json:"key,omitempty"`
	Load    string   `json:"load,omitempty"`
	ID      string   `json:"id,omitempty"`
	// Amount is the load's amount when the answer fixed it (a replacement).
	Amount int64 `json:"amount,omitempty"`
}

// journal is the append-only file of money requests. On open it is
// rewritten with the open requests only.
type journal struct {
	path  string
	f     *os.File
	reqs  map[string]*Request
	order []string
}

func openJournal(path string) (*journal, error) {
	j := &journal{path: path, reqs: map[string]*Request{}}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("storeclient: journal: %w", err)
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			if i == len(lines)-1 {
				break // a line torn by a crash: it was never acted on
			}
			return nil, fmt.Errorf("storeclient: journal %s: line %d does not parse", path, i+1)
		}
		j.apply(e)
	}
	// Keep only the open requests.
	var buf bytes.Buffer
	for _, r := range j.open() {
		line, err := json.Marshal(entry{Op: opRequest, Request: &r})
		if err != nil {
			return nil, err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("storeclient: journal: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storeclient: journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("storeclient: journal: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		return nil, fmt.Errorf("storeclient: journal: %w", err)
	}
	if err := fsync.Dir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("storeclient: journal: %w", err)
	}
	j.f = f
	return j, nil
}

func (j *journal) apply(e entry) {
	switch e.Op {
	case opRequest:
		if e.Request != nil {
			r := *e.Request
			if _, ok := j.reqs[r.Key]; !ok {
				j.order = append(j.order, r.Key)
			}
			j.reqs[r.Key] = &r
		}
	case opAnswered:
		if r := j.reqs[e.Key]; r != nil {
			r.Answered, r.Load = true, e.Load
			if e.Amount > 0 {
				r.Amount = e.Amount
			}
		}
	case opDone, opRefused:
		delete(j.reqs, e.Key)
	}
}

// append writes e and syncs it to disk, then applies it.
func (j *journal) append(e entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(j.f)
	w.Write(line)
	w.WriteByte('\n')
	if err := w.Flush(); err != nil {
		return fmt.Errorf("storeclient: journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("storeclient: journal: %w", err)
	}
	j.apply(e)
	return nil
}

// open returns the open requests, oldest first.
func (j *journal) open() []Request {
	var out []Request
	for _, k := range j.order {
		if r, ok := j.reqs[k]; ok {
			out = append(out, *r)
		}
	}
	return out
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
