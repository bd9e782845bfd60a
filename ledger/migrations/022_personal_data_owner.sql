-- Personal data stays with its owner (issue 17, point 5).

-- A refund request names the profile that made it. One made with the
-- card's QR token and PIN names none: it is the data of whoever held the
-- card then, and no profile that claims the card later exports or erases
-- it. Requests made after a claim were made through the profile.
ALTER TABLE api_refund_requests ADD COLUMN profile_id uuid;
UPDATE api_refund_requests r SET profile_id = pc.profile_id
    FROM api_profile_cards pc
    WHERE pc.org_id = r.org_id AND pc.card_id = r.card_id AND r.requested_at >= pc.claimed_at;
CREATE INDEX api_refund_requests_profile ON api_refund_requests (org_id, profile_id)
    WHERE profile_id IS NOT NULL;

-- A profile's email is found by an HSM-keyed MAC (key email-mac) instead
-- of a plain SHA-256. A migration cannot ask the HSM: rows keep their
-- SHA-256 with version 0 here, and `loopcard serve` MACs them again from
-- the sealed email before it listens (api.Server.RehashEmails).
ALTER TABLE api_profiles RENAME COLUMN email_hash TO email_mac;
ALTER TABLE api_profiles RENAME CONSTRAINT api_profiles_org_id_email_hash_key TO api_profiles_org_id_email_mac_key;
ALTER TABLE api_profiles ADD COLUMN email_mac_version integer NOT NULL DEFAULT 0
    CHECK (email_mac_version >= 0);

-- Password guesses are limited per profile, whatever their address:
-- after MaxLoginFailures wrong passwords the profile refuses every
-- password until login_locked_until, a lock that doubles each time.
ALTER TABLE api_profiles ADD COLUMN login_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN login_locks integer NOT NULL DEFAULT 0,
    ADD COLUMN login_locked_until timestamptz;

-- An online top-up is known to the payment provider by an opaque checkout
-- id, never by the card's QR token: the return address names the
-- checkout, which maps to the card here until it expires.
CREATE TABLE api_checkouts (
    org_id      bigint NOT NULL,
    checkout_id text NOT NULL,
    card_id     bytea NOT NULL,
    amount      bigint NOT NULL CHECK (amount > 0),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, checkout_id)
);
CREATE INDEX api_checkouts_expires ON api_checkouts (expires_at);
