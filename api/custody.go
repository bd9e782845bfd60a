package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/audit"
	"github.com/loopcard/loopcard/personalize/handover/handoverdb"
)

var errNoHandover = apiError(http.StatusServiceUnavailable, "custody log not available: hq-sign is missing", nil)

// handoverLog opens the caller's organizer's custody log, signed by
// hq-sign.
func (s *Server) handoverLog(c *call) (*handoverdb.Log, error) {
	if s.hqSign == nil {
		return nil, errNoHandover
	}
	signer, err := handover.NewSigner(handover.DefaultOrigin(c.who.org), s.hqSign)
	if err != nil {
		return nil, fmt.Errorf("api: hq signer: %w", err)
	}
	return handoverdb.Open(c.ctx, s.pool, handoverdb.Config{Org: c.who.org, HQ: signer, Logger: s.log, Now: s.now})
}

func appended(a handoverdb.Appended) apitype.AppendResponse {
	return apitype.AppendResponse{First: a.First, Size: a.Checkpoint.Size}
}

func (s *Server) enrolStoreKey(c *call) error {
	var req apitype.StoreKeyRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	c.target = "store " + store
	if !terminaltx.ValidID(store) {
		return badRequest("bad store id", nil)
	}
	key, err := handover.ParseVkey(req.Vkey)
	if err != nil || key.Name != handover.StoreKeyName(c.who.org, store) {
		return badRequest("vkey must be the store's Ed25519 verifier key named "+handover.StoreKeyName(c.who.org, store), err)
	}
	l, err := s.handoverLog(c)
	if err != nil {
		return err
	}
	a, err := l.EnrolStore(c.ctx, store, key)
	if err != nil {
		return err
	}
	c.detail = "store key " + key.ID()
	return c.reply(http.StatusCreated, appended(a))
}

func (s *Server) handOver(c *call) error {
	var req apitype.HandOverRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	no, err := strconv.ParseInt(c.r.PathValue("batch"), 10, 64)
	if err != nil || no <= 0 || !terminaltx.ValidID(req.Store) || req.Count <= 0 {
		return badRequest("batch number, store and a positive count are required", nil)
	}
	if req.First != "" {
		if id, err := handover.ParseCardNumber(req.First); err != nil || id.Batch() != no {
			return badRequest("first must be a card number of the batch, such as 1-00001", err)
		}
	}
	c.target = fmt.Sprintf("batch %d", no)
	l, err := s.handoverLog(c)
	if err != nil {
		return err
	}
	a, err := l.HandOverRun(c.ctx, no, req.Store, req.Count, req.First)
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("%d cards to %s", req.Count, req.Store)
	if req.First != "" {
		c.detail += " from " + req.First
	}
	return c.reply(http.StatusCreated, appended(a))
}

// MaxEntries bounds one append.
const MaxEntries = 10000

// appendStoreEntries appends entries signed by the store of the path, of
// the allowed types only; the log checks the signatures and the signer's
// right to make them.
func (s *Server) appendStoreEntries(c *call, allowed func(handover.Type) bool) error {
	var req apitype.EntriesRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	c.target = "store " + store
	if len(req.Entries) == 0 || len(req.Entries) > MaxEntries {
		return badRequest(fmt.Sprintf("1 to %d entries are required", MaxEntries), nil)
	}
	for _, e := range req.Entries {
		if e.Org != c.who.org || (e.Type != handover.TypeSeal && (!allowed(e.Type) || e.Store != store)) {
			return badRequest("entries must be of this organizer and store, of the kind this route takes", nil)
		}
	}
	l, err := s.handoverLog(c)
	if err != nil {
		return err
	}
	a, err := l.Append(c.ctx, req.Entries...)
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("%d entries from %s", len(req.Entries), req.Entries[0].Signer)
	return c.reply(http.StatusCreated, appended(a))
}

// AppendReceipts appends receipts signed by stores to the custody log l
// and, in the same transaction, counts the cards received into each
// store's stock in the ledger, with the run of cards of the handover a
// receipt closes, if it names one: the one path of a receipt, taken by
// POST /v1/stores/{store}/receipts and by HQ's `loopcard handover
// receive`. Sending the same signed receipt again appends and counts
// nothing and returns ErrReceiptAgain.
func AppendReceipts(ctx context.Context, l *handoverdb.Log, lg *ledger.Ledger, entries ...handover.Entry) (handoverdb.Appended, error) {
	count := func(ctx context.Context, tx pgx.Tx, first int64, received []handover.Handover) error {
		for _, h := range received {
			e := entries[h.Received-first]
			b, err := e.Marshal()
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			r := ledger.Receipt{ID: txid.ID(sum[:16]), Store: e.Store, Batch: e.Batch, Count: int(*e.Count)}
			if h.First != "" {
				id, err := handover.ParseCardNumber(h.First)
				if err != nil {
					return err
				}
				r.FirstSlot, r.Run = id.Slot(), int(h.Count)
			}
			if err := lg.ReceiveCardsTx(ctx, tx, l.Org(), r); err != nil {
				return fmt.Errorf("store %s, batch %d: stock: %w", e.Store, e.Batch, err)
			}
		}
		return nil
	}
	a, err := l.AppendReceiving(ctx, count, entries...)
	if errors.Is(err, handoverdb.ErrDuplicate) && len(entries) == 1 {
		return a, ErrReceiptAgain
	}
	return a, err
}

// ErrReceiptAgain: the receipt was in the custody log already, and its
// cards were counted into the store's stock with it.
var ErrReceiptAgain = errors.New("receipt already in the custody log; its cards were counted with it")

// storeReceipt appends the store's signed receipt to the custody log and
// counts the received cards into the store's stock, together
// (AppendReceipts); the same receipt again answers 200, already recorded.
func (s *Server) storeReceipt(c *call) error {
	var req apitype.EntriesRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	c.target = "store " + store
	if len(req.Entries) == 0 || len(req.Entries) > MaxEntries {
		return badRequest(fmt.Sprintf("1 to %d entries are required", MaxEntries), nil)
	}
	for _, e := range req.Entries {
		if e.Org != c.who.org || e.Type != handover.TypeReceived || e.Store != store {
			return badRequest("entries must be receipts of this organizer and store", nil)
		}
	}
	l, err := s.handoverLog(c)
	if err != nil {
		return err
	}
	a, err := AppendReceipts(c.ctx, l, s.ledger, req.Entries...)
	switch {
	case errors.Is(err, ErrReceiptAgain):
		c.detail = fmt.Sprintf("receipt from %s again: already in the log, counted once", req.Entries[0].Signer)
		return c.reply(http.StatusOK, apitype.AppendResponse{Again: true})
	case err != nil:
		return err
	}
	c.detail = fmt.Sprintf("%d receipts from %s", len(req.Entries), req.Entries[0].Signer)
	return c.reply(http.StatusCreated, appended(a))
}

func (s *Server) storeCardEvents(c *call) error {
	// The types whose kind a store records through this route
	// (handover.Kinds): sold, returned, voided, destroyed.
	return s.appendStoreEntries(c, func(t handover.Type) bool {
		k, ok := handover.KindOf(t)
		return ok && k.StoreRoute == handover.RouteCardEvents
	})
}

// auditExport streams the custody log export (docs/audit-export.md) as a
// tar file, for handover/audit to verify offline.
func (s *Server) auditExport(c *call) error {
	if s.hqSign == nil {
		return errNoHandover
	}
	signer, err := handover.NewSigner(handover.DefaultOrigin(c.who.org), s.hqSign)
	if err != nil {
		return fmt.Errorf("api: hq signer: %w", err)
	}
	tmp, err := os.MkdirTemp("", "loopcard-export-")
	if err != nil {
		return fmt.Errorf("api: export: %w", err)
	}
	defer os.RemoveAll(tmp)
	c.w.Header().Set("Content-Type", "application/x-tar")
	c.w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="handover-org-%d.tar"`, c.who.org))
	// The tar is written to the client as it is made: from the first byte
	// on, an error can only cut the stream short.
	sw := &startWriter{c: c}
	sum, err := handoverdb.ExportTar(c.ctx, s.pool, c.who.org, signer.PublicKey(), tmp, sw)
	if err != nil {
		return fmt.Errorf("api: export: %w", err)
	}
	c.detail = fmt.Sprintf("export of %d entries", sum.Entries)
	if c.status == 0 {
		c.status = http.StatusOK
		c.w.WriteHeader(http.StatusOK)
	}
	return nil
}

// auditVerify exports the organizer's custody log to a temporary
// directory and verifies the export as `loopcard audit verify --hq-key`
// does, with this server's hq-sign key pinned: signatures, checkpoints,
// inclusion, signers and counts. A failed check is an answer (ok false and
// what failed), not an error.
func (s *Server) auditVerify(c *call) error {
	if s.hqSign == nil {
		return errNoHandover
	}
	signer, err := handover.NewSigner(handover.DefaultOrigin(c.who.org), s.hqSign)
	if err != nil {
		return fmt.Errorf("api: hq signer: %w", err)
	}
	tmp, err := os.MkdirTemp("", "loopcard-verify-")
	if err != nil {
		return fmt.Errorf("api: verify: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := handoverdb.Export(c.ctx, s.pool, c.who.org, signer.PublicKey(), tmp); err != nil {
		return fmt.Errorf("api: verify: %w", err)
	}
	rep, err := audit.Verify(os.DirFS(tmp), audit.Options{HQKey: signer.PublicKey().Vkey()})
	var fail *audit.Failure
	if err != nil && !errors.As(err, &fail) {
		return fmt.Errorf("api: verify: %w", err)
	}
	out := apitype.AuditVerification{OK: fail == nil, VerifiedAt: s.now().UTC(), Entries: rep.Entries, Checkpoints: rep.Checkpoints,
		Size: rep.Size, Root: rep.Root, HQKeyPinned: rep.HQKeyPinned, Checked: rep.Checked,
		OpenHandovers: len(rep.OpenHandovers), Discrepancies: len(rep.Discrepancies)}
	if out.Checked == nil {
		out.Checked = []string{}
	}
	if fail != nil {
		out.Failure = fail.Error()
		c.detail = "verification failed: " + fail.Check
	} else {
		c.detail = fmt.Sprintf("verified %d entries", rep.Entries)
	}
	return c.reply(http.StatusOK, out)
}

// startWriter marks the response as begun at its first byte.
type startWriter struct{ c *call }

func (w *startWriter) Write(p []byte) (int, error) {
	if w.c.status == 0 {
		w.c.status = http.StatusOK
		w.c.w.WriteHeader(http.StatusOK)
	}
	return w.c.w.Write(p)
}

// handoverError maps the custody log's refusals.
func handoverError(err error) (*Error, bool) {
	var ee *handover.EntryError
	switch {
	case errors.As(err, &ee), errors.Is(err, handover.ErrMalformed):
		return apiError(http.StatusBadRequest, "custody log entries refused", err), true
	case errors.Is(err, handoverdb.ErrNoLog):
		return apiError(http.StatusNotFound, "no custody log for this organizer yet: HQ issues a finished batch first (loopcard handover issue --batch N)", err), true
	case errors.Is(err, handover.ErrNotEd25519):
		return apiError(http.StatusServiceUnavailable, "custody log not available: hq-sign is not Ed25519", err), true
	}
	return nil, false
}
