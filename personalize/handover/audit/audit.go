// Package audit verifies an export of the handover log offline, with
// nothing but the export and HQ's public key: every signature, every
// checkpoint consistent with the one before and with the entries, every
// entry included, each entry's signer allowed to make it, and the counts
// of every batch adding up. It reports what it checked and the first thing
// that failed, with its entry index.
package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/loopcard/loopcard/personalize/handover"
)

// Options tune Verify. The zero value verifies the export against the HQ
// key it contains.
type Options struct {
	// HQKey, when set, is the verifier key of hq-sign the auditor trusts;
	// the export's keys/hq.vkey must be the same. Without it the export's
	// own key is used, which proves consistency but not authorship.
	HQKey string
	// Since is a signed checkpoint the auditor verified before (the file
	// as exported). The export must extend it: no rollback, no fork.
	Since []byte
	// Workers verify signatures and parse entries; 0 means GOMAXPROCS.
	Workers int
}

// Failure is what failed first: the check, the entry index (-1 when the
// failure is not about one entry) and what was wrong.
type Failure struct {
	Check   string `json:"check"`
	Index   int64  `json:"index"`
	Message string `json:"message"`
}

func (f *Failure) Error() string {
	if f.Index >= 0 {
		return fmt.Sprintf("%s: entry %d: %s", f.Check, f.Index, f.Message)
	}
	return fmt.Sprintf("%s: %s", f.Check, f.Message)
}

// Report is what Verify found.
type Report struct {
	OK     bool   `json:"ok"`
	Origin string `json:"origin"`
	HQKey  string `json:"hq_key"`
	// HQKeyPinned is true when the auditor gave the HQ key (Options.HQKey).
	HQKeyPinned bool   `json:"hq_key_pinned"`
	Entries     int64  `json:"entries"`
	Checkpoints int    `json:"checkpoints"`
	Size        int64  `json:"size"`
	Root        string `json:"root"`
	// Signatures is the number of entry signatures verified; Sealed the
	// entries covered by a seal instead of a signature of their own.
	Signatures    int64                  `json:"signatures"`
	Sealed        int64                  `json:"sealed"`
	StoreKeys     int                    `json:"store_keys"`
	Checked       []string               `json:"checked"`
	Batches       []handover.BatchCounts `json:"batches,omitempty"`
	OpenHandovers []handover.Handover    `json:"open_handovers,omitempty"`
	Discrepancies []handover.Handover    `json:"discrepancies,omitempty"`
	Failure       *Failure               `json:"failure,omitempty"`
	SinceSize     int64                  `json:"since_size,omitempty"`
}

// Verify checks the export in fsys (such as os.DirFS(dir)); see
// docs/audit-export.md. It returns the report and, when a check failed,
// that *Failure as the error.
func Verify(fsys fs.FS, opts Options) (*Report, error) {
	v := &verifier{fsys: fsys, opts: opts, rep: &Report{}}
	if v.opts.Workers <= 0 {
		v.opts.Workers = runtime.GOMAXPROCS(0)
	}
	steps := []struct {
		name string
		f    func() *Failure
	}{
		{"HQ key", v.keys},
		{"checkpoint signatures", v.checkpoints},
		{"entries: format, signers, signatures, seals, counts", v.entries},
		{"checkpoint consistency proofs", v.proofs},
		{"checkpoints against entries", v.roots},
		{"store keys", v.storeKeys},
		{"since", v.since},
	}
	for _, s := range steps {
		if f := s.f(); f != nil {
			v.rep.Failure = f
			return v.rep, f
		}
		if s.name == "since" && opts.Since == nil {
			continue
		}
		v.rep.Checked = append(v.rep.Checked, v.checked)
	}
	v.rep.OK = true
	return v.rep, nil
}

type verifier struct {
	fsys    fs.FS
	opts    Options
	rep     *Report
	checked string // what the last step checked, for the report

	hq     handover.PublicKey
	origin string
	cps    []handover.Checkpoint
	tree   handover.MemoryTree
	check  *handover.Checker
	tally  *handover.Tally
}

func fail(check string, index int64, format string, args ...any) *Failure {
	return &Failure{Check: check, Index: index, Message: fmt.Sprintf(format, args...)}
}

func (v *verifier) keys() *Failure {
	b, err := fs.ReadFile(v.fsys, handover.ExportHQKey)
	if err != nil {
		return fail("hq-key", -1, "%v", err)
	}
	k, err := handover.ParseVkey(string(b))
	if err != nil {
		return fail("hq-key", -1, "%s: %v", handover.ExportHQKey, err)
	}
	if v.opts.HQKey != "" {
		want, err := handover.ParseVkey(v.opts.HQKey)
		if err != nil {
			return fail("hq-key", -1, "the key given: %v", err)
		}
		if want.Vkey() != k.Vkey() {
			return fail("hq-key", -1, "the export's HQ key %s is not the one given, %s", k.ID(), want.ID())
		}
		v.rep.HQKeyPinned = true
	}
	b, err = fs.ReadFile(v.fsys, handover.ExportOrigin)
	if err != nil {
		return fail("origin", -1, "%v", err)
	}
	v.origin = strings.TrimSuffix(string(b), "\n")
	if v.origin == "" || strings.Contains(v.origin, "\n") {
		return fail("origin", -1, "%s is not one line", handover.ExportOrigin)
	}
	v.hq = k
	v.rep.HQKey, v.rep.Origin = k.Vkey(), v.origin
	v.checked = fmt.Sprintf("HQ key %s (pinned: %v), origin %q", k.ID(), v.rep.HQKeyPinned, v.origin)
	return nil
}

func (v *verifier) checkpoints() *Failure {
	ents, err := fs.ReadDir(v.fsys, handover.ExportCheckpoints)
	if err != nil {
		return fail("checkpoint", -1, "%v", err)
	}
	for _, e := range ents {
		name := e.Name()
		n, err := strconv.ParseInt(name, 10, 64)
		if err != nil || handover.CheckpointName(n) != name || !e.Type().IsRegular() {
			return fail("checkpoint", -1, "%s/%s is not a checkpoint file name", handover.ExportCheckpoints, name)
		}
		msg, err := fs.ReadFile(v.fsys, path.Join(handover.ExportCheckpoints, name))
		if err != nil {
			return fail("checkpoint", -1, "%v", err)
		}
		c, err := handover.OpenCheckpoint(msg, v.hq)
		if err != nil {
			return fail("checkpoint-signature", -1, "checkpoint %s: %v", name, err)
		}
		if c.Origin != v.origin {
			return fail("checkpoint", -1, "checkpoint %s is of log %q, not %q", name, c.Origin, v.origin)
		}
		if c.Size != n {
			return fail("checkpoint", -1, "checkpoint %s says size %d", name, c.Size)
		}
		v.cps = append(v.cps, c)
	}
	if len(v.cps) == 0 {
		return fail("checkpoint", -1, "no checkpoints")
	}
	sort.Slice(v.cps, func(i, j int) bool { return v.cps[i].Size < v.cps[j].Size })
	last := v.cps[len(v.cps)-1]
	v.rep.Checkpoints, v.rep.Size, v.rep.Root = len(v.cps), last.Size, last.Root.String()
	v.checked = fmt.Sprintf("%d checkpoints signed by HQ, latest size %d", len(v.cps), last.Size)
	return nil
}

// proofs checks that each checkpoint extends the one before, from the
// exported consistency proofs alone: no fork between checkpoints.
func (v *verifier) proofs() *Failure {
	for i := 1; i < len(v.cps); i++ {
		a, b := v.cps[i-1], v.cps[i]
		name := path.Join(handover.ExportConsistency, handover.ConsistencyName(a.Size, b.Size))
		data, err := fs.ReadFile(v.fsys, name)
		if err != nil {
			return fail("consistency", -1, "checkpoint %d to %d: %v", a.Size, b.Size, err)
		}
		p, err := handover.ParseProof(data)
		if err != nil {
			return fail("consistency", -1, "%s: %v", name, err)
		}
		if err := tlog.CheckTree(p, b.Size, b.Root, a.Size, a.Root); err != nil {
			return fail("consistency", a.Size, "checkpoint of size %d does not extend the one of size %d (fork or rewrite after entry %d): %v", b.Size, a.Size, a.Size, err)
		}
	}
	v.checked = fmt.Sprintf("%d consistency proofs between neighbouring checkpoints", max(len(v.cps)-1, 0))
	return nil
}

// chunk is a run of entry lines, parsed in parallel and applied in order.
type chunk struct {
	start   int64
	lines   [][]byte
	entries []handover.Entry
	leaves  []tlog.Hash
	errs    []error
	done    chan struct{}
}

const chunkLines = 4096

func (v *verifier) entries() *Failure {
	f, err := v.fsys.Open(handover.ExportEntries)
	if err != nil {
		return fail("entries", -1, "%v", err)
	}
	defer f.Close()
	v.check = handover.NewChecker(v.hq, 0)
	v.tally = handover.NewTally()

	var wg sync.WaitGroup
	defer wg.Wait() // after stop is closed: the reader and workers end
	stop := make(chan struct{})
	defer close(stop)
	work := make(chan *chunk, v.opts.Workers)
	ordered := make(chan *chunk, 2*v.opts.Workers+2)
	readErr := make(chan *Failure, 1)
	go func() {
		defer close(work)
		defer close(ordered)
		readErr <- readChunks(f, stop, work, ordered)
	}()
	for range v.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				parseChunk(c)
			}
		}()
	}

	sigs := newSigPool(v.opts.Workers)
	defer sigs.close()

	// firstOf returns the failure of the lowest entry index among f and
	// the signatures checked so far (all of them earlier entries).
	firstOf := func(f *Failure) *Failure {
		if sf := sigs.wait(); sf != nil && sf.Index <= f.Index {
			return sf
		}
		return f
	}
	var org int64
	seen := map[tlog.Hash]int64{} // leaves of signed entries
	for c := range ordered {
		<-c.done
		for j, e := range c.entries {
			i := c.start + int64(j)
			if c.errs[j] != nil {
				return firstOf(fail("entry-format", i, "%v", c.errs[j]))
			}
			if org == 0 {
				org = e.Org
			} else if e.Org != org {
				return firstOf(fail("entry-format", i, "entry of organizer %d in organizer %d's log", e.Org, org))
			}
			leaf := c.leaves[j]
			if err := v.tree.AppendLeaf(leaf); err != nil {
				return firstOf(fail("entries", i, "%v", err))
			}
			sc, err := v.check.Add(e, leaf)
			if err != nil {
				return firstOf(entryFailure("signer", i, err))
			}
			if sc != nil {
				if first, dup := seen[leaf]; dup {
					return firstOf(fail("duplicate", i, "entry %d appears again", first))
				}
				seen[leaf] = i
				sigs.add(sc)
				v.rep.Signatures++
			} else {
				v.rep.Sealed++
			}
			if err := v.tally.Add(i, e); err != nil {
				return firstOf(entryFailure("counts", i, err))
			}
		}
		if f := sigs.failure(); f != nil {
			return f
		}
	}
	if f := <-readErr; f != nil {
		return firstOf(f)
	}
	if err := v.check.Finish(); err != nil {
		return firstOf(entryFailure("seal", -1, err))
	}
	if f := sigs.wait(); f != nil {
		return f
	}
	v.rep.Entries = v.tree.Size()
	v.rep.StoreKeys = len(v.check.StoreKeys())
	v.rep.Batches = v.tally.Batches()
	for _, h := range v.tally.Handovers() {
		if h.Received < 0 {
			v.rep.OpenHandovers = append(v.rep.OpenHandovers, h)
		} else if h.Counted != h.Count {
			v.rep.Discrepancies = append(v.rep.Discrepancies, h)
		}
	}
	for _, b := range v.rep.Batches {
		if b.Accounted() != b.Issued {
			return fail("counts", -1, "batch %d accounts for %d of %d cards", b.Batch, b.Accounted(), b.Issued)
		}
	}
	v.checked = fmt.Sprintf("%d entries: canonical form, %d signatures (%d entries sealed), signers allowed, counts of %d batches add up (%d open handovers, %d discrepancies)",
		v.rep.Entries, v.rep.Signatures, v.rep.Sealed, len(v.rep.Batches), len(v.rep.OpenHandovers), len(v.rep.Discrepancies))
	return nil
}

// entryFailure turns a handover error into a Failure, with the index of
// an *EntryError when there is one.
func entryFailure(check string, index int64, err error) *Failure {
	var ee *handover.EntryError
	if errors.As(err, &ee) {
		index = ee.Index
		err = ee.Err
	}
	switch {
	case errors.Is(err, handover.ErrBadSeal), errors.Is(err, handover.ErrNotSealed):
		check = "seal"
	case errors.Is(err, handover.ErrUnknownSigner), errors.Is(err, handover.ErrNotAllowed):
		check = "signer"
	case errors.Is(err, handover.ErrMalformed):
		check = "entry-format"
	}
	return &Failure{Check: check, Index: index, Message: err.Error()}
}

// readChunks splits entries.jsonl into chunks of lines, each line ending
// in a newline.
func readChunks(r io.Reader, stop <-chan struct{}, work, ordered chan<- *chunk) *Failure {
	br := bufio.NewReaderSize(r, 64<<10) // entries are far shorter
	var start int64
	for {
		c := &chunk{start: start, done: make(chan struct{})}
		for len(c.lines) < chunkLines {
			line, err := br.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				return fail("entry-format", start+int64(len(c.lines)), "line longer than %d bytes", br.Size())
			}
			if err == io.EOF {
				if len(line) > 0 {
					return fail("entry-format", start+int64(len(c.lines)), "last line does not end in a newline")
				}
				break
			}
			if err != nil {
				return fail("entries", -1, "%v", err)
			}
			c.lines = append(c.lines, bytes.Clone(line[:len(line)-1]))
		}
		n := len(c.lines)
		if n == 0 {
			return nil
		}
		select {
		case work <- c:
		case <-stop:
			return nil
		}
		select {
		case ordered <- c:
		case <-stop:
			return nil
		}
		start += int64(n)
		if n < chunkLines {
			return nil
		}
	}
}

func parseChunk(c *chunk) {
	c.entries = make([]handover.Entry, len(c.lines))
	c.leaves = make([]tlog.Hash, len(c.lines))
	c.errs = make([]error, len(c.lines))
	for j, l := range c.lines {
		c.entries[j], c.errs[j] = handover.ParseEntry(l)
		c.leaves[j] = tlog.RecordHash(l)
	}
	c.lines = nil
	close(c.done)
}

// sigPool verifies signatures in parallel and keeps the failure with the
// lowest entry index.
type sigPool struct {
	in    chan *handover.SigCheck
	wg    sync.WaitGroup
	mu    sync.Mutex
	first *Failure
	once  sync.Once
}

func newSigPool(n int) *sigPool {
	p := &sigPool{in: make(chan *handover.SigCheck, 1024)}
	for range n {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for sc := range p.in {
				if err := sc.Verify(); err != nil {
					p.mu.Lock()
					if p.first == nil || sc.Index < p.first.Index {
						p.first = fail("signature", sc.Index, "%v", err)
					}
					p.mu.Unlock()
				}
			}
		}()
	}
	return p
}

func (p *sigPool) add(sc *handover.SigCheck) { p.in <- sc }

func (p *sigPool) failure() *Failure {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.first
}

// wait finishes every pending check.
func (p *sigPool) wait() *Failure {
	p.close()
	return p.failure()
}

func (p *sigPool) close() {
	p.once.Do(func() { close(p.in); p.wg.Wait() })
}

// roots checks every checkpoint against the tree of the entries: each
// entry is included in the latest checkpoint, and none is left out.
func (v *verifier) roots() *Failure {
	prev := int64(0)
	for _, c := range v.cps {
		if c.Size > v.tree.Size() {
			return fail("inclusion", v.tree.Size(), "checkpoint of size %d covers entries the export does not have: it has %d (entries dropped after %d)", c.Size, v.tree.Size(), prev)
		}
		root, err := v.tree.Root(c.Size)
		if err != nil {
			return fail("inclusion", -1, "%v", err)
		}
		if root != c.Root {
			return fail("inclusion", prev, "entries 0 to %d do not hash to the checkpoint of size %d; the checkpoint of size %d matches: entries from %d on were changed, dropped, inserted or reordered", c.Size-1, c.Size, prev, prev)
		}
		prev = c.Size
	}
	if n := v.tree.Size(); n != prev {
		return fail("inclusion", prev, "entries %d to %d are in no checkpoint (inserted)", prev, n-1)
	}
	v.checked = fmt.Sprintf("all %d entries hash to the latest checkpoint (root %s); every checkpoint matches its prefix", v.tree.Size(), v.rep.Root)
	return nil
}

// storeKeys checks keys/stores.txt against the key_enrolled entries.
func (v *verifier) storeKeys() *Failure {
	b, err := fs.ReadFile(v.fsys, handover.ExportStoreKeys)
	if err != nil {
		return fail("store-keys", -1, "%v", err)
	}
	logged := v.check.StoreKeys()
	listed := 0
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		store, vkey, ok := strings.Cut(line, " ")
		k, err := handover.ParseVkey(vkey)
		if !ok || err != nil {
			return fail("store-keys", -1, "%s: bad line %q", handover.ExportStoreKeys, line)
		}
		if lk, ok := logged[k.ID()]; !ok || lk.Vkey() != k.Vkey() || v.check.StoreOf(k.ID()) != store {
			return fail("store-keys", -1, "%s lists key %s of store %s, which the log does not enrol", handover.ExportStoreKeys, k.ID(), store)
		}
		listed++
	}
	if listed != len(logged) {
		return fail("store-keys", -1, "%s lists %d keys, the log enrols %d", handover.ExportStoreKeys, listed, len(logged))
	}
	v.checked = fmt.Sprintf("%d store keys, each enrolled in the log by HQ", listed)
	return nil
}

// since checks that the export extends the checkpoint the auditor held.
func (v *verifier) since() *Failure {
	if v.opts.Since == nil {
		return nil
	}
	old, err := handover.OpenCheckpoint(v.opts.Since, v.hq)
	if err != nil {
		return fail("since", -1, "the checkpoint given: %v", err)
	}
	if old.Origin != v.origin {
		return fail("since", -1, "the checkpoint given is of log %q, not %q", old.Origin, v.origin)
	}
	v.rep.SinceSize = old.Size
	if old.Size > v.tree.Size() {
		return fail("rollback", v.tree.Size(), "the export has %d entries, fewer than the %d of the checkpoint given: the log was rolled back", v.tree.Size(), old.Size)
	}
	root, err := v.tree.Root(old.Size)
	if err != nil {
		return fail("since", -1, "%v", err)
	}
	if root != old.Root {
		return fail("fork", -1, "the export's first %d entries do not hash to the checkpoint given: the log was forked or rewritten", old.Size)
	}
	latest := v.cps[len(v.cps)-1]
	p, err := tlog.ProveTree(latest.Size, old.Size, &v.tree)
	if err == nil {
		err = tlog.CheckTree(p, latest.Size, latest.Root, old.Size, old.Root)
	}
	if err != nil {
		return fail("fork", -1, "no consistency from the checkpoint given (size %d) to the latest (size %d): %v", old.Size, latest.Size, err)
	}
	v.checked = fmt.Sprintf("the latest checkpoint extends the one given (size %d): no rollback, no fork", old.Size)
	return nil
}
