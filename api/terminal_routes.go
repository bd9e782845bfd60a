package api

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

func (s *Server) enrolTerminal(c *call) error {
	var req apitype.EnrolRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	c.who.org = req.Org
	c.target = "terminal " + req.Terminal
	if req.Org <= 0 || !terminaltx.ValidID(req.Terminal) {
		return badRequest("org and terminal are required", nil)
	}
	if len(req.SigningKey) != ed25519.PublicKeySize {
		return badRequest("signing_key must be an Ed25519 public key", nil)
	}
	if _, err := keydelivery.ParsePublicKey(req.KexAlg, req.KexKey); err != nil {
		return badRequest("kex_key must be an x25519 or p256 public key", err)
	}
	tok, err := ledger.ParseEnrolmentToken(req.Token)
	if err != nil {
		return apiError(http.StatusUnauthorized, "enrolment refused", err)
	}
	if err := s.ledger.EnrolTerminal(c.ctx, req.Org, req.Terminal, tok, ed25519.PublicKey(req.SigningKey)); err != nil {
		if errors.Is(err, ledger.ErrEventRequired) {
			return apiError(http.StatusConflict, "the terminal has no event and the organizer has not exactly one: "+
				"HQ registers it again with its event (loopcard terminal register --event)", err)
		}
		return err
	}
	rec, err := s.ledger.Terminal(c.ctx, req.Org, req.Terminal)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(c.ctx, `INSERT INTO api_terminal_keys (org_id, terminal_id, kex_alg, kex_public, enrolled_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, terminal_id) DO UPDATE
		SET kex_alg = EXCLUDED.kex_alg, kex_public = EXCLUDED.kex_public, enrolled_at = EXCLUDED.enrolled_at`,
		req.Org, req.Terminal, req.KexAlg, req.KexKey, s.now()); err != nil {
		return fmt.Errorf("api: store key-agreement key: %w", err)
	}
	c.detail = "merchant " + rec.Merchant + ", event " + rec.Event
	s.creds.forget(KeyID(req.Org, req.Terminal))
	return c.reply(http.StatusCreated, apitype.EnrolResponse{KeyID: KeyID(req.Org, req.Terminal), Organizer: req.Org,
		Merchant: rec.Merchant, Event: rec.Event, HQKey: s.hqKeyDER()})
}

func newUUID() pgtype.UUID {
	var r [10]byte
	_, _ = rand.Read(r[:])
	return pgtype.UUID{Bytes: txid.New(time.Now(), r[:]), Valid: true}
}

func uuidText(u pgtype.UUID) string { return txid.ID(u.Bytes).String() }

func parseUUID(s string) (pgtype.UUID, bool) {
	h := strings.ReplaceAll(s, "-", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 || len(s) != 36 {
		return pgtype.UUID{}, false
	}
	var u pgtype.UUID
	copy(u.Bytes[:], b)
	u.Valid = true
	return u, true
}

// eventExists answers 404 when the organizer has no such event.
func (s *Server) eventExists(c *call, org int64, event string) error {
	err := s.ledger.CheckEvent(c.ctx, org, event)
	if errors.Is(err, ledger.ErrNotFound) {
		return apiError(http.StatusNotFound, "no such event", nil)
	}
	return err
}

func (s *Server) sessionKey(c *call) error {
	var req apitype.SessionKeyRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	rec, err := s.ledger.Terminal(c.ctx, c.who.org, c.who.terminal)
	if err != nil {
		return err
	}
	if err := s.heartbeat(c, req.Heartbeat); err != nil {
		return err
	}
	switch {
	case req.Event == "":
		req.Event = rec.Event
	case rec.Event != "" && req.Event != rec.Event:
		c.target = "event " + req.Event
		return apiError(http.StatusForbidden, "the terminal takes payments for event "+rec.Event+" only", nil)
	}
	c.target = "event " + req.Event
	if !terminaltx.ValidID(req.Event) {
		return badRequest("event is required", nil)
	}
	if err := s.eventExists(c, c.who.org, req.Event); err != nil {
		return err
	}
	kexAlg, kexPub, err := s.terminalKex(c)
	if err != nil {
		return err
	}
	key, used, err := s.hsm.EventDebitKey(c.ctx, keys.Label{Name: keys.AppDebit}, c.who.org, req.Event)
	if err != nil {
		return fmt.Errorf("api: event debit key: %w", err)
	}
	defer key.Destroy()
	id := newUUID()
	now := s.now()
	b := keydelivery.Binding{Kind: keydelivery.KindSession, Organizer: c.who.org, Terminal: c.who.terminal,
		Event: req.Event, KeyID: uuidText(id), Expires: now.Add(s.limits.SessionKeyTTL).Truncate(time.Second)}
	raw := key.Bytes()
	w, err := keydelivery.Wrap(kexAlg, kexPub, b, raw)
	clear(raw)
	if err != nil {
		return fmt.Errorf("api: wrap session key: %w", err)
	}
	if _, err := s.pool.Exec(c.ctx, `INSERT INTO api_session_keys (org_id, key_id, terminal_id, kind, event_id, issued_at, expires_at)
		VALUES ($1, $2, $3, 'session', $4, $5, $6)`, c.who.org, id, c.who.terminal, req.Event, now, b.Expires); err != nil {
		return fmt.Errorf("api: record session key: %w", err)
	}
	c.detail = "session key " + b.KeyID + " from " + used.String()
	bl, err := s.blocklistFor(c, c.who.org, req.Blocklist)
	if err != nil {
		return err
	}
	return c.reply(http.StatusCreated, apitype.SessionKeyResponse{Wrapped: *w, BaseKey: used.String(), Blocklist: bl})
}

// checkSessionKey requires the terminal's current session key in the
// Loopcard-Session-Key header.
func (s *Server) checkSessionKey(c *call) error {
	id, ok := parseUUID(c.r.Header.Get(apitype.HeaderSessionKey))
	if !ok {
		return errSessionKey
	}
	var expires time.Time
	var revoked *time.Time
	err := s.pool.QueryRow(c.ctx, `SELECT expires_at, revoked_at FROM api_session_keys
		WHERE org_id = $1 AND key_id = $2 AND terminal_id = $3 AND kind = 'session'`, c.who.org, id, c.who.terminal).Scan(&expires, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return errSessionKey
	}
	if err != nil {
		return fmt.Errorf("api: session key: %w", err)
	}
	if revoked != nil || !s.now().Before(expires) {
		c.detail = "session key " + uuidText(id) + " expired or revoked"
		return errSessionKey
	}
	return nil
}

// MaxBatch is the most transactions in one upload.
const MaxBatch = 5000

// rejectReason names why the ledger rejected a transaction, without the
// internal error text.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, terminaltx.ErrMalformed), errors.Is(err, terminaltx.ErrVersion):
		return "malformed"
	case errors.Is(err, terminaltx.ErrSignature):
		return "bad_signature"
	case errors.Is(err, ledger.ErrConflict):
		return "id_conflict"
	case errors.Is(err, ledger.ErrTerminalSeqReused):
		return "terminal_seq_reused"
	case errors.Is(err, ledger.ErrWrongOrganizer):
		return "wrong_organizer"
	case errors.Is(err, ledger.ErrTerminalNotActive):
		return "terminal_not_active"
	}
	return "rejected"
}

func (s *Server) uploadBatch(c *call) error {
	var req apitype.BatchRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	// A batch without transactions carries refused taps or asks for the
	// blocklist only.
	if len(req.Transactions) > MaxBatch || (len(req.Transactions) == 0 && req.Blocklist == nil && len(req.Refused) == 0) {
		return badRequest(fmt.Sprintf("a batch holds 1 to %d transactions", MaxBatch), nil)
	}
	refused, err := parseRefused(req.Refused)
	if err != nil {
		return err
	}
	if err := s.heartbeat(c, req.Heartbeat); err != nil {
		return err
	}
	res := make([]apitype.TxResult, len(req.Transactions))
	var raws [][]byte
	var idx []int
	for i, raw := range req.Transactions {
		tx, err := terminaltx.Parse(raw)
		switch {
		case err != nil:
			res[i] = apitype.TxResult{Status: "rejected", Reason: "malformed"}
		case tx.Organizer != c.who.org || tx.Terminal != c.who.terminal:
			// A terminal uploads its own transactions only.
			res[i] = apitype.TxResult{ID: tx.ID.String(), Status: "rejected", Reason: "other_terminal"}
		default:
			raws = append(raws, raw)
			idx = append(idx, i)
		}
	}
	if len(raws) > 0 {
		out, err := s.ledger.Upload(c.ctx, c.who.org, raws)
		if err != nil {
			return err
		}
		for j, r := range out {
			tr := apitype.TxResult{Status: r.Status.String(), Reason: r.Reason}
			if r.ID != (txid.ID{}) {
				tr.ID = r.ID.String()
			}
			if r.Status == ledger.Rejected {
				tr.Reason = rejectReason(r.Err)
			}
			res[idx[j]] = tr
		}
	}
	counts := map[string]int{}
	for _, r := range res {
		counts[r.Status]++
	}
	c.detail = fmt.Sprintf("batch of %d: %v", len(res), counts)
	if err := s.refusedTaps(c, refused); err != nil {
		return err
	}
	if req.Synced != nil {
		if err := s.ledger.BlocklistSynced(c.ctx, c.who.org, c.who.terminal, *req.Synced); err != nil {
			return err
		}
	}
	if len(raws) > 0 || req.Synced != nil {
		s.settleReplacements(c)
	}
	bl, err := s.blocklistFor(c, c.who.org, req.Blocklist)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, apitype.BatchResponse{Results: res, Blocklist: bl})
}

// heartbeat records what the terminal says waits in its queue (nil: it
// said nothing). One that does not fit is a bad request.
func (s *Server) heartbeat(c *call, hb *apitype.Heartbeat) error {
	if hb == nil {
		return nil
	}
	if hb.OldestUnsent < 0 || hb.OldestUnsent > int64(ledger.MaxHeartbeatAge/time.Second) {
		return badRequest("heartbeat: oldest_unsent_s is 0 to "+strconv.FormatInt(int64(ledger.MaxHeartbeatAge/time.Second), 10), nil)
	}
	err := s.ledger.TerminalHeartbeat(c.ctx, c.who.org, c.who.terminal, s.now(), hb.Queued, time.Duration(hb.OldestUnsent)*time.Second)
	if errors.Is(err, ledger.ErrInvalid) {
		return badRequest("heartbeat: queued is 0 to "+strconv.Itoa(ledger.MaxHeartbeatQueue)+", and oldest_unsent_s 0 when none is queued", err)
	}
	return err
}
