package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

func (s *Server) addStore(c *call) error {
	var req apitype.StoreRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	c.target = "store " + req.Store
	if !terminaltx.ValidID(req.Store) {
		return badRequest("store (a-z 0-9 . _ -) and name are required", nil)
	}
	if err := input.Name("name", req.Name); err != nil {
		return err
	}
	if err := s.ledger.AddStore(c.ctx, c.who.org, req.Store, req.Name); err != nil {
		return err
	}
	return c.reply(http.StatusCreated, req)
}

func (s *Server) createTerminal(c *call) error {
	var req apitype.TerminalRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	c.target = "terminal " + req.Terminal
	const maxTTL = 30 * 24 * time.Hour
	ttl := 24 * time.Hour
	if req.TTL != 0 {
		// Checked before it is multiplied: 2^63-1 seconds would wrap.
		ttl = -1
		if req.TTL > 0 && req.TTL <= int64(maxTTL/time.Second) {
			ttl = time.Duration(req.TTL) * time.Second
		}
	}
	if !terminaltx.ValidID(req.Terminal) || !terminaltx.ValidID(req.Merchant) || ttl <= 0 || ttl > maxTTL ||
		(req.Event != "" && !terminaltx.ValidID(req.Event)) {
		return badRequest("terminal, merchant and a lifetime of at most 30 days are required", nil)
	}
	tok, err := s.ledger.RegisterTerminal(c.ctx, c.who.org, ledger.TerminalRegistration{Terminal: req.Terminal,
		Merchant: req.Merchant, Event: req.Event, TTL: ttl})
	switch {
	case errors.Is(err, ledger.ErrNoSuchMerchant):
		return apiError(http.StatusNotFound, "no such merchant", err)
	case errors.Is(err, ledger.ErrNoSuchEvent):
		return apiError(http.StatusNotFound, "no such event", err)
	case err != nil:
		return err
	}
	return c.reply(http.StatusCreated, apitype.TerminalResponse{Terminal: req.Terminal, EnrolmentToken: tok.Reveal(),
		TokenExpiresAt: s.now().Add(ttl), EnrolmentTarget: "/v1/terminals/enrol"})
}

func (s *Server) revokeTerminal(c *call) error {
	term := c.r.PathValue("terminal")
	c.target = "terminal " + term
	if err := s.ledger.RevokeTerminal(c.ctx, c.who.org, term); err != nil {
		return err
	}
	if _, err := s.pool.Exec(c.ctx, `UPDATE api_session_keys SET revoked_at = $3
		WHERE org_id = $1 AND terminal_id = $2 AND revoked_at IS NULL`, c.who.org, term, s.now()); err != nil {
		return fmt.Errorf("api: revoke session keys: %w", err)
	}
	return c.reply(http.StatusOK, map[string]string{"terminal": term, "status": "revoked"})
}

func (s *Server) revokeSessionKeys(c *call) error {
	term := c.r.PathValue("terminal")
	c.target = "terminal " + term
	tag, err := s.pool.Exec(c.ctx, `UPDATE api_session_keys SET revoked_at = $3
		WHERE org_id = $1 AND terminal_id = $2 AND revoked_at IS NULL AND expires_at > $3`, c.who.org, term, s.now())
	if err != nil {
		return fmt.Errorf("api: revoke session keys: %w", err)
	}
	return c.reply(http.StatusOK, map[string]any{"terminal": term, "revoked": tag.RowsAffected()})
}

func (s *Server) listBatches(c *call) error {
	bs, err := s.batches.List(c.ctx, c.who.org)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]any{"batches": bs})
}

// keyStatus shows the caller's organizer the keys that are its own: the
// debit key of each of its events, by base key version and KCV (issue 17
// M2). The platform's key list is not an organizer's to see.
func (s *Server) keyStatus(c *call) error {
	events, err := s.ledger.Events(c.ctx, c.who.org)
	if err != nil {
		return err
	}
	out := apitype.OrganizerKeysResponse{Keys: []apitype.OrganizerKey{}}
	for _, e := range events {
		key, used, err := s.hsm.EventDebitKey(c.ctx, keys.Label{Name: keys.AppDebit}, c.who.org, e.ID)
		if err != nil {
			return fmt.Errorf("api: event debit key of %s: %w", e.ID, err)
		}
		out.Keys = append(out.Keys, apitype.OrganizerKey{Event: e.ID, Kind: "event-debit", BaseKey: used.String(), KCV: key.KCV()})
		key.Destroy()
	}
	return c.reply(http.StatusOK, out)
}

func (s *Server) listAlerts(c *call) error {
	rows, err := s.pool.Query(c.ctx, `SELECT kind, actor, remote_addr, detail, raised_at FROM api_alerts
		WHERE org_id = $1 ORDER BY alert_id DESC LIMIT 1000`, c.who.org)
	if err != nil {
		return fmt.Errorf("api: alerts: %w", err)
	}
	out := []apitype.AlertRecord{}
	var a apitype.AlertRecord
	if _, err := pgx.ForEachRow(rows, []any{&a.Kind, &a.Actor, &a.Remote, &a.Detail, &a.RaisedAt}, func() error {
		a.Source = "api"
		out = append(out, a)
		return nil
	}); err != nil {
		return fmt.Errorf("api: alerts: %w", err)
	}
	la, err := s.ledger.Alerts(c.ctx, c.who.org)
	if err != nil {
		return err
	}
	for _, l := range la {
		out = append(out, alertRecord(l))
	}
	return c.reply(http.StatusOK, map[string]any{"alerts": out})
}

// alertRecord is a ledger alert as the API shows it.
func alertRecord(l ledger.Alert) apitype.AlertRecord {
	a := apitype.AlertRecord{Source: "ledger", ID: l.ID.String(), Kind: l.Kind, State: l.State(), Blocking: l.Blocking,
		Card: terminaltx.CardHex(l.Card), Detail: l.Detail, RaisedAt: l.RaisedAt}
	if r := l.Review; r != nil {
		a.ReviewedBy, a.ReviewReason, a.ReviewedAt = r.By, r.Reason, r.At
	}
	return a
}

// reviewAlert records HQ's review of one of its organizer's ledger alerts
// (body ReviewRequest): who, when and why. A reviewed alert lets its card
// be unblocked (unblockCard) or refunded.
func (s *Server) reviewAlert(c *call) error {
	var req apitype.ReviewRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	id, ok := parseUUID(c.r.PathValue("alert"))
	if !ok {
		return badRequest("the alert id must be a UUID (GET /v1/hq/alerts lists them)", nil)
	}
	c.target = "alert " + uuidText(id)
	a, err := s.ledger.ReviewAlert(c.ctx, c.who.org, txid.ID(id.Bytes), c.who.actor(), req.Reason)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such alert of this organizer: GET /v1/hq/alerts lists them", err)
	case errors.Is(err, ledger.ErrExists):
		return apiError(http.StatusConflict, "the alert was reviewed before: nothing was changed", err)
	case errors.Is(err, ledger.ErrInvalid):
		return badRequest("reason (1 to 500 characters of printable text) is required", err)
	case err != nil:
		return err
	}
	c.detail = fmt.Sprintf("reviewed %s alert of card %s: %s", a.Kind, terminaltx.CardHex(a.Card), req.Reason)
	return c.reply(http.StatusOK, alertRecord(a))
}

// listRefunds lists the organizer's refunds for HQ and auditors: those
// waiting for a payout first. Payees stay sealed.
func (s *Server) listRefunds(c *call) error {
	rs, waiting, err := s.ledger.Refunds(c.ctx, c.who.org, maxListed)
	if err != nil {
		return err
	}
	out := apitype.RefundsResponse{Waiting: waiting, Refunds: make([]apitype.RefundRecord, 0, len(rs))}
	for _, r := range rs {
		out.Refunds = append(out.Refunds, apitype.RefundRecord{ID: r.ID.String(), Card: terminaltx.CardHex(r.Card), Status: r.Status,
			Amount: r.Amount, RequestedAt: r.RequestedAt})
	}
	return c.reply(http.StatusOK, out)
}

// listHeldTxs lists the organizer's held terminal transactions to HQ and
// auditors: the debits the ledger keeps without posting them, and why.
func (s *Server) listHeldTxs(c *call) error {
	hs, total, err := s.ledger.HeldTxs(c.ctx, c.who.org, 1000)
	if err != nil {
		return err
	}
	out := apitype.HeldTxsResponse{Held: total, Transactions: make([]apitype.HeldTxRecord, 0, len(hs))}
	for _, h := range hs {
		out.Transactions = append(out.Transactions, apitype.HeldTxRecord{ID: h.ID.String(), Terminal: h.Terminal,
			Merchant: h.Merchant, Card: terminaltx.CardHex(h.Card), Amount: h.Amount, Reason: h.Reason, At: h.At, ReceivedAt: h.ReceivedAt})
	}
	return c.reply(http.StatusOK, out)
}

// hqCard shows one card of the organizer to HQ and auditors: its status,
// balance and latest payments and top-ups (as its holder sees them).
func (s *Server) hqCard(c *call) error {
	card, ok := parseCardID(c.r.PathValue("card"))
	if !ok {
		return badRequest("bad card id (hex)", nil)
	}
	c.target = "card " + terminaltx.CardHex(card)
	h, err := s.history(c, c.who.org, card)
	if errors.Is(err, ledger.ErrNotFound) {
		return apiError(http.StatusNotFound, "no such card of this organizer", err)
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, h)
}

// unblockCard sets a blocked card of the organizer active again (body
// ReviewRequest), once every alert that blocked it is reviewed.
func (s *Server) unblockCard(c *call) error {
	var req apitype.ReviewRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	card, ok := parseCardID(c.r.PathValue("card"))
	if !ok {
		return badRequest("bad card id (hex)", nil)
	}
	c.target = "card " + terminaltx.CardHex(card)
	err := s.ledger.UnblockCard(c.ctx, c.who.org, card, c.who.actor(), req.Reason)
	switch {
	case errors.Is(err, ledger.ErrNotReviewed):
		return apiError(http.StatusConflict, "an alert that blocked the card is not reviewed: review it first (POST /v1/hq/alerts/{alert}/review), nothing was changed", err)
	case errors.Is(err, ledger.ErrConflict):
		return apiError(http.StatusConflict, "the card is not blocked: nothing was changed", err)
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such card of this organizer", err)
	case errors.Is(err, ledger.ErrInvalid):
		return badRequest("reason (1 to 500 characters of printable text) is required", err)
	case err != nil:
		return err
	}
	c.detail = "unblocked: " + req.Reason
	return c.reply(http.StatusOK, apitype.UnblockResponse{Card: terminaltx.CardHex(card), Status: "active"})
}

// auditRecords exports the audit trail of the caller's organizer in pages
// of at most 1000, after the id given in ?after=.
func (s *Server) auditRecords(c *call) error {
	var after int64
	if a := c.r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after must be a record id", nil)
		}
		after = n
	}
	out, err := AuditRecords(c.ctx, s.pool, c.who.org, after)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]any{"records": out})
}

// ledgerCardWrite is the ledger's form of a card write; nil stays nil (not
// known).
func ledgerCardWrite(w *apitype.CardWrite) *ledger.CardWrite {
	if w == nil {
		return nil
	}
	return &ledger.CardWrite{Seq: w.Seq, Before: w.Before, After: w.After}
}

func parseCardID(s string) ([]byte, bool) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < terminaltx.MinCardIDLen || len(b) > terminaltx.MaxCardIDLen {
		return nil, false
	}
	return b, true
}

func (s *Server) cashTopUp(c *call) error {
	var req apitype.TopUpRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	card, ok := parseCardID(req.Card)
	if !ok {
		return badRequest("card (hex card id) and a positive amount are required", nil)
	}
	if err := input.Amount("amount", req.Amount); err != nil {
		return err
	}
	c.target = "card " + terminaltx.CardHex(card)
	in := ledger.CashTopUp{ID: c.idem, Store: store, Card: card, Amount: req.Amount}
	id, err := s.ledger.TopUpCash(c.ctx, c.who.org, in)
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("cash top-up %s of %d at %s", id, req.Amount, store)
	return c.reply(http.StatusCreated, apitype.MoneyResponse{ID: id.String(), Card: terminaltx.CardHex(card), Amount: req.Amount,
		Load: id.String(), Status: "pending"})
}

// maxListed is how many terminals or stores a list answers at most.
const maxListed = 10000

// terminalStatus is the status of ledger.TerminalRecord as the API has
// always named it: the ledger's table's own words.
var terminalStatus = map[string]string{
	ledger.TerminalCreated:  "pending",
	ledger.TerminalEnrolled: "active",
	ledger.TerminalRevoked:  "revoked",
}

// listTerminals lists the ledger's terminals with the API's key-agreement
// keys and current session keys.
func (s *Server) listTerminals(c *call) error {
	recs, err := s.ledger.Terminals(c.ctx, c.who.org)
	if err != nil {
		return fmt.Errorf("api: terminals: %w", err)
	}
	if len(recs) > maxListed {
		recs = recs[:maxListed]
	}
	type apiKeys struct {
		kexAlg   string
		sessions int
	}
	keysOf := map[string]apiKeys{}
	rows, err := s.pool.Query(c.ctx, `SELECT k.terminal_id, k.kex_alg, 0 FROM api_terminal_keys k WHERE k.org_id = $1
		UNION ALL
		SELECT sk.terminal_id, '', count(*) FROM api_session_keys sk WHERE sk.org_id = $1
			AND sk.kind = 'session' AND sk.revoked_at IS NULL AND sk.expires_at > $2 GROUP BY sk.terminal_id`, c.who.org, s.now())
	if err != nil {
		return fmt.Errorf("api: terminals: %w", err)
	}
	var term, alg string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&term, &alg, &n}, func() error {
		k := keysOf[term]
		if alg != "" {
			k.kexAlg = alg
		}
		k.sessions += n
		keysOf[term] = k
		return nil
	}); err != nil {
		return fmt.Errorf("api: terminals: %w", err)
	}
	out := make([]apitype.TerminalInfo, 0, len(recs))
	for _, r := range recs {
		k := keysOf[r.Terminal]
		out = append(out, apitype.TerminalInfo{Terminal: r.Terminal, Merchant: r.Merchant, Event: r.Event, Status: terminalStatus[r.Status],
			EnrolledAt: r.EnrolledAt, LastUpload: r.LastUpload, KexAlg: k.kexAlg, SessionKeys: k.sessions,
			HeartbeatAt: r.HeartbeatAt, Queued: r.Queued, OldestUnsentAt: r.OldestUnsent})
	}
	return c.reply(http.StatusOK, map[string]any{"terminals": out})
}

// listStores lists the ledger's stores and each store's cash balance.
func (s *Server) listStores(c *call) error {
	stores, err := s.ledger.Stores(c.ctx, c.who.org)
	if err != nil {
		return fmt.Errorf("api: stores: %w", err)
	}
	if len(stores) > maxListed {
		stores = stores[:maxListed]
	}
	out := make([]apitype.StoreInfo, 0, len(stores))
	for _, st := range stores {
		out = append(out, apitype.StoreInfo{Store: st.ID, Name: st.Name})
	}
	for i := range out {
		if out[i].Cash, err = s.ledger.Balance(c.ctx, c.who.org, ledger.StoreCash, out[i].Store); err != nil {
			return err
		}
	}
	return c.reply(http.StatusOK, map[string]any{"stores": out})
}
