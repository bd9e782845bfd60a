-- Named staff accounts for the HQ console (issue 20): who signs in, with
-- which role, and the sessions their browsers hold. API staff tokens
-- (api_tokens) stay for machines.
--
-- password_hash: argon2id, encoded as the profiles' passwords are.
-- totp_envelope: the TOTP (RFC 6238) secret, sealed by the HSM's data-kek
-- (keys.Envelope as JSON), bound to the organizer and the name; required
-- for hq. totp_step: the last time step a code was accepted at, so that a
-- code is good once. failed_logins and locked_until: the per-account
-- back-off after wrong passwords or codes.
CREATE TABLE api_staff (
    org_id        bigint NOT NULL,
    name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    role          text NOT NULL CHECK (role IN ('hq', 'store', 'auditor')),
    store_id      text,
    password_hash text NOT NULL,
    totp_envelope jsonb,
    totp_step     bigint NOT NULL DEFAULT 0,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL,
    disabled_at   timestamptz,
    PRIMARY KEY (org_id, name),
    CHECK ((role = 'store') = (store_id IS NOT NULL)),
    CHECK (role <> 'hq' OR totp_envelope IS NOT NULL)
);

-- A signed-in browser: the session cookie's SHA-256, its idle and
-- absolute expiry. Ended sessions stay until the janitor removes them.
-- Keyed by organizer first and without a foreign key, as every table
-- (docs/scale.md); a session is found by its hash alone (32 random bytes
-- hashed: unique in practice), through its own index.
CREATE TABLE api_staff_sessions (
    org_id       bigint NOT NULL,
    session_hash bytea NOT NULL CHECK (length(session_hash) = 32),
    name         text NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    PRIMARY KEY (org_id, session_hash)
);
CREATE INDEX api_staff_sessions_hash ON api_staff_sessions (session_hash);
CREATE INDEX api_staff_sessions_staff ON api_staff_sessions (org_id, name);
