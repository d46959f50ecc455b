-- The baseline metrics the watcher recorded for a rollout (JSON: metric
-- label → {value, samples}), and when.
ALTER TABLE rollouts ADD COLUMN baseline TEXT;
ALTER TABLE rollouts ADD COLUMN baseline_at TEXT;
