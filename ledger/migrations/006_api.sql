-- The HTTPS API's own tables (api/): bearer tokens of staff and cardholder
-- profiles, the audit trail and alerts, terminal key-agreement keys and the
-- session keys delivered to terminals, request-signature nonces, PIN attempt
-- counters, cardholder profiles and refund requests. Secrets are stored only
-- as hashes; personal data only sealed with data-kek (keys.Envelope).

-- token_hash is SHA-256 of the bearer token; token_id is the first bytes of
-- it in hex, the name audit records use.
CREATE TABLE api_tokens (
    org_id     bigint NOT NULL,
    token_hash bytea NOT NULL,
    token_id   text NOT NULL,
    role       text NOT NULL CHECK (role IN ('hq', 'store', 'auditor', 'profile')),
    store_id   text,
    profile_id uuid,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (org_id, token_hash),
    CHECK ((role = 'store') = (store_id IS NOT NULL)),
    CHECK ((role = 'profile') = (profile_id IS NOT NULL))
);

-- One row per privileged or failed access: who, what, when, from where,
-- outcome. org_id is 0 when the caller's organizer is unknown.
CREATE TABLE api_audit (
    org_id      bigint NOT NULL,
    audit_id    bigint GENERATED ALWAYS AS IDENTITY,
    at          timestamptz NOT NULL,
    request_id  text NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL DEFAULT '',
    remote_addr text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    status      integer NOT NULL,
    detail      text NOT NULL DEFAULT '',
    PRIMARY KEY (org_id, audit_id)
);

CREATE TABLE api_alerts (
    org_id      bigint NOT NULL,
    alert_id    bigint GENERATED ALWAYS AS IDENTITY,
    kind        text NOT NULL,
    actor       text NOT NULL,
    remote_addr text NOT NULL,
    detail      text NOT NULL,
    raised_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, alert_id)
);

-- The key-agreement key a terminal enrolled beside its signing key (which
-- the ledger's terminals table holds).
CREATE TABLE api_terminal_keys (
    org_id      bigint NOT NULL,
    terminal_id text NOT NULL,
    kex_alg     text NOT NULL CHECK (kex_alg IN ('x25519', 'p256')),
    kex_public  bytea NOT NULL,
    enrolled_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, terminal_id)
);

-- Keys delivered to terminals: event debit keys (session) and per-card
-- credit keys, by id, with expiry and revocation. The keys themselves are
-- never stored.
CREATE TABLE api_session_keys (
    org_id      bigint NOT NULL,
    key_id      uuid NOT NULL,
    terminal_id text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('session', 'credit')),
    event_id    text NOT NULL,
    card_id     bytea,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (org_id, key_id)
);
CREATE INDEX api_session_keys_terminal ON api_session_keys (org_id, terminal_id);

-- Nonces of signed terminal requests, kept until the signature would be
-- stale anyway.
CREATE TABLE api_nonces (
    org_id      bigint NOT NULL,
    key_id      text NOT NULL,
    nonce       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, key_id, nonce)
);
CREATE INDEX api_nonces_expiry ON api_nonces (expires_at);

-- PIN attempts per card: failures since the last success, and the lock
-- (with its back-off) after too many.
CREATE TABLE api_pin_attempts (
    org_id       bigint NOT NULL,
    card_id      bytea NOT NULL,
    failures     integer NOT NULL DEFAULT 0,
    locks        integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    PRIMARY KEY (org_id, card_id)
);

-- Claimed cardholder profiles. email_hash finds a profile at login; the
-- address itself is sealed; the password is an argon2id hash.
CREATE TABLE api_profiles (
    org_id        bigint NOT NULL,
    profile_id    uuid NOT NULL,
    email_hash    bytea NOT NULL,
    email_sealed  jsonb NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, profile_id),
    UNIQUE (org_id, email_hash)
);

CREATE TABLE api_profile_cards (
    org_id     bigint NOT NULL,
    card_id    bytea NOT NULL,
    profile_id uuid NOT NULL,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, card_id)
);
CREATE INDEX api_profile_cards_profile ON api_profile_cards (org_id, profile_id);

-- Refund requests of cardholders, until the ledger pays them out. Payout
-- details are personal data, sealed; erasure deletes them.
CREATE TABLE api_refund_requests (
    org_id        bigint NOT NULL,
    request_id    uuid NOT NULL,
    card_id       bytea NOT NULL,
    amount        bigint NOT NULL CHECK (amount >= 0),
    payout_sealed jsonb,
    status        text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'paid', 'cancelled')),
    requested_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, request_id)
);
CREATE UNIQUE INDEX api_refund_requests_open ON api_refund_requests (org_id, card_id) WHERE status = 'requested';
