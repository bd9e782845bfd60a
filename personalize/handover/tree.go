package handover

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// MemoryTree is an RFC 6962 tree held in memory as tlog stored hashes. It
// hashes records as tlog does (RFC 6962 leaves) and answers tlog's
// HashReader. It is not safe for concurrent use.
type MemoryTree struct {
	blocks [][]tlog.Hash // stored hashes in blocks of treeBlock
	stored int64
	n      int64
}

// treeBlock is the number of stored hashes per block: growing by blocks
// never copies the hashes already stored.
const treeBlock = 1 << 16

// Size is the number of records appended.
func (t *MemoryTree) Size() int64 { return t.n }

// ReadHashes implements tlog.HashReader.
func (t *MemoryTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= t.stored {
			return nil, fmt.Errorf("handover: stored hash %d not in a tree of %d records", x, t.n)
		}
		out[i] = t.blocks[x/treeBlock][x%treeBlock]
	}
	return out, nil
}

// AppendLeaf adds a record by its leaf hash (tlog.RecordHash).
func (t *MemoryTree) AppendLeaf(h tlog.Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(t.n, h, t)
	if err != nil {
		return err
	}
	for _, x := range hs {
		if t.stored%treeBlock == 0 {
			// The first block grows as slices do (small trees stay small);
			// the others are allocated whole.
			n := treeBlock
			if t.stored == 0 {
				n = 64
			}
			t.blocks = append(t.blocks, make([]tlog.Hash, 0, n))
		}
		last := len(t.blocks) - 1
		t.blocks[last] = append(t.blocks[last], x)
		t.stored++
	}
	t.n++
	return nil
}

// Root returns the tree hash of the first n records.
func (t *MemoryTree) Root(n int64) (tlog.Hash, error) {
	if n > t.n {
		return tlog.Hash{}, fmt.Errorf("handover: tree of %d records has no head at %d", t.n, n)
	}
	return tlog.TreeHash(n, t)
}

// MerkleRoot returns the RFC 6962 Merkle tree hash of records, such as the
// card numbers of a batch in slot order.
func MerkleRoot(records [][]byte) tlog.Hash {
	var t MemoryTree
	for _, r := range records {
		if err := t.AppendLeaf(tlog.RecordHash(r)); err != nil {
			panic(err) // a memory tree always has its own hashes
		}
	}
	h, err := t.Root(t.n)
	if err != nil {
		panic(err)
	}
	return h
}

// Checkpoint is a tree head in the C2SP tlog-checkpoint format: origin,
// size and root hash, one per line.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// String formats the checkpoint body (the text of the signed note).
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ErrCheckpoint: a checkpoint that is malformed or not signed by the
// expected key.
var ErrCheckpoint = errors.New("bad checkpoint")

// ParseCheckpoint parses a checkpoint body. It allows the extension lines
// of the C2SP format after the hash and ignores them.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and hash lines", ErrCheckpoint)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	sizeText := strings.TrimSuffix(lines[1], "\n")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if origin == "" || err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("%w: bad origin or size", ErrCheckpoint)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(raw) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash", ErrCheckpoint)
	}
	c := Checkpoint{Origin: origin, Size: size}
	copy(c.Root[:], raw)
	return c, nil
}

// OpenCheckpoint verifies a signed checkpoint note with hq and parses it.
// Errors wrap ErrCheckpoint.
func OpenCheckpoint(msg []byte, hq PublicKey) (Checkpoint, error) {
	v, err := note.NewVerifier(hq.Vkey())
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: signature: %w", ErrCheckpoint, err)
	}
	// note.Open decodes signatures leniently (padding bits): insist on
	// the one spelling, so that a checkpoint has one byte form.
	sigs := strings.TrimPrefix(string(msg[len(n.Text):]), "\n")
	for _, line := range strings.Split(strings.TrimSuffix(sigs, "\n"), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return Checkpoint{}, fmt.Errorf("%w: bad signature line", ErrCheckpoint)
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(line[i+1:]); err != nil {
			return Checkpoint{}, fmt.Errorf("%w: signature not in canonical base64", ErrCheckpoint)
		}
	}
	return ParseCheckpoint(n.Text)
}

// SignCheckpoint makes the signed note of c.
func SignCheckpoint(c Checkpoint, s *Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.String()}, s)
}

// FormatProof writes a tlog proof one base64 hash per line.
func FormatProof(p []tlog.Hash) []byte {
	var b bytes.Buffer
	for _, h := range p {
		b.WriteString(h.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseProof reads what FormatProof wrote.
func ParseProof(b []byte) ([]tlog.Hash, error) {
	var out []tlog.Hash
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		h, err := tlog.ParseHash(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("proof: %w", err)
		}
		out = append(out, h)
	}
	return out, sc.Err()
}
