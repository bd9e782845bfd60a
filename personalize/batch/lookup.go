package batch

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/personalize"
)

// TokenCard is a finished card as its QR token finds it: the card and the
// PIN verification value written with it.
type TokenCard struct {
	Org int64
	UID []byte
	// PVVKeyVersion and PVV are the PIN verification value (keys.PVV).
	PVVKeyVersion int
	PVV           []byte
}

// CardByTokenHash returns the finished card whose QR token hashes to hash.
// Errors wrap ErrNotFound when no finished card has it.
func (s *Batches) CardByTokenHash(ctx context.Context, hash []byte) (TokenCard, error) {
	var c TokenCard
	err := s.pool.QueryRow(ctx, `SELECT org_id, uid, pvv_key_version, pvv FROM batch_cards
		WHERE token_hash = $1 AND status = 'done'`, hash).Scan(&c.Org, &c.UID, &c.PVVKeyVersion, &c.PVV)
	if errors.Is(err, pgx.ErrNoRows) {
		return TokenCard{}, fmt.Errorf("%w: card token", ErrNotFound)
	}
	if err != nil {
		return TokenCard{}, fmt.Errorf("batch: card by token: %w", err)
	}
	return c, nil
}

// CardKeys is how a finished card was personalized: its batch's layout
// and event, and the base key versions its keys were diversified from.
type CardKeys struct {
	Layout      personalize.Layout
	KeyVersions map[string]int
	Event       string
}

// CardKeys returns how the organizer's finished card uid was
// personalized. Errors wrap ErrNotFound when no finished card of the
// organizer has the UID.
func (s *Batches) CardKeys(ctx context.Context, orgID int64, uid []byte) (CardKeys, error) {
	var k CardKeys
	err := s.pool.QueryRow(ctx, `SELECT b.layout, c.key_versions, b.event_id FROM batch_cards c
		JOIN card_batches b ON b.org_id = c.org_id AND b.batch_no = c.batch_no
		WHERE c.org_id = $1 AND c.uid = $2 AND c.status = 'done'`, orgID, uid).Scan(&k.Layout, &k.KeyVersions, &k.Event)
	if errors.Is(err, pgx.ErrNoRows) {
		return CardKeys{}, fmt.Errorf("%w: card %X of organizer %d", ErrNotFound, uid, orgID)
	}
	if err != nil {
		return CardKeys{}, fmt.Errorf("batch: card keys: %w", err)
	}
	return k, nil
}

// CardSlot returns the batch and the slot in which the organizer's
// finished card uid was personalized. Errors wrap ErrNotFound when no
// finished card of the organizer has the UID.
func (s *Batches) CardSlot(ctx context.Context, orgID int64, uid []byte) (no int64, slot int, err error) {
	err = s.pool.QueryRow(ctx, `SELECT batch_no, slot FROM batch_cards WHERE org_id = $1 AND uid = $2 AND status = 'done'`,
		orgID, uid).Scan(&no, &slot)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("%w: card %X of organizer %d", ErrNotFound, uid, orgID)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("batch: card slot: %w", err)
	}
	return no, slot, nil
}
