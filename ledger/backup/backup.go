// Package backup writes encrypted dumps of the Loopcard database and
// restores them.
//
// A backup is a pg_dump archive (custom format) encrypted as a stream: a
// fresh 256-bit file key encrypts 64 KiB chunks with AES-256-GCM (the STREAM
// construction: the nonce counts chunks and marks the last one, so chunks
// cannot be reordered, dropped or truncated unnoticed), and the file key
// itself is sealed in an envelope by the HSM's data-kek. The file is
//
//	"loopcard-backup-v1\n"
//	u32 length, JSON header (created, database, envelope of the file key)
//	chunks: u32 length, GCM ciphertext
//
// Without the HSM holding the data-kek version the header names, a backup
// cannot be read.
package backup

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loopcard/loopcard/keys"
)

const magic = "loopcard-backup-v1\n"

const chunkSize = 64 << 10

// Errors of Restore.
var (
	ErrFormat   = errors.New("backup: not a loopcard backup, or damaged")
	ErrTampered = errors.New("backup: data fails authentication (tampered, truncated or wrong key)")
)

// Sealer is the HSM's envelope encryption (package keys).
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) (*keys.Envelope, error)
	Unseal(ctx context.Context, env *keys.Envelope, aad []byte) ([]byte, error)
}

type header struct {
	Created  time.Time      `json:"created"`
	Database string         `json:"database"`
	Key      *keys.Envelope `json:"key"`
}

// Info describes a written backup.
type Info struct {
	Created time.Time
	Bytes   int64 // size of the dump before encryption
	KEK     string
}

// Write dumps the database at url with pg_dump and writes the encrypted
// backup to w.
func Write(ctx context.Context, url string, s Sealer, w io.Writer) (Info, error) {
	bin, err := pgBin("pg_dump")
	if err != nil {
		return Info{}, err
	}
	fileKey := make([]byte, 32)
	if _, err := rand.Read(fileKey); err != nil {
		return Info{}, err
	}
	defer clear(fileKey)
	env, err := s.Seal(ctx, fileKey, []byte(magic))
	if err != nil {
		return Info{}, fmt.Errorf("backup: seal file key: %w", err)
	}
	h := header{Created: time.Now().UTC(), Database: dbName(url), Key: env}
	hb, err := json.Marshal(h)
	if err != nil {
		return Info{}, err
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(magic)
	writeFrame(bw, hb)

	cmd := exec.CommandContext(ctx, bin, "--format=custom", "--no-owner", "--no-privileges", "--dbname", url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Info{}, err
	}
	if err := cmd.Start(); err != nil {
		return Info{}, fmt.Errorf("backup: pg_dump: %w", err)
	}
	n, encErr := encrypt(fileKey, out, bw, hb)
	if encErr != nil {
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if encErr != nil {
		return Info{}, fmt.Errorf("backup: %w", encErr)
	}
	if waitErr != nil {
		return Info{}, fmt.Errorf("backup: pg_dump: %w: %s", waitErr, lastLine(stderr.String()))
	}
	if err := bw.Flush(); err != nil {
		return Info{}, fmt.Errorf("backup: %w", err)
	}
	return Info{Created: h.Created, Bytes: n, KEK: env.KEK}, nil
}

// Restore decrypts a backup from r and restores it into the (empty)
// database at url with pg_restore, in one transaction: a backup that fails
// authentication anywhere restores nothing.
func Restore(ctx context.Context, r io.Reader, s Sealer, url string) error {
	bin, err := pgBin("pg_restore")
	if err != nil {
		return err
	}
	br := bufio.NewReader(r)
	m := make([]byte, len(magic))
	if _, err := io.ReadFull(br, m); err != nil || string(m) != magic {
		return ErrFormat
	}
	hb, err := readFrame(br, 1<<20)
	if err != nil {
		return ErrFormat
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil || h.Key == nil {
		return ErrFormat
	}
	fileKey, err := s.Unseal(ctx, h.Key, []byte(magic))
	if err != nil {
		return fmt.Errorf("backup: open file key: %w", err)
	}
	defer clear(fileKey)
	if len(fileKey) != 32 {
		return ErrFormat
	}
	// Decrypt the whole stream to a private temporary file first, so that
	// pg_restore only ever sees authenticated data.
	tmp, err := os.CreateTemp("", "loopcard-restore-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := decrypt(fileKey, br, tmp, hb); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error", "--dbname", url)
	cmd.Stdin = tmp
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("backup: pg_restore: %w: %s", err, lastLine(stderr.String()))
	}
	return nil
}

func writeFrame(w io.Writer, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	w.Write(n[:])
	w.Write(b)
}

func readFrame(r io.Reader, max int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	l := int(binary.BigEndian.Uint32(n[:]))
	if l > max {
		return nil, ErrFormat
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// nonce is the STREAM nonce of chunk i: an 11-byte counter and a byte that
// is 1 for the last chunk.
func nonce(i uint64, last bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[3:11], i)
	if last {
		n[11] = 1
	}
	return n
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// encrypt reads src to its end and writes the encrypted chunks; the header
// bytes are authenticated with every chunk. It returns the plaintext size.
func encrypt(key []byte, src io.Reader, dst io.Writer, hdr []byte) (int64, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return 0, err
	}
	cur := make([]byte, chunkSize)
	next := make([]byte, chunkSize)
	n, err := io.ReadFull(src, cur)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, err
	}
	var total int64
	for i := uint64(0); ; i++ {
		// Look ahead one chunk to know whether this one is the last.
		m := 0
		if n == chunkSize {
			m, err = io.ReadFull(src, next)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
				return 0, err
			}
		}
		last := m == 0
		writeFrame(dst, gcm.Seal(nil, nonce(i, last), cur[:n], hdr))
		total += int64(n)
		if last {
			return total, nil
		}
		cur, next = next, cur
		n = m
	}
}

// decrypt reads encrypted chunks to the last one and writes the plaintext.
func decrypt(key []byte, src io.Reader, dst io.Writer, hdr []byte) error {
	gcm, err := newGCM(key)
	if err != nil {
		return err
	}
	for i := uint64(0); ; i++ {
		ct, err := readFrame(src, chunkSize+gcm.Overhead())
		if err != nil {
			return ErrTampered // truncated: no last chunk
		}
		pt, err := gcm.Open(nil, nonce(i, false), ct, hdr)
		last := false
		if err != nil {
			if pt, err = gcm.Open(nil, nonce(i, true), ct, hdr); err != nil {
				return ErrTampered
			}
			last = true
		}
		if _, err := dst.Write(pt); err != nil {
			return err
		}
		if last {
			var one [1]byte
			if n, _ := src.Read(one[:]); n != 0 {
				return ErrTampered // data after the last chunk
			}
			return nil
		}
	}
}

func dbName(url string) string {
	s := url
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return s[strings.LastIndexByte(s, '/')+1:]
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// pgBin finds a PostgreSQL client program next to the newest server, as
// package pgcluster finds the server.
func pgBin(name string) (string, error) {
	if d := os.Getenv("LOOPCARD_PG_BINDIR"); d != "" {
		return filepath.Join(d, name), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("backup: %s not found: install the Debian package postgresql", name)
	}
	sort.Slice(matches, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return a > b
	})
	return matches[0], nil
}
