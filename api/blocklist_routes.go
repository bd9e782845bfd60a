package api

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/blocklist"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize/batch"
)

// Lost and stolen cards (issue 21): blocking a card from HQ, a store's
// desk or the cardholder; the signed blocklist delta every session-key
// and upload answer carries; refused taps; replacing a card with its
// balance at a store.

// signedList is hq-sign's signature over one version of an organizer's
// blocklist; it changes only with the version, so it is kept.
type signedList struct {
	version uint64
	count   int
	sig     []byte
}

// blocklists keeps the newest signed version of each organizer's list.
type blocklists struct {
	mu sync.Mutex
	m  map[int64]signedList
}

func (b *blocklists) get(org int64, version uint64) (signedList, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.m[org]
	return s, ok && s.version == version
}

func (b *blocklists) put(org int64, s signedList) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[int64]signedList{}
	}
	if s.version >= b.m[org].version {
		b.m[org] = s
	}
}

// hqKeyDER is hq-sign's public key as terminals pin it (nil without
// hq-sign).
func (s *Server) hqKeyDER() []byte {
	if s.hqSign == nil {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(s.hqSign.Public())
	if err != nil {
		s.log.Error("api: hq-sign public key", "err", err)
		return nil
	}
	return der
}

// blocklistFor returns the delta that takes a terminal of org from the
// version it holds (have; nil: it asks for none) to the current one, or
// nil when it holds the current one (or without hq-sign).
func (s *Server) blocklistFor(c *call, org int64, have *uint64) (*apitype.Blocklist, error) {
	if have == nil || s.hqSign == nil {
		return nil, nil
	}
	// Most answers find the terminal up to date: one statement.
	if v, err := s.ledger.BlocklistVersion(c.ctx, org); err != nil || v == 0 || v == *have {
		return nil, err
	}
	ch, err := s.ledger.Blocklist(c.ctx, org, *have, false)
	if err != nil {
		return nil, err
	}
	if ch.Version == 0 || ch.Version == *have {
		return nil, nil
	}
	signed, ok := s.blocklist.get(org, ch.Version)
	if !ok {
		// A new version: read the whole list (and the delta again, from
		// the same snapshot) and sign it once.
		if ch, err = s.ledger.Blocklist(c.ctx, org, *have, true); err != nil {
			return nil, err
		}
		enc := blocklist.Encode(ch.All)
		signed = signedList{version: ch.Version, count: len(ch.All)}
		st := blocklist.Statement(org, ch.Version, signed.count, sha256.Sum256(enc))
		if signed.sig, err = blocklist.Sign(s.hqSign, st); err != nil {
			return nil, fmt.Errorf("api: sign blocklist: %w", err)
		}
		s.blocklist.put(org, signed)
	}
	return &apitype.Blocklist{From: ch.Since, Version: ch.Version, Add: blocklist.Encode(ch.Listed),
		Remove: blocklist.Encode(ch.Unlisted), Count: signed.count, Signature: signed.sig}, nil
}

// parseRefused checks the refused taps of an upload.
func parseRefused(taps []apitype.RefusedTap) ([]ledger.RefusedTap, error) {
	if len(taps) > MaxBatch {
		return nil, badRequest(fmt.Sprintf("at most %d refused taps per upload", MaxBatch), nil)
	}
	out := make([]ledger.RefusedTap, len(taps))
	for i, t := range taps {
		id, ok := parseUUID(t.ID)
		card, okc := parseCardID(t.Card)
		if !ok || !okc || t.At.IsZero() {
			return nil, badRequest("a refused tap needs an id (UUID), a card (hex) and a time", nil)
		}
		out[i] = ledger.RefusedTap{ID: txid.ID(id.Bytes), Card: card, At: t.At, Blocklist: t.Blocklist}
	}
	return out, nil
}

// refusedTaps records the taps a terminal refused offline.
func (s *Server) refusedTaps(c *call, taps []ledger.RefusedTap) error {
	if len(taps) == 0 {
		return nil
	}
	n, err := s.ledger.RecordRefusedTaps(c.ctx, c.who.org, c.who.terminal, taps)
	if err != nil {
		return err
	}
	c.detail += fmt.Sprintf("; %d refused taps (%d new)", len(taps), n)
	return nil
}

// errBlockNotActive is the public refusal to block a refunded or
// replaced card (the card pages match it).
const errBlockNotActive = "the card is refunded or replaced: it is on the blocklist already, nothing was changed"

// block blocks card for the caller (by, see ledger.BlockCard).
func (s *Server) block(c *call, card []byte, by string) error {
	var req apitype.BlockRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	c.target = "card " + terminaltx.CardHex(card)
	v, err := s.ledger.BlockCard(c.ctx, c.who.org, card, by, c.who.actor(), req.Reason)
	again := errors.Is(err, ledger.ErrExists)
	switch {
	case again:
	case errors.Is(err, ledger.ErrConflict):
		return apiError(http.StatusConflict, errBlockNotActive, err)
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such card of this organizer", err)
	case errors.Is(err, ledger.ErrInvalid):
		return badRequest("reason (1 to 500 characters of printable text, such as lost or stolen) is required", err)
	case err != nil:
		return err
	}
	c.detail = fmt.Sprintf("blocked (%s, blocklist %d): %s", by, v, req.Reason)
	return c.reply(http.StatusOK, apitype.BlockResponse{Card: terminaltx.CardHex(card), Status: "blocked", Blocklist: v, Again: again})
}

func (s *Server) hqBlockCard(c *call) error {
	card, ok := parseCardID(c.r.PathValue("card"))
	if !ok {
		return badRequest("bad card id (hex)", nil)
	}
	return s.block(c, card, ledger.BlockByHQ)
}

func (s *Server) storeBlockCard(c *call) error {
	card, ok := parseCardID(c.r.PathValue("card"))
	if !ok {
		return badRequest("bad card id (hex)", nil)
	}
	return s.block(c, card, ledger.BlockByStore)
}

// cardBlock blocks the caller's own card (QR token and PIN).
func (s *Server) cardBlock(c *call) error {
	return s.block(c, c.who.card, ledger.BlockByCardholder)
}

// profileBlock blocks a card the caller's profile claimed.
func (s *Server) profileBlock(c *call) error {
	card, _ := parseCardID(c.r.PathValue("card"))
	return s.block(c, card, ledger.BlockByCardholder)
}

// replaceCard replaces a lost or stolen card with a new one at a store:
// the new card takes the old one's balance, less the organizer's hold,
// as a pending load the store writes at once.
func (s *Server) replaceCard(c *call) error {
	var req apitype.ReplaceRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	store := c.r.PathValue("store")
	old, ok1 := parseCardID(req.Old)
	nw, ok2 := parseCardID(req.New)
	if !ok1 || !ok2 {
		return badRequest("old and new (hex card ids) and a reason are required", nil)
	}
	c.target = "card " + terminaltx.CardHex(old)
	// The store must hold the new card by the custody log, as for a sale
	// (issue 17): a card of a batch it received and has not sold out.
	no, slot, err := s.batches.CardSlot(c.ctx, c.who.org, nw)
	if errors.Is(err, batch.ErrNotFound) {
		return apiError(http.StatusConflict, "the new card was not personalized in a batch of this organizer: no store holds it, nothing was changed", err)
	}
	if err != nil {
		return err
	}
	r, err := s.ledger.ReplaceCard(c.ctx, c.who.org, ledger.ReplaceRequest{ID: c.idem, Old: old, New: nw, Store: store,
		Batch: no, Slot: slot, Actor: c.who.actor(), Reason: req.Reason})
	switch {
	case errors.Is(err, ledger.ErrNotInStock):
		c.detail = fmt.Sprintf("replacement refused: store %s does not hold new card %d-%05d", store, no, slot)
		return apiError(http.StatusConflict, fmt.Sprintf("store %s does not hold the new card by the custody log (it is in another store's run of cards, or the store has no card of batch %d received and unsold): nothing was changed; replace with a card handed over to this store (loopcard handover send, then the store's receipt)", store, no), err)
	case errors.Is(err, ledger.ErrExists):
		return apiError(http.StatusConflict, "the old card was replaced before: nothing was changed", err)
	case errors.Is(err, ledger.ErrConflict):
		return apiError(http.StatusConflict, "the old card is refunded, or the new card is not an active card of the same event: nothing was changed", err)
	case errors.Is(err, ledger.ErrNotFound):
		return apiError(http.StatusNotFound, "no such card of this organizer", err)
	case errors.Is(err, ledger.ErrInvalid):
		return badRequest("two different cards and a reason (1 to 500 characters of printable text) are required", err)
	case err != nil:
		return err
	}
	out := apitype.ReplaceResponse{ID: r.ID.String(), Old: terminaltx.CardHex(old), New: terminaltx.CardHex(nw),
		Balance: r.Balance, Hold: r.Hold, Blocklist: r.Blocklist}
	if r.FirstLoad != (txid.ID{}) {
		out.Load, out.Amount = r.FirstLoad.String(), r.Balance-r.Hold
	}
	c.detail = fmt.Sprintf("replaced by card %s at %s: balance %d, hold %d, blocklist %d", out.New, store, r.Balance, r.Hold, r.Blocklist)
	return c.reply(http.StatusCreated, out)
}

// settleReplacements moves the holds of the organizer's replacements that
// are due after an upload; a failure is logged, the next upload tries
// again.
func (s *Server) settleReplacements(c *call) {
	window := s.limits.ReplacementWindow
	if _, err := s.ledger.SettleReplacements(c.ctx, c.who.org, window); err != nil {
		s.log.Error("api: settle replacements", "org", c.who.org, "err", err)
	}
}
