-- The signed handover log (personalize/handover): one append-only RFC 6962
-- Merkle log per organizer of custody entries (batch issued, handed over,
-- received, card sold/returned/voided/destroyed, store keys enrolled), with a
-- checkpoint signed by hq-sign after every append.
--
-- The triggers refusing UPDATE and DELETE are a speed bump for mistakes, not
-- the security: a database administrator can drop them. What protects the
-- log is that checkpoints are signed in the HSM and that auditors keep the
-- last checkpoint they verified (loopcard audit verify --since).

-- One row per organizer's log; its row lock serialises appends so that
-- entry indices are dense.
CREATE TABLE handover_logs (
    org_id bigint NOT NULL,
    origin text NOT NULL,
    size   bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    PRIMARY KEY (org_id)
);

-- Entry idx (0-based) is the canonical JSON of the entry: its bytes are the
-- Merkle leaf.
CREATE TABLE handover_entries (
    org_id      bigint NOT NULL,
    idx         bigint NOT NULL CHECK (idx >= 0),
    entry       bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, idx)
);

-- The stored hashes of the tree (golang.org/x/mod/sumdb/tlog numbering), so
-- that an append does not rehash the log.
CREATE TABLE handover_hashes (
    org_id bigint NOT NULL,
    sidx   bigint NOT NULL CHECK (sidx >= 0),
    hash   bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (org_id, sidx)
);

-- Signed tree heads: C2SP tlog-checkpoint signed notes, one per append.
CREATE TABLE handover_checkpoints (
    org_id    bigint NOT NULL,
    size      bigint NOT NULL CHECK (size > 0),
    note      bytea NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, size)
);

-- Store keys HQ enrolled in the log, to check store signatures at append.
-- The log entry is the record; this table is an index of it.
CREATE TABLE handover_store_keys (
    org_id   bigint NOT NULL,
    key_id   text NOT NULL,
    store_id text NOT NULL,
    vkey     text NOT NULL,
    idx      bigint NOT NULL,
    PRIMARY KEY (org_id, key_id)
);

CREATE FUNCTION handover_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the handover log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER handover_entries_append_only BEFORE UPDATE OR DELETE ON handover_entries
    FOR EACH ROW EXECUTE FUNCTION handover_append_only();
CREATE TRIGGER handover_hashes_append_only BEFORE UPDATE OR DELETE ON handover_hashes
    FOR EACH ROW EXECUTE FUNCTION handover_append_only();
CREATE TRIGGER handover_checkpoints_append_only BEFORE UPDATE OR DELETE ON handover_checkpoints
    FOR EACH ROW EXECUTE FUNCTION handover_append_only();
CREATE TRIGGER handover_store_keys_append_only BEFORE UPDATE OR DELETE ON handover_store_keys
    FOR EACH ROW EXECUTE FUNCTION handover_append_only();
