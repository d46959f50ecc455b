-- Bake clock, the watcher's latest gate results for the current phase, and
-- each finished phase's metrics (the "previous phase" reference of gates).
ALTER TABLE rollouts ADD COLUMN bake_started_at TEXT;
ALTER TABLE rollouts ADD COLUMN readiness TEXT;
ALTER TABLE rollouts ADD COLUMN phase_stats TEXT;
