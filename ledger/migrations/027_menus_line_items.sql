-- Menus and line items (issue 19).
--
-- menus: HQ's products per merchant, versioned: each set is a new version
-- (1, 2, ...), the highest is current. Products are kept as the JSON the
-- ledger validated (package ledger/menu). No foreign key (docs/scale.md):
-- the ledger sets a menu under its merchant's row lock.
CREATE TABLE menus (
    org_id      bigint NOT NULL,
    merchant_id text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    products    jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    created_by  text NOT NULL,
    PRIMARY KEY (org_id, merchant_id, version)
);

-- terminal_tx_items: the line items of a terminal transaction of version 2
-- (terminaltx), one row per line, and those of a deposit return. at is the
-- transaction's terminal time and merchant_id its merchant, copied so that
-- a product report reads this table alone. No foreign key: rows are written
-- with their transactions on the upload path.
CREATE TABLE terminal_tx_items (
    org_id       bigint NOT NULL,
    txn_id       uuid NOT NULL,
    line         smallint NOT NULL CHECK (line >= 0),
    merchant_id  text NOT NULL,
    at           timestamptz NOT NULL,
    product_id   text NOT NULL,
    quantity     integer NOT NULL CHECK (quantity <> 0),
    unit_price   bigint NOT NULL CHECK (unit_price >= 0),
    vat_rate_bp  integer NOT NULL CHECK (vat_rate_bp BETWEEN 0 AND 10000),
    menu_version integer NOT NULL,
    PRIMARY KEY (org_id, txn_id, line)
);

-- A net-negative basket (returned cups only) is credited to its card as a
-- pending load, like a correction.
ALTER TABLE topups DROP CONSTRAINT topups_channel_check;
ALTER TABLE topups ADD CONSTRAINT topups_channel_check CHECK (channel IN ('cash', 'online', 'transfer', 'voucher', 'correction', 'deposit_return'));
