-- The two-person rule: a request to advance into a protected phase, and
-- its decision by a second operator. A request is bound to the rollout's
-- generation (bumped by every flag change), so an approval never outlives
-- the position it was asked for.
CREATE TABLE approvals (
    id              BIGINT PRIMARY KEY,
    rollout_id      BIGINT NOT NULL,
    -- The phase index the rollout was at, and the phase it asks to enter.
    from_phase      BIGINT NOT NULL,
    to_phase_name   TEXT NOT NULL,
    generation      BIGINT NOT NULL,
    force           BIGINT NOT NULL,
    requested_by    TEXT NOT NULL,
    requested_at    TEXT NOT NULL,
    reason          TEXT,
    -- pending | approved | denied
    state           TEXT NOT NULL,
    decided_by      TEXT,
    decided_at      TEXT,
    decision_reason TEXT
);
CREATE INDEX approvals_by_rollout ON approvals (rollout_id, id);
INSERT INTO id_counters (name, last_id) VALUES ('approvals', 0);
