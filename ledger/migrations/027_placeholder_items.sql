-- PLACEHOLDER for branch i19c only: the lead deletes this file at merge.
-- Helper i19a's migration 027 creates terminal_tx_items (and menus) for
-- real; this is the same table, exactly as the issue 19 contract has it,
-- so that the product report (028, ledger/productreport.go) can be built
-- and tested beside it.
CREATE TABLE terminal_tx_items (
    org_id       bigint NOT NULL,
    txn_id       uuid NOT NULL,
    line         smallint NOT NULL,
    merchant_id  text NOT NULL,
    at           timestamptz NOT NULL,
    product_id   text NOT NULL,
    quantity     int NOT NULL,
    unit_price   bigint NOT NULL,
    vat_rate_bp  int NOT NULL,
    menu_version int NOT NULL,
    PRIMARY KEY (org_id, txn_id, line)
);
