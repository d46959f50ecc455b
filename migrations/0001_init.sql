-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
-- Ids are assigned by rollgate, timestamps are RFC 3339 UTC text (sortable),
-- flag sets and other documents are JSON text.

CREATE TABLE rollouts (
    id                 BIGINT PRIMARY KEY,
    plan_name          TEXT NOT NULL,
    plan_hash          TEXT NOT NULL,
    plan_text          TEXT NOT NULL,
    target_function    TEXT NOT NULL,
    -- Equals target_function while the rollout holds its function, NULL after:
    -- the unique index allows one non-terminal rollout per function.
    active_target      TEXT,
    state              TEXT NOT NULL,
    phase_index        BIGINT NOT NULL,
    phase_name         TEXT NOT NULL,
    desired_flags      TEXT NOT NULL,
    observed_flags     TEXT,
    observed_at        TEXT,
    -- Each change of desired flags bumps generation; a confirmed write sets
    -- applied_generation. pending_write records the intent (design rule 3).
    generation         BIGINT NOT NULL,
    applied_generation BIGINT NOT NULL,
    pending_write      TEXT,
    last_error         TEXT,
    version            BIGINT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE UNIQUE INDEX rollouts_one_active_per_function ON rollouts (active_target);
CREATE INDEX rollouts_pending ON rollouts (applied_generation, generation);

CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    rollout_id   BIGINT,
    phase        TEXT,
    flags_before TEXT,
    flags_after  TEXT,
    reason       TEXT,
    outcome      TEXT NOT NULL,
    detail       TEXT,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);

CREATE INDEX audit_log_rollout ON audit_log (rollout_id, seq);

-- The newest entry's seq and hash, so that deleting the tail of the log is
-- detected too.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
