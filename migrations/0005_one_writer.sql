-- Ids come from the database: one counter row per kind of record, bumped
-- with UPDATE … RETURNING inside the inserting transaction.
CREATE TABLE id_counters (
    name    TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO id_counters (name, last_id) SELECT 'rollouts', COALESCE(MAX(id), 0) FROM rollouts;

-- The audit head always exists, so every write transaction can lock it
-- first: appends from several processes are serialized by that row lock.
INSERT INTO audit_head (id, seq, hash)
SELECT 1, 0, '0000000000000000000000000000000000000000000000000000000000000000'
WHERE NOT EXISTS (SELECT 1 FROM audit_head WHERE id = 1);

-- The function as Lambda resolved it: its unqualified ARN is the identity a
-- rollout holds (active_target), its name the CloudWatch dimension.
ALTER TABLE rollouts ADD COLUMN function_arn TEXT;
ALTER TABLE rollouts ADD COLUMN function_name TEXT;
UPDATE rollouts SET function_arn = target_function, function_name = target_function;
-- Every phase's flags, the rollback target, the plan's region and webhooks,
-- kept with the rollout so it can be rolled back (in the right region) and
-- announced even when its plan snapshot no longer parses (JSON). Filled in
-- for older rows at start-up from their snapshots.
ALTER TABLE rollouts ADD COLUMN phases TEXT;
ALTER TABLE rollouts ADD COLUMN rollback_to TEXT;
ALTER TABLE rollouts ADD COLUMN region TEXT;
ALTER TABLE rollouts ADD COLUMN webhooks TEXT;
-- Why the function cannot be read whole right now (e.g. KMS), if so.
ALTER TABLE rollouts ADD COLUMN function_error TEXT;

-- The watcher's memory of a rollout, one JSON record each: breach streaks,
-- silence clocks, the code hash last seen, announcements made.
CREATE TABLE watch_memory (
    rollout_id BIGINT PRIMARY KEY,
    memory     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO watch_memory (rollout_id, memory, updated_at)
SELECT id, '{"streaks":' || streaks || '}', updated_at FROM rollouts WHERE streaks IS NOT NULL;
