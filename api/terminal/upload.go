package terminal

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// UploadResult counts the outcomes of uploads.
type UploadResult struct {
	Batches   int
	Accepted  int
	Duplicate int
	Held      int
	Rejected  int
}

func (r *UploadResult) add(o UploadResult) {
	r.Batches += o.Batches
	r.Accepted += o.Accepted
	r.Duplicate += o.Duplicate
	r.Held += o.Held
	r.Rejected += o.Rejected
}

// Sent is the number of transactions the ledger recorded.
func (r UploadResult) Sent() int { return r.Accepted + r.Duplicate + r.Held }

// UploadOnce sends one batch of the oldest committed transactions and
// marks them by the ledger's answer. It returns a zero result when nothing
// waits. A session key the server no longer knows is renewed once.
func (t *Terminal) UploadOnce(ctx context.Context) (UploadResult, error) {
	txs := t.queue.Unsent(t.cfg.BatchSize)
	if len(txs) == 0 {
		return UploadResult{}, nil
	}
	return t.upload(ctx, txs)
}

// upload sends txs (none: a batch for the blocklist and the refused taps
// only) with the refused taps and the blocklist version, and takes the
// answer's blocklist.
func (t *Terminal) upload(ctx context.Context, txs []*terminaltx.Signed) (UploadResult, error) {
	// The version first, then whether the batch empties the queue: every
	// transaction taken while the list was older is in it or sent before.
	version := t.blocklistVersion()
	refused, err := t.RefusedTaps()
	if err != nil {
		return UploadResult{}, err
	}
	req := apitype.BatchRequest{Transactions: make([][]byte, len(txs)), Refused: refused, Blocklist: version}
	for i, s := range txs {
		req.Transactions[i] = s.Bytes()
	}
	if version != nil && t.queue.Counts().Pending == 0 && len(t.queue.Unsent(len(txs)+1)) == len(txs) {
		req.Synced = version
	}
	req.Heartbeat = t.heartbeat(txs)
	var resp apitype.BatchResponse
	err = t.cl.call(ctx, "POST", "/v1/terminal/batches", req, &resp, true, t.sessionKeyID())
	var he *HTTPError
	if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
		if rerr := t.RenewSessionKey(ctx); rerr != nil {
			return UploadResult{}, errors.Join(err, rerr)
		}
		err = t.cl.call(ctx, "POST", "/v1/terminal/batches", req, &resp, true, t.sessionKeyID())
	}
	if err != nil {
		return UploadResult{}, err
	}
	if err := t.dropRefused(len(refused)); err != nil {
		return UploadResult{}, err
	}
	if err := t.applyBlocklist(resp.Blocklist); err != nil {
		return UploadResult{}, err
	}
	if len(resp.Results) != len(txs) {
		return UploadResult{}, errors.New("terminal: upload answer does not match the batch")
	}
	if len(txs) == 0 {
		return UploadResult{}, nil
	}
	res := UploadResult{Batches: 1}
	var done, rejected []txid.ID
	reasons := map[txid.ID]string{}
	for i, r := range resp.Results {
		id := txs[i].ID
		switch r.Status {
		case "accepted":
			res.Accepted++
		case "duplicate":
			res.Duplicate++
		case "held":
			res.Held++
		case "rejected":
			res.Rejected++
			rejected = append(rejected, id)
			reasons[id] = r.Reason
			t.log.Warn("terminal: transaction rejected by the ledger", "txn", id.String(), "reason", r.Reason)
			continue
		default:
			continue // unknown answer: send again later
		}
		done = append(done, id)
		reasons[id] = r.Status
	}
	if err := t.queue.Mark(Done, reasons, done...); err != nil {
		return res, err
	}
	if err := t.queue.Mark(Rejected, reasons, rejected...); err != nil {
		return res, err
	}
	return res, nil
}

// Upload sends batches until nothing committed waits, or an error.
func (t *Terminal) Upload(ctx context.Context) (UploadResult, error) {
	var total UploadResult
	for {
		r, err := t.UploadOnce(ctx)
		total.add(r)
		if err != nil || r.Batches == 0 {
			return total, err
		}
	}
}

// Backoff is the retry schedule of RunUploader: the wait doubles from Min
// after every failure up to Max, and returns to Min after a success.
type Backoff struct {
	Min, Max time.Duration
}

// RunUploader uploads every interval until ctx ends, keeping the session
// key fresh and backing off after failures. A pass with nothing to upload
// still asks the server (an empty batch for the blocklist, SyncBlocklist;
// a terminal without a blocklist fetches its menu), so that every pass
// tells whether the server answers. report, when not nil, gets the result
// of every pass: a nil error means the server answered.
func (t *Terminal) RunUploader(ctx context.Context, interval time.Duration, b Backoff, report func(UploadResult, error)) {
	if b.Min <= 0 {
		b.Min = 200 * time.Millisecond
	}
	if b.Max < b.Min {
		b.Max = 30 * time.Second
	}
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := t.EnsureSessionKey(ctx)
		var r UploadResult
		if err == nil {
			r, err = t.Upload(ctx)
		}
		if err == nil && r.Batches == 0 {
			err = t.idle(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if report != nil {
			report(r, err)
		}
		if err != nil {
			t.log.Warn("terminal: upload failed; backing off", "terminal", t.id.Terminal, "err", err)
			if wait < b.Min {
				wait = b.Min
			} else {
				wait = min(2*wait, b.Max)
			}
			continue
		}
		wait = interval
		if c := t.queue.Counts(); c.Done+c.Void >= compactAfter {
			if err := t.queue.Compact(); err != nil {
				t.log.Warn("terminal: queue compaction failed", "err", err)
			}
		}
	}
}

// idle is the pass of RunUploader with nothing to upload: the blocklist's
// sync, or, for a terminal without a blocklist, the menu's (a merchant
// without a menu is an answer too).
func (t *Terminal) idle(ctx context.Context) error {
	if t.hqKey != nil {
		return t.SyncBlocklist(ctx)
	}
	_, err := t.SyncMenu(ctx)
	if he := (*HTTPError)(nil); errors.As(err, &he) && !he.Temporary() {
		return nil
	}
	return err
}

// compactAfter is how many finished transactions RunUploader lets the
// queue file hold before it compacts it.
const compactAfter = 10000

// heartbeat says what waits in the queue besides txs (the oldest
// committed transactions, or none).
func (t *Terminal) heartbeat(txs []*terminaltx.Signed) *apitype.Heartbeat {
	unsent := t.queue.Unsent(-1)
	if len(unsent) <= len(txs) {
		return &apitype.Heartbeat{}
	}
	rest := unsent[len(txs):]
	age := max(t.now().Sub(rest[0].Tx.Time), 0)
	return &apitype.Heartbeat{Queued: len(rest), OldestUnsent: min(int64(age/time.Second), apitype.MaxOldestUnsent)}
}
