package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Vouchers: HQ issues them in batches (amount, expiry, single use); a
// voucher redeemed at a store or on the card page becomes a pending load
// of non-refundable credit (promotions → pending loads), written onto the
// card like any other load (LoadPending), which then counts it in the
// card's non-refundable part.

// ErrVoucher: the code is unknown, used, expired or of another event. The
// caller is not told which, so that codes cannot be probed.
var ErrVoucher = errors.New("ledger: voucher code unknown, used or expired")

// MaxVoucherBatch is the most vouchers one batch issues.
const MaxVoucherBatch = 10000

// VoucherCode is a voucher's one-time secret: shown once, when issued;
// the ledger keeps only a hash of it. It has no String method.
type VoucherCode struct {
	_ [0]func()
	b *[10]byte
}

// Reveal returns the code's printed form: four groups of four base32
// letters (80 bits).
func (v VoucherCode) Reveal() string {
	if v.b == nil {
		return ""
	}
	s := tokenEncoding.EncodeToString(v.b[:])
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
}

// ParseVoucherCode reads a code as printed, ignoring case, spaces and
// dashes.
func ParseVoucherCode(s string) (VoucherCode, error) {
	s = strings.NewReplacer("-", "", " ", "").Replace(strings.ToUpper(strings.TrimSpace(s)))
	if len(s) != 16 {
		return VoucherCode{}, ErrVoucher
	}
	b, err := tokenEncoding.DecodeString(s)
	if err != nil || len(b) != 10 {
		return VoucherCode{}, ErrVoucher
	}
	var k [10]byte
	copy(k[:], b)
	clear(b)
	return VoucherCode{b: &k}, nil
}

// hash binds the code to its organizer.
func (v VoucherCode) hash(org int64) []byte {
	if v.b == nil {
		return nil
	}
	var buf [8 + 10]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(org))
	copy(buf[8:], v.b[:])
	h := sha256.Sum256(buf[:])
	clear(buf[:])
	return h[:]
}

// VoucherBatch is a batch of vouchers HQ issues.
type VoucherBatch struct {
	Event   string
	Amount  int64 // each voucher's value
	Count   int
	Expires time.Time
	Label   string // what the vouchers are for (staff drinks, welcome credit)
	Actor   string // who issued them
}

// IssueVouchers issues a batch of single-use vouchers for an event and
// returns the batch id and the codes, which are not kept and cannot be
// shown again. It fails with ErrInvalid for a bad amount, count (1 to
// MaxVoucherBatch), expiry in the past or label, and ErrNotFound for an
// unknown event.
func (l *Ledger) IssueVouchers(ctx context.Context, org int64, b VoucherBatch) (txid.ID, []VoucherCode, error) {
	if err := errors.Join(input.Amount("amount", b.Amount), input.Text("label", b.Label, 200), input.Text("actor", b.Actor, 200)); err != nil {
		return txid.ID{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if b.Count < 1 || b.Count > MaxVoucherBatch {
		return txid.ID{}, nil, fmt.Errorf("%w: count must be 1 to %d", ErrInvalid, MaxVoucherBatch)
	}
	if !b.Expires.After(l.now()) {
		return txid.ID{}, nil, fmt.Errorf("%w: the vouchers must expire in the future", ErrInvalid)
	}
	if err := l.CheckEvent(ctx, org, b.Event); err != nil {
		return txid.ID{}, nil, err
	}
	id := l.newID()
	codes := make([]VoucherCode, b.Count)
	hashes := make([][]byte, b.Count)
	for i := range codes {
		var k [10]byte
		if _, err := rand.Read(k[:]); err != nil {
			return txid.ID{}, nil, err
		}
		codes[i] = VoucherCode{b: &k}
		hashes[i] = codes[i].hash(org)
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO voucher_batches (org_id, batch_id, event_id, amount, count, expires_at, label, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, org, pgtype.UUID{Bytes: id, Valid: true}, b.Event, b.Amount, b.Count,
			b.Expires, b.Label, b.Actor, l.now()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO vouchers (org_id, code_hash, batch_id) SELECT $1, h, $2 FROM unnest($3::bytea[]) h`,
			org, pgtype.UUID{Bytes: id, Valid: true}, hashes)
		return err
	})
	if err != nil {
		return txid.ID{}, nil, fmt.Errorf("ledger: issue vouchers: %w", err)
	}
	return id, codes, nil
}

// VoucherRedemption redeems a voucher for a card.
type VoucherRedemption struct {
	// ID is the load's id (an API idempotency key); zero: a new one.
	ID    txid.ID
	Card  []byte
	Code  VoucherCode
	Store string // the store that redeemed it; "" on the card page
	Actor string
}

// RedeemVoucher redeems a voucher for a card of its event: the voucher is
// used up and its value waits as a pending load of non-refundable credit
// (promotions → pending loads) until a store or station writes it onto the
// card (LoadPending). It returns the load's id and amount. Repeating a
// redemption with the same ID for the same card and code returns the same
// load. It fails with ErrVoucher for a code that is unknown, used (by
// this card or another), expired or of another event, ErrCardBlocked for
// a card that is not active and ErrNotFound for an unknown card or store.
func (l *Ledger) RedeemVoucher(ctx context.Context, org int64, r VoucherRedemption) (txid.ID, int64, error) {
	if err := input.Text("actor", r.Actor, 200); err != nil {
		return txid.ID{}, 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if r.ID == (txid.ID{}) {
		r.ID = l.newID()
	}
	h := r.Code.hash(org)
	if h == nil {
		return txid.ID{}, 0, fmt.Errorf("ledger: redeem voucher: %w", ErrVoucher)
	}
	var amount int64
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		st, err := lockCard(ctx, tx, org, r.Card)
		if err != nil {
			return err
		}
		var event string
		var expires time.Time
		var load pgtype.UUID
		var card []byte
		err = tx.QueryRow(ctx, `SELECT b.event_id, b.amount, b.expires_at, v.load_id, v.card_id FROM vouchers v
			JOIN voucher_batches b ON b.org_id = v.org_id AND b.batch_id = v.batch_id
			WHERE v.org_id = $1 AND v.code_hash = $2 FOR UPDATE OF v`, org, h).Scan(&event, &amount, &expires, &load, &card)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrVoucher
		case err != nil:
			return err
		case load.Valid:
			if txid.ID(load.Bytes) == r.ID && string(card) == string(r.Card) {
				return nil // the same redemption again
			}
			return ErrVoucher
		case event != st.event || !l.now().Before(expires):
			return ErrVoucher
		case st.status != "active":
			return fmt.Errorf("%w: %s", ErrCardBlocked, terminaltx.CardHex(r.Card))
		}
		if r.Store != "" {
			if err := l.CheckStore(ctx, org, r.Store); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE vouchers SET redeemed_at = $3, card_id = $4, load_id = $5, redeemed_by = $6
			WHERE org_id = $1 AND code_hash = $2`, org, h, l.now(), r.Card, pgtype.UUID{Bytes: r.ID, Valid: true}, r.Actor); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO topups (org_id, topup_id, card_id, channel, store_id, amount, nonrefundable, status, created_at)
			VALUES ($1, $2, $3, 'voucher', $4, $5, $5, 'pending', $6)`, org, pgtype.UUID{Bytes: r.ID, Valid: true}, r.Card, r.Store,
			amount, l.now()); err != nil {
			return err
		}
		promo, err := accountID(ctx, tx, org, Promotions, "")
		if err != nil {
			return err
		}
		pending, err := accountID(ctx, tx, org, PendingLoads, "")
		if err != nil {
			return err
		}
		e := entry{id: l.newID(), kind: "voucher", event: st.event, ref: r.ID.String(), at: l.now(), postings: transfer(promo, pending, amount)}
		return writeEntries(ctx, tx, org, []entry{e}, nil)
	})
	if err != nil {
		return txid.ID{}, 0, fmt.Errorf("ledger: redeem voucher: %w", err)
	}
	return r.ID, amount, nil
}

// VoucherBatchInfo is an issued batch of vouchers as HQ lists it: never
// its codes.
type VoucherBatchInfo struct {
	ID        txid.ID
	Event     string
	Amount    int64
	Count     int
	Redeemed  int
	Expires   time.Time
	Label     string
	CreatedBy string
	CreatedAt time.Time
}

// VoucherBatches lists the organizer's voucher batches, newest first, with
// how many of each were redeemed.
func (l *Ledger) VoucherBatches(ctx context.Context, org int64) ([]VoucherBatchInfo, error) {
	rows, err := l.pool.Query(ctx, `SELECT b.batch_id, b.event_id, b.amount, b.count,
			(SELECT count(*) FROM vouchers v WHERE v.org_id = b.org_id AND v.batch_id = b.batch_id AND v.redeemed_at IS NOT NULL)::int,
			b.expires_at, b.label, b.created_by, b.created_at
		FROM voucher_batches b WHERE b.org_id = $1 ORDER BY b.created_at DESC, b.batch_id LIMIT 1000`, org)
	if err != nil {
		return nil, fmt.Errorf("ledger: voucher batches: %w", err)
	}
	var id pgtype.UUID
	var b VoucherBatchInfo
	var out []VoucherBatchInfo
	_, err = pgx.ForEachRow(rows, []any{&id, &b.Event, &b.Amount, &b.Count, &b.Redeemed, &b.Expires, &b.Label, &b.CreatedBy, &b.CreatedAt},
		func() error {
			b.ID = txid.ID(id.Bytes)
			out = append(out, b)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("ledger: voucher batches: %w", err)
	}
	return out, nil
}
