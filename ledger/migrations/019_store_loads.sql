-- Stores write cash credit onto cards as loads, with per-load credit keys
-- delivered like a terminal's: HPKE to a key-agreement key the store
-- registered with its store token.
CREATE TABLE api_store_keys (
    org_id        bigint NOT NULL,
    store_id      text NOT NULL,
    kex_alg       text NOT NULL CHECK (kex_alg IN ('x25519', 'p256')),
    kex_public    bytea NOT NULL,
    registered_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, store_id)
);

-- Keys delivered to stores are recorded beside the terminals' (terminal_id
-- is then empty): a store's credit key for one load, its read key, and a
-- card key to read a balance.
ALTER TABLE api_session_keys ADD COLUMN store_id text NOT NULL DEFAULT '';
ALTER TABLE api_session_keys DROP CONSTRAINT api_session_keys_kind_check;
ALTER TABLE api_session_keys ADD CONSTRAINT api_session_keys_kind_check
    CHECK (kind IN ('session', 'credit', 'store_credit', 'read', 'balance'));
