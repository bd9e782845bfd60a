package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/keys/keyderiv"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
)

// pendingLoads lists a card's pending loads (paid online, not yet on the
// card), as the ledger has them, after an auto top-up the tap triggered
// (autoTopUp).
func (s *Server) pendingLoads(c *call) error {
	card, ok := parseCardID(c.r.URL.Query().Get("card"))
	if !ok {
		return badRequest("card (hex card id) is required", nil)
	}
	s.autoTopUp(c, card)
	loads, err := s.ledger.PendingLoads(c.ctx, c.who.org, card)
	if err != nil {
		return err
	}
	out := apitype.PendingLoadsResponse{Loads: make([]apitype.PendingLoad, len(loads))}
	for i, l := range loads {
		out.Loads[i] = apitype.PendingLoad{ID: l.ID.String(), Card: terminaltx.CardHex(card), Amount: l.Amount, CreatedAt: l.At}
	}
	if out.Balance, err = s.ledger.CardBalance(c.ctx, c.who.org, card); err != nil {
		return err
	}
	return c.reply(http.StatusOK, out)
}

// pendingLoad finds load among the card's pending loads.
func (s *Server) pendingLoad(c *call, card []byte, load txid.ID) (ledger.PendingLoad, error) {
	loads, err := s.ledger.PendingLoads(c.ctx, c.who.org, card)
	if err != nil {
		return ledger.PendingLoad{}, err
	}
	for _, l := range loads {
		if l.ID == load {
			return l, nil
		}
	}
	return ledger.PendingLoad{}, apiError(http.StatusConflict, "no such pending load for this card", nil)
}

// loadWritten records that a pending load is on its card (body
// LoadWrittenRequest): pending loads → card, joining the card's sequence
// and balance chain. The one confirmation of terminals and stores.
// Confirming it again does nothing; a write whose balances do not add the
// load's amount is refused and changes nothing.
func (s *Server) loadWritten(c *call) error {
	var req apitype.LoadWrittenRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	card, ok := parseCardID(req.Card)
	load, ok2 := parseUUID(c.r.PathValue("load"))
	if !ok || !ok2 {
		return badRequest("card (hex card id) and a load id are required", nil)
	}
	c.target = "card " + terminaltx.CardHex(card)
	err := s.ledger.LoadPending(c.ctx, c.who.org, card, txid.ID(load.Bytes), ledgerCardWrite(req.Write))
	switch {
	case errors.Is(err, ledger.ErrWriteMismatch):
		return apiError(http.StatusConflict, "the card write's balances do not add the load's amount: nothing was changed", err)
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such load for this card", err)
	case err != nil:
		return err
	}
	c.detail = "load " + uuidText(load) + " written"
	if st := c.r.PathValue("store"); st != "" {
		c.detail += " by store " + st
	}
	return c.reply(http.StatusOK, map[string]string{"load": uuidText(load), "status": "loaded"})
}

// creditKeyRequest reads a credit-key request (body CreditKeyRequest: a
// card and one of its pending loads), for terminals and stores alike, and
// finds the load among the card's pending loads.
func (s *Server) creditKeyRequest(c *call) (card []byte, load pgtype.UUID, pl ledger.PendingLoad, err error) {
	var req apitype.CreditKeyRequest
	if err = c.decode(&req); err != nil {
		return nil, load, pl, err
	}
	card, ok := parseCardID(req.Card)
	load, ok2 := parseUUID(req.Load)
	if !ok || !ok2 {
		return nil, load, pl, badRequest("card (hex card id) and load (UUID) are required", nil)
	}
	c.target = "card " + terminaltx.CardHex(card)
	pl, err = s.pendingLoad(c, card, txid.ID(load.Bytes))
	return card, load, pl, err
}

// creditKey derives a card's credit key in the HSM for one pending load and
// delivers it wrapped, for a minute: a terminal never holds a credit base
// key, and a credit key only for a card with a load waiting.
func (s *Server) creditKey(c *call) error {
	card, load, pl, err := s.creditKeyRequest(c)
	if err != nil {
		return err
	}
	amount := pl.Amount
	kexAlg, kexPub, err := s.terminalKex(c)
	if err != nil {
		return err
	}
	raw, event, used, err := s.deriveCardKey(c, card, personalize.RoleCredit)
	if err != nil {
		return err
	}
	id := newUUID()
	now := s.now()
	b := keydelivery.Binding{Kind: keydelivery.KindCredit, Organizer: c.who.org, Terminal: c.who.terminal, Event: event,
		Card: card, KeyID: uuidText(id), Expires: now.Add(s.limits.CreditKeyTTL).Truncate(time.Second)}
	w, err := keydelivery.Wrap(kexAlg, kexPub, b, raw)
	clear(raw)
	if err != nil {
		return fmt.Errorf("api: wrap credit key: %w", err)
	}
	if _, err := s.pool.Exec(c.ctx, `INSERT INTO api_session_keys (org_id, key_id, terminal_id, kind, event_id, card_id, issued_at, expires_at)
		VALUES ($1, $2, $3, 'credit', $4, $5, $6, $7)`, c.who.org, id, c.who.terminal, event, card, now, b.Expires); err != nil {
		return fmt.Errorf("api: record credit key: %w", err)
	}
	c.detail = fmt.Sprintf("credit key %s from %s for load %s", b.KeyID, used, uuidText(load))
	return c.reply(http.StatusCreated, apitype.CreditKeyResponse{Wrapped: *w, Load: uuidText(load), Amount: amount})
}

// deriveCardKey derives the card's application key of role in the HSM
// from the base key and version the card was personalized with, and
// returns its bytes (the caller clears them), the card's event and the
// base key used.
func (s *Server) deriveCardKey(c *call, card []byte, role personalize.Role) ([]byte, string, keys.Label, error) {
	// The card's layout and key versions, as personalized.
	ck, err := s.batches.CardKeys(c.ctx, c.who.org, card)
	if errors.Is(err, batch.ErrNotFound) {
		return nil, "", keys.Label{}, apiError(http.StatusNotFound, "card not personalized here", nil)
	}
	if err != nil {
		return nil, "", keys.Label{}, fmt.Errorf("api: card layout: %w", err)
	}
	layout, versions, event := ck.Layout, ck.KeyVersions, ck.Event
	k, ok := layout.Key(role)
	if !ok {
		return nil, "", keys.Label{}, apiError(http.StatusConflict, "the card's layout has no "+string(role)+" key", nil)
	}
	m, err := keyderiv.DiversificationInput(card, layout.AID[:], []byte(layout.SystemID))
	if err != nil {
		return nil, "", keys.Label{}, badRequest("card cannot be diversified", err)
	}
	key, used, err := s.hsm.Diversify(c.ctx, keys.Label{Name: k.Base, Version: versions[k.Base]}, m)
	if err != nil {
		return nil, "", keys.Label{}, fmt.Errorf("api: %s key: %w", role, err)
	}
	defer key.Destroy()
	return key.Bytes(), event, used, nil
}
