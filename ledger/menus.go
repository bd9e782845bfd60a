package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/menu"
)

// Menus: HQ's products per merchant (package ledger/menu), versioned. Each
// SetMenu is a new version; the highest is the merchant's current menu,
// which its terminals fetch and which a deposit return is checked against.

// SetMenu validates products and stores them as the merchant's next menu
// version, recording actor as who set it. It fails with ErrInvalid (and
// menu.ErrInvalid) for a bad menu or actor and ErrNotFound for an unknown
// merchant.
func (l *Ledger) SetMenu(ctx context.Context, org int64, merchant string, products []menu.Product, actor string) (menu.Menu, error) {
	if err := menu.Validate(products); err != nil {
		return menu.Menu{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := input.Text("actor", actor, 200); err != nil || actor == "" {
		return menu.Menu{}, fmt.Errorf("%w: an actor is required", ErrInvalid)
	}
	body, err := json.Marshal(products)
	if err != nil {
		return menu.Menu{}, err
	}
	out := menu.Menu{Merchant: merchant, Products: products}
	err = l.inTx(ctx, func(tx pgx.Tx) error {
		// The merchant's row lock keeps its versions in turn.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM merchants WHERE org_id = $1 AND merchant_id = $2 FOR UPDATE`, org, merchant).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: merchant %s", ErrNotFound, merchant)
		}
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO menus (org_id, merchant_id, version, products, created_at, created_by)
			SELECT $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5 FROM menus WHERE org_id = $1 AND merchant_id = $2
			RETURNING version`, org, merchant, body, l.now(), actor).Scan(&out.Version)
	})
	if err != nil {
		return menu.Menu{}, fmt.Errorf("ledger: set menu: %w", dbError(err))
	}
	l.log.Info("ledger: menu set", "org", org, "merchant", merchant, "version", out.Version, "products", len(products), "by", actor)
	return out, nil
}

// Menu returns the merchant's current menu. It fails with ErrNotFound when
// the merchant has none.
func (l *Ledger) Menu(ctx context.Context, org int64, merchant string) (menu.Menu, error) {
	return l.menuVersion(ctx, l.pool, org, merchant, 0)
}

// MenuVersion returns version v of the merchant's menu (ErrNotFound when
// there is none).
func (l *Ledger) MenuVersion(ctx context.Context, org int64, merchant string, v int32) (menu.Menu, error) {
	if v <= 0 {
		return menu.Menu{}, fmt.Errorf("%w: menu version %d", ErrNotFound, v)
	}
	return l.menuVersion(ctx, l.pool, org, merchant, v)
}

// menuVersion reads version v of a merchant's menu, its current one when v is 0.
func (l *Ledger) menuVersion(ctx context.Context, q queryRower, org int64, merchant string, v int32) (menu.Menu, error) {
	m := menu.Menu{Merchant: merchant}
	var body []byte
	err := q.QueryRow(ctx, `SELECT version, products FROM menus WHERE org_id = $1 AND merchant_id = $2 AND ($3 = 0 OR version = $3)
		ORDER BY version DESC LIMIT 1`, org, merchant, v).Scan(&m.Version, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return menu.Menu{}, fmt.Errorf("%w: no menu of merchant %s", ErrNotFound, merchant)
	}
	if err != nil {
		return menu.Menu{}, fmt.Errorf("ledger: menu: %w", err)
	}
	if err := json.Unmarshal(body, &m.Products); err != nil {
		return menu.Menu{}, fmt.Errorf("ledger: menu %s v%d: %w", merchant, m.Version, err)
	}
	return m, nil
}
