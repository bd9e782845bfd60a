package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Lost and stolen cards: blocking a card at the request of HQ, a store
// or its holder, the organizer's versioned blocklist the terminals take
// as deltas (migration 024: a trigger on cards keeps it, so every block
// and unblock reaches it), how far each terminal has synced, and the taps
// terminals refused offline.

// Who blocks a card (BlockCard).
const (
	BlockByHQ         = "hq"
	BlockByStore      = "store"
	BlockByCardholder = "cardholder"
)

// BlockCard blocks an active card of the organizer at the request of
// actor (by: BlockByHQ, BlockByStore or BlockByCardholder; actor names
// the person or store), for reason (lost, stolen, ...): the card takes no
// more loads or refunds, and is on the organizer's blocklist, which
// terminals take with their next session key or upload answer and check
// offline. It returns the blocklist's version that lists the card. A card
// blocked already is not blocked again (its version is returned, with
// ErrExists); HQ unblocks it after review (UnblockCard). It fails with
// ErrNotFound for an unknown card, ErrConflict for a refunded or replaced
// card and ErrInvalid for a missing or bad reason.
func (l *Ledger) BlockCard(ctx context.Context, org int64, card []byte, by, actor, reason string) (uint64, error) {
	if err := checkReason(reason); err != nil {
		return 0, err
	}
	switch by {
	case BlockByHQ, BlockByStore, BlockByCardholder:
	default:
		return 0, fmt.Errorf("%w: blocked by %q", ErrInvalid, by)
	}
	var version uint64
	var again bool
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, card)
		if err != nil {
			return err
		}
		switch st.status {
		case "active":
		case "blocked":
			again = true
		default:
			return fmt.Errorf("%w: card %s is %s", ErrConflict, terminaltx.CardHex(card), st.status)
		}
		if !again {
			if _, err := tx.Exec(ctx, `UPDATE cards SET status = 'blocked' WHERE org_id = $1 AND card_id = $2`, org, card); err != nil {
				return err
			}
			if err := l.recordAlertAction(ctx, tx, org, card, nil, "block", by+" "+actor, reason, l.now()); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `SELECT version FROM card_blocklist WHERE org_id = $1 AND card_id = $2`, org, card).Scan(&version)
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: block card: %w", err)
	}
	if again {
		return version, fmt.Errorf("ledger: block card: %w: card %s is blocked already", ErrExists, terminaltx.CardHex(card))
	}
	l.log.Info("card blocked", "org", org, "card", terminaltx.CardHex(card), "by", by, "actor", actor, "blocklist", version)
	return version, nil
}

// BlocklistChange is what a terminal holding version Since of the
// organizer's blocklist needs to reach Version: the cards Listed and
// Unlisted since (when Since is 0, Listed is the whole list). All, when
// asked for, is the whole list at Version, from the same snapshot.
type BlocklistChange struct {
	Since, Version   uint64
	Listed, Unlisted [][]byte
	All              [][]byte
}

// Blocklist returns the change of the organizer's blocklist since version
// since (0: the whole list) up to its current version, and with all the
// whole list too. A since beyond the current version (a terminal that
// kept a list of a database since restored) is answered from 0.
func (l *Ledger) Blocklist(ctx context.Context, org int64, since uint64, all bool) (BlocklistChange, error) {
	var out BlocklistChange
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return out, fmt.Errorf("ledger: blocklist: %w", err)
	}
	defer tx.Rollback(ctx)
	var v int64
	err = tx.QueryRow(ctx, `SELECT version FROM card_blocklist_heads WHERE org_id = $1`, org).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return out, fmt.Errorf("ledger: blocklist: %w", err)
	}
	out.Version = uint64(v)
	if since > out.Version {
		since = 0
	}
	out.Since = since
	if since < out.Version {
		rows, err := tx.Query(ctx, `SELECT card_id, listed FROM card_blocklist WHERE org_id = $1 AND version > $2
			AND ($2 > 0 OR listed) ORDER BY card_id`, org, int64(since))
		if err != nil {
			return out, fmt.Errorf("ledger: blocklist: %w", err)
		}
		var card []byte
		var listed bool
		if _, err := pgx.ForEachRow(rows, []any{&card, &listed}, func() error {
			if listed {
				out.Listed = append(out.Listed, card)
			} else {
				out.Unlisted = append(out.Unlisted, card)
			}
			return nil
		}); err != nil {
			return out, fmt.Errorf("ledger: blocklist: %w", err)
		}
	}
	if all {
		if since == 0 {
			out.All = out.Listed
		} else {
			rows, err := tx.Query(ctx, `SELECT card_id FROM card_blocklist WHERE org_id = $1 AND listed ORDER BY card_id`, org)
			if err != nil {
				return out, fmt.Errorf("ledger: blocklist: %w", err)
			}
			if out.All, err = pgx.CollectRows(rows, pgx.RowTo[[]byte]); err != nil {
				return out, fmt.Errorf("ledger: blocklist: %w", err)
			}
		}
	}
	return out, nil
}

// BlocklistVersion is the organizer's current blocklist version (0: no
// card was ever listed).
func (l *Ledger) BlocklistVersion(ctx context.Context, org int64) (uint64, error) {
	var v int64
	err := l.pool.QueryRow(ctx, `SELECT version FROM card_blocklist_heads WHERE org_id = $1`, org).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ledger: blocklist version: %w", err)
	}
	return uint64(v), nil
}

// BlocklistSynced records that every transaction terminal took while its
// blocklist was older than version has reached the ledger: its upload
// that emptied its queue said so. A version beyond the organizer's
// current one is not believed.
func (l *Ledger) BlocklistSynced(ctx context.Context, org int64, terminal string, version uint64) error {
	_, err := l.pool.Exec(ctx, `UPDATE terminals SET blocklist_synced = least($3,
			coalesce((SELECT version FROM card_blocklist_heads WHERE org_id = $1), 0))
		WHERE org_id = $1 AND terminal_id = $2 AND blocklist_synced < $3`, org, terminal, int64(version))
	if err != nil {
		return fmt.Errorf("ledger: blocklist synced: %w", err)
	}
	return nil
}

// RefusedTap is a tap a terminal refused offline because the card was on
// its blocklist.
type RefusedTap struct {
	ID        txid.ID
	Card      []byte
	At        time.Time
	Blocklist uint64 // the version of the terminal's list
}

// RecordRefusedTaps records the refused taps a terminal uploaded; a tap
// recorded before is not recorded again. It returns how many were new.
func (l *Ledger) RecordRefusedTaps(ctx context.Context, org int64, terminal string, taps []RefusedTap) (int, error) {
	if len(taps) == 0 {
		return 0, nil
	}
	ids := make([]pgtype.UUID, len(taps))
	cards := make([][]byte, len(taps))
	ats := make([]time.Time, len(taps))
	vers := make([]int64, len(taps))
	for i, t := range taps {
		if len(t.Card) < 4 || len(t.Card) > 10 {
			return 0, fmt.Errorf("%w: refused tap %s: card id of %d bytes", ErrInvalid, t.ID, len(t.Card))
		}
		ids[i], cards[i], ats[i], vers[i] = pgtype.UUID{Bytes: t.ID, Valid: true}, t.Card, t.At, int64(t.Blocklist)
	}
	tag, err := l.pool.Exec(ctx, `INSERT INTO terminal_refused_taps (org_id, tap_id, terminal_id, card_id, at, blocklist_version)
		SELECT $1, u.id, $2, u.card, u.at, u.v FROM unnest($3::uuid[], $4::bytea[], $5::timestamptz[], $6::bigint[]) u(id, card, at, v)
		ON CONFLICT (org_id, tap_id) DO NOTHING`, org, terminal, ids, cards, ats, vers)
	if err != nil {
		return 0, fmt.Errorf("ledger: refused taps: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		l.log.Warn("terminal refused blocked cards", "org", org, "terminal", terminal, "taps", n)
	}
	return int(tag.RowsAffected()), nil
}

// RefusedTaps counts the taps of card that terminals refused offline.
func (l *Ledger) RefusedTaps(ctx context.Context, org int64, card []byte) (int, error) {
	var n int
	err := l.pool.QueryRow(ctx, `SELECT count(*) FROM terminal_refused_taps WHERE org_id = $1 AND card_id = $2`, org, card).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("ledger: refused taps: %w", err)
	}
	return n, nil
}
