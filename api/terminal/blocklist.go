package terminal

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/blocklist"
	"github.com/loopcard/loopcard/api/internal/fsync"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// The blocklist: the organizer's list of blocked, lost, stolen and
// replaced cards, which the terminal takes as signed deltas with every
// session key and upload answer, verifies with the hq-sign key it pinned
// at enrolment, keeps on disk, and checks every card against before a
// debit, offline. A refused tap is recorded and uploaded with the next
// batch.

// Files of the blocklist in the state directory.
const (
	BlocklistFile = "blocklist.json" // the verified list: version, cards, signature
	RefusedFile   = "refused.log"    // refused taps not uploaded yet, one JSON object a line
)

// ErrCardBlocked: the card is on the terminal's blocklist; the tap was
// refused and recorded.
var ErrCardBlocked = errors.New("terminal: the card is blocked (lost, stolen or replaced): payment refused")

// storedList is the content of BlocklistFile.
type storedList struct {
	Version   uint64 `json:"version"`
	Cards     []byte `json:"cards"` // blocklist.Encode
	Signature []byte `json:"signature"`
}

// NoPinnedKeyWarning is what a terminal enrolled before the blocklist
// (with no hq-sign key pinned) logs when it opens: it cannot refuse
// blocked cards offline, and takes no key later.
const NoPinnedKeyWarning = "terminal: no HQ key pinned (enrolled before the blocklist): blocked, lost and stolen cards are NOT refused offline; " +
	"upload its queue, register it again under a new id (loopcard terminal register) and enrol that into a new state directory " +
	"(loopcard terminal enrol), then revoke the old id"

// BlocklistPinned reports whether the terminal pinned hq-sign's key at
// enrolment, and so takes the blocklist; one enrolled before the
// blocklist did not (NoPinnedKeyWarning).
func (t *Terminal) BlocklistPinned() bool { return t.hqKey != nil }

// pinnedKey parses the hq-sign key of the identity (nil when the server
// gave none at enrolment: such a terminal takes no blocklist).
func (id *identity) pinnedKey() (crypto.PublicKey, error) {
	if len(id.HQKey) == 0 {
		return nil, nil
	}
	k, err := x509.ParsePKIXPublicKey(id.HQKey)
	if err != nil {
		return nil, fmt.Errorf("terminal: identity: the pinned HQ key does not parse: %w", err)
	}
	return k, nil
}

// loadBlocklist reads and verifies the stored list; a list that does not
// verify is dropped (the next answer brings the whole list again).
func (t *Terminal) loadBlocklist() error {
	t.blMu.Lock()
	defer t.blMu.Unlock()
	t.bl = blocklist.Empty(t.id.Org)
	if t.hqKey == nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(t.cfg.StateDir, BlocklistFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("terminal: blocklist: %w", err)
	}
	var st storedList
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("terminal: blocklist file does not parse: %w", err)
	}
	l, err := blocklist.Load(t.hqKey, t.id.Org, st.Version, st.Cards, st.Signature)
	if err != nil {
		return fmt.Errorf("terminal: stored blocklist: %w", err)
	}
	t.bl = l
	return nil
}

// blocklistVersion is the version to report to the server: nil when the
// terminal takes no blocklist (no pinned key).
func (t *Terminal) blocklistVersion() *uint64 {
	if t.hqKey == nil {
		return nil
	}
	t.blMu.Lock()
	defer t.blMu.Unlock()
	v := t.bl.Version
	return &v
}

// BlocklistVersion is the version of the terminal's blocklist (0: none)
// and how many cards it lists.
func (t *Terminal) BlocklistVersion() (version uint64, cards int) {
	t.blMu.Lock()
	defer t.blMu.Unlock()
	return t.bl.Version, t.bl.Len()
}

// Blocked reports whether card is on the terminal's blocklist.
func (t *Terminal) Blocked(card []byte) bool {
	t.blMu.Lock()
	l := t.bl
	t.blMu.Unlock()
	return l.Contains(card)
}

// applyBlocklist verifies a delta the server sent and keeps the new list.
// A delta that does not verify is dropped with a warning: the terminal
// keeps its list and asks again from its version.
func (t *Terminal) applyBlocklist(d *apitype.Blocklist) error {
	if d == nil || t.hqKey == nil {
		return nil
	}
	t.blMu.Lock()
	defer t.blMu.Unlock()
	next, err := t.bl.Apply(t.hqKey, blocklist.Delta{From: d.From, Version: d.Version, Add: d.Add, Remove: d.Remove,
		Count: d.Count, Signature: d.Signature})
	if err != nil {
		t.log.Warn("terminal: blocklist not taken", "terminal", t.id.Terminal, "from", d.From, "version", d.Version, "err", err)
		return nil
	}
	b, err := json.Marshal(storedList{Version: next.Version, Cards: next.Encoded(), Signature: next.Signature})
	if err != nil {
		return err
	}
	path := filepath.Join(t.cfg.StateDir, BlocklistFile)
	if err := writeSynced(path+".tmp", b); err != nil {
		return fmt.Errorf("terminal: store blocklist: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("terminal: store blocklist: %w", err)
	}
	if err := fsync.Dir(t.cfg.StateDir); err != nil {
		return err
	}
	t.bl = next
	t.log.Info("terminal: blocklist taken", "terminal", t.id.Terminal, "version", next.Version, "cards", next.Len())
	return nil
}

// refuse records a refused tap of card, synced to disk.
func (t *Terminal) refuse(card []byte) error {
	var rnd [10]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	now := t.now()
	v, _ := t.BlocklistVersion()
	tap := apitype.RefusedTap{ID: txid.New(now, rnd[:]).String(), Card: terminaltx.CardHex(card), At: now.UTC(), Blocklist: v}
	b, err := json.Marshal(tap)
	if err != nil {
		return err
	}
	t.refMu.Lock()
	defer t.refMu.Unlock()
	f, err := os.OpenFile(filepath.Join(t.cfg.StateDir, RefusedFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("terminal: record refused tap: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("terminal: record refused tap: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("terminal: record refused tap: %w", err)
	}
	t.log.Warn("terminal: blocked card refused", "terminal", t.id.Terminal, "card", tap.Card, "blocklist", v)
	return f.Close()
}

// RefusedTaps returns the refused taps not uploaded yet.
func (t *Terminal) RefusedTaps() ([]apitype.RefusedTap, error) {
	t.refMu.Lock()
	defer t.refMu.Unlock()
	return t.readRefused()
}

func (t *Terminal) readRefused() ([]apitype.RefusedTap, error) {
	b, err := os.ReadFile(filepath.Join(t.cfg.StateDir, RefusedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("terminal: refused taps: %w", err)
	}
	var out []apitype.RefusedTap
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var tap apitype.RefusedTap
		if json.Unmarshal(sc.Bytes(), &tap) == nil && tap.ID != "" {
			out = append(out, tap) // a torn last line is dropped
		}
	}
	return out, nil
}

// dropRefused removes the first n refused taps, which the server recorded.
func (t *Terminal) dropRefused(n int) error {
	if n == 0 {
		return nil
	}
	t.refMu.Lock()
	defer t.refMu.Unlock()
	taps, err := t.readRefused()
	if err != nil {
		return err
	}
	var b []byte
	for _, tap := range taps[min(n, len(taps)):] {
		line, err := json.Marshal(tap)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	path := filepath.Join(t.cfg.StateDir, RefusedFile)
	if err := writeSynced(path+".tmp", b); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	return fsync.Dir(t.cfg.StateDir)
}

// SyncBlocklist uploads what waits in the queue, or else sends a batch
// without transactions (but with the refused taps), to take the
// blocklist's changes and tell the server the terminal synced its version
// (apitype.BatchRequest.Synced). RunUploader calls it when there was
// nothing to upload.
func (t *Terminal) SyncBlocklist(ctx context.Context) error {
	if t.hqKey == nil {
		return nil
	}
	if len(t.queue.Unsent(1)) > 0 {
		_, err := t.Upload(ctx)
		return err
	}
	_, err := t.upload(ctx, nil)
	return err
}
