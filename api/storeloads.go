package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/keydelivery"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
)

var errNoIdempotencyKey = badRequest("this route moves money: send an Idempotency-Key header (a UUID made once per request and sent again on every retry)", nil)

// idempotencyKey reads the request's Idempotency-Key header.
func idempotencyKey(r *http.Request) (txid.ID, error) {
	v := r.Header.Get(apitype.HeaderIdempotencyKey)
	if v == "" {
		return txid.ID{}, errNoIdempotencyKey
	}
	u, ok := parseUUID(v)
	if !ok || u.Bytes == ([16]byte{}) {
		return txid.ID{}, badRequest("the Idempotency-Key header must be a UUID", nil)
	}
	return txid.ID(u.Bytes), nil
}

func (s *Server) registerStoreKex(c *call) error {
	var req apitype.StoreKexRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	c.target = "store " + store
	if _, err := keydelivery.ParsePublicKey(req.Alg, req.PublicKey); err != nil {
		return badRequest("alg (x25519 or p256) and its public_key are required", err)
	}
	if _, err := s.pool.Exec(c.ctx, `INSERT INTO api_store_keys (org_id, store_id, kex_alg, kex_public, registered_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, store_id) DO UPDATE
		SET kex_alg = excluded.kex_alg, kex_public = excluded.kex_public, registered_at = excluded.registered_at`,
		c.who.org, store, req.Alg, req.PublicKey, s.now()); err != nil {
		return fmt.Errorf("api: store key: %w", err)
	}
	c.detail = "key-agreement key " + req.Alg
	return c.reply(http.StatusOK, map[string]string{"store": store, "alg": req.Alg})
}

// storeKex is the store's registered key-agreement key.
func (s *Server) storeKex(c *call, store string) (alg string, pub []byte, err error) {
	err = s.pool.QueryRow(c.ctx, `SELECT kex_alg, kex_public FROM api_store_keys WHERE org_id = $1 AND store_id = $2`,
		c.who.org, store).Scan(&alg, &pub)
	if err != nil {
		return "", nil, apiError(http.StatusConflict, "the store has no key-agreement key: run 'loopcard store init' at the store", err)
	}
	return alg, pub, nil
}

// wrapForStore derives the card's key of role, wraps it for the store with
// binding kind (and load), records its delivery, and returns it.
func (s *Server) wrapForStore(c *call, store string, card []byte, role personalize.Role, kind, load string) (*keydelivery.Wrapped, error) {
	alg, pub, err := s.storeKex(c, store)
	if err != nil {
		return nil, err
	}
	raw, event, used, err := s.deriveCardKey(c, card, role)
	if err != nil {
		return nil, err
	}
	id := newUUID()
	now := s.now()
	b := keydelivery.Binding{Kind: kind, Organizer: c.who.org, Store: store, Load: load, Event: event, Card: card,
		KeyID: uuidText(id), Expires: now.Add(s.limits.CreditKeyTTL).Truncate(time.Second)}
	w, err := keydelivery.Wrap(alg, pub, b, raw)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("api: wrap %s key: %w", kind, err)
	}
	if _, err := s.pool.Exec(c.ctx, `INSERT INTO api_session_keys (org_id, key_id, terminal_id, store_id, kind, event_id, card_id, issued_at, expires_at)
		VALUES ($1, $2, '', $3, $4, $5, $6, $7, $8)`, c.who.org, id, store, kind, event, card, now, b.Expires); err != nil {
		return nil, fmt.Errorf("api: record %s key: %w", kind, err)
	}
	c.detail += fmt.Sprintf("%s key %s from %s; ", kind, b.KeyID, used)
	return w, nil
}

// storeCreditKey delivers a card's credit key to a store for one pending
// load of the card: stores never hold a credit base key.
func (s *Server) storeCreditKey(c *call) error {
	store := c.r.PathValue("store")
	card, load, pl, err := s.creditKeyRequest(c)
	if err != nil {
		return err
	}
	credit, err := s.wrapForStore(c, store, card, personalize.RoleCredit, keydelivery.KindStoreCredit, uuidText(load))
	if err != nil {
		return err
	}
	read, err := s.wrapForStore(c, store, card, personalize.RoleRead, keydelivery.KindRead, uuidText(load))
	if err != nil {
		return err
	}
	return c.reply(http.StatusCreated, apitype.StoreCreditKeyResponse{Credit: *credit, Read: *read, Load: uuidText(load), Amount: pl.Amount})
}

// storeBalanceKey delivers a key with which the store reads a card's
// balance from the card. A credit it might make with it without a load
// is not in the ledger, and the card's next debit shows it as a chain
// that does not join (an alert that blocks the card).
func (s *Server) storeBalanceKey(c *call) error {
	var req apitype.BalanceKeyRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	card, ok := parseCardID(req.Card)
	if !ok {
		return badRequest("card (hex card id) is required", nil)
	}
	c.target = "card " + terminaltx.CardHex(card)
	if _, err := s.ledger.Card(c.ctx, c.who.org, card); err != nil {
		return err
	}
	w, err := s.wrapForStore(c, store, card, personalize.RoleCredit, keydelivery.KindBalance, "")
	if err != nil {
		return err
	}
	read, err := s.wrapForStore(c, store, card, personalize.RoleRead, keydelivery.KindRead, "")
	if err != nil {
		return err
	}
	return c.reply(http.StatusCreated, apitype.BalanceKeyResponse{Balance: *w, Read: *read})
}
