package terminal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/loopcard/loopcard/api/internal/fsync"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// ItemState is where a queued transaction stands.
type ItemState byte

// States of a queued transaction.
const (
	// Pending: written before the card's commit; outcome not known yet.
	Pending ItemState = 'I'
	// Committed: the card committed it; to be uploaded.
	Committed ItemState = 'C'
	// Void: the card did not commit it; never uploaded.
	Void ItemState = 'V'
	// Done: the ledger recorded it (accepted, duplicate or held).
	Done ItemState = 'D'
	// Rejected: the ledger refused it; kept and reported, not sent again.
	Rejected ItemState = 'R'
)

const recSeqFloor = 'S'

// Item is one queued transaction.
type Item struct {
	Tx     *terminaltx.Signed
	State  ItemState
	Reason string // ledger status or rejection reason
}

// Queue is the terminal's durable, append-only transaction log: one file
// of framed records (length, CRC-32C, type, data), each synced to disk
// before the call returns. A torn record at the end (a crash in the middle
// of a write) is cut off when the queue is opened; finished transactions
// are dropped by compaction when it is opened. It is safe for concurrent
// use.
type Queue struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	seq   int64 // highest terminal sequence number ever used
	items map[txid.ID]*Item
	order []txid.ID
}

// ErrQueueCorrupt is returned by OpenQueue for a record that does not
// verify before the end of the file.
var ErrQueueCorrupt = errors.New("terminal: queue file is corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenQueue opens (or creates) the queue file at path, recovers its
// state, and compacts it.
func OpenQueue(path string) (*Queue, error) {
	q := &Queue{path: path, items: map[txid.ID]*Item{}}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("terminal: open queue: %w", err)
	}
	good, err := q.load(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	_ = good
	if err := q.compact(); err != nil {
		return nil, err
	}
	return q, nil
}

// load replays the records of f; it returns the offset after the last good
// record.
func (q *Queue) load(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("terminal: queue: %w", err)
	}
	r := bufio.NewReader(f)
	var off int64
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return off, nil // end, or a torn header
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		if n == 0 || n > 1<<16 {
			if off+8 >= st.Size() {
				return off, nil
			}
			return off, fmt.Errorf("%w: record length %d at offset %d", ErrQueueCorrupt, n, off)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return off, nil // torn tail
		}
		if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
			if off+8+int64(n) >= st.Size() {
				return off, nil // torn tail
			}
			return off, fmt.Errorf("%w: checksum at offset %d", ErrQueueCorrupt, off)
		}
		if err := q.apply(body); err != nil {
			return off, err
		}
		off += 8 + int64(n)
	}
}

func (q *Queue) apply(body []byte) error {
	typ, data := ItemState(body[0]), body[1:]
	switch typ {
	case Pending:
		s, err := terminaltx.Parse(data)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrQueueCorrupt, err)
		}
		if _, ok := q.items[s.ID]; !ok {
			q.order = append(q.order, s.ID)
		}
		q.items[s.ID] = &Item{Tx: s, State: Pending}
		q.seq = max(q.seq, s.TerminalSeq)
	case Committed, Void, Done, Rejected:
		if len(data) < 16 {
			return fmt.Errorf("%w: short record", ErrQueueCorrupt)
		}
		var id txid.ID
		copy(id[:], data)
		it, ok := q.items[id]
		if !ok {
			return nil // finished earlier and compacted away
		}
		it.State, it.Reason = typ, string(data[16:])
	case recSeqFloor:
		if len(data) != 8 {
			return fmt.Errorf("%w: short record", ErrQueueCorrupt)
		}
		q.seq = max(q.seq, int64(binary.BigEndian.Uint64(data)))
	default:
		return fmt.Errorf("%w: record type %q", ErrQueueCorrupt, typ)
	}
	return nil
}

func frame(typ byte, data []byte) []byte {
	body := append([]byte{typ}, data...)
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(body)))
	binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(body, castagnoli))
	return append(hdr[:], body...)
}

// compact rewrites the file with what is still live: the sequence floor,
// and every transaction not yet done, then reopens it for appending.
func (q *Queue) compact() error {
	var buf bytes.Buffer
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], uint64(q.seq))
	buf.Write(frame(recSeqFloor, s[:]))
	var order []txid.ID
	for _, id := range q.order {
		it := q.items[id]
		if it.State == Done || it.State == Void {
			delete(q.items, id)
			continue
		}
		order = append(order, id)
		buf.Write(frame(byte(Pending), it.Tx.Bytes()))
		if it.State != Pending {
			buf.Write(frame(byte(it.State), append(id[:], it.Reason...)))
		}
	}
	q.order = order
	tmp := q.path + ".tmp"
	if err := writeSynced(tmp, buf.Bytes()); err != nil {
		return fmt.Errorf("terminal: compact queue: %w", err)
	}
	if err := os.Rename(tmp, q.path); err != nil {
		return fmt.Errorf("terminal: compact queue: %w", err)
	}
	if err := fsync.Dir(filepath.Dir(q.path)); err != nil {
		return fmt.Errorf("terminal: compact queue: %w", err)
	}
	f, err := os.OpenFile(q.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("terminal: open queue: %w", err)
	}
	q.f = f
	return nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Close closes the file.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f == nil {
		return nil
	}
	err := q.f.Close()
	q.f = nil
	return err
}

// Compact drops finished transactions from the file.
func (q *Queue) Compact() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f != nil {
		q.f.Close()
		q.f = nil
	}
	return q.compact()
}

func (q *Queue) append(recs ...[]byte) error {
	if q.f == nil {
		return errors.New("terminal: queue is closed")
	}
	if _, err := q.f.Write(bytes.Join(recs, nil)); err != nil {
		return fmt.Errorf("terminal: queue write: %w", err)
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("terminal: queue sync: %w", err)
	}
	return nil
}

// NextSeq reserves the next terminal sequence number. It is made durable
// by the intent that uses it.
func (q *Queue) NextSeq() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	return q.seq
}

// Intent records a signed transaction before the card commits it.
func (q *Queue) Intent(s *terminaltx.Signed) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.items[s.ID]; ok {
		return fmt.Errorf("terminal: transaction %s queued twice", s.ID)
	}
	if err := q.append(frame(byte(Pending), s.Bytes())); err != nil {
		return err
	}
	q.items[s.ID] = &Item{Tx: s, State: Pending}
	q.order = append(q.order, s.ID)
	q.seq = max(q.seq, s.TerminalSeq)
	return nil
}

// Mark records the new state of transactions (Committed, Void, Done or
// Rejected) in one synced write.
func (q *Queue) Mark(state ItemState, reason map[txid.ID]string, ids ...txid.ID) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var recs [][]byte
	for _, id := range ids {
		if _, ok := q.items[id]; !ok {
			return fmt.Errorf("terminal: transaction %s is not queued", id)
		}
		recs = append(recs, frame(byte(state), append(id[:], reason[id]...)))
	}
	if len(recs) == 0 {
		return nil
	}
	if err := q.append(recs...); err != nil {
		return err
	}
	for _, id := range ids {
		it := q.items[id]
		it.State, it.Reason = state, reason[id]
	}
	return nil
}

// PendingFor returns the pending intents of card uid.
func (q *Queue) PendingFor(uid []byte) []*terminaltx.Signed {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*terminaltx.Signed
	for _, id := range q.order {
		if it := q.items[id]; it.State == Pending && bytes.Equal(it.Tx.Card, uid) {
			out = append(out, it.Tx)
		}
	}
	return out
}

// Unsent returns up to max committed transactions not yet done, oldest
// first.
func (q *Queue) Unsent(max int) []*terminaltx.Signed {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*terminaltx.Signed
	for _, id := range q.order {
		if len(out) == max {
			break
		}
		if it := q.items[id]; it.State == Committed {
			out = append(out, it.Tx)
		}
	}
	return out
}

// Counts is how many transactions the queue holds in each state (Done and
// Void only since the last compaction).
type Counts struct {
	Pending, Committed, Void, Done, Rejected int
}

// Counts counts the queue's transactions by state.
func (q *Queue) Counts() Counts {
	q.mu.Lock()
	defer q.mu.Unlock()
	var c Counts
	for _, it := range q.items {
		switch it.State {
		case Pending:
			c.Pending++
		case Committed:
			c.Committed++
		case Void:
			c.Void++
		case Done:
			c.Done++
		case Rejected:
			c.Rejected++
		}
	}
	return c
}

// Items returns a copy of every queued item, in queue order.
func (q *Queue) Items() []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Item, 0, len(q.order))
	for _, id := range q.order {
		out = append(out, *q.items[id])
	}
	return out
}
