-- Canary phases on the lambda-alias backend: the alias a rollout shifts
-- (NULL for lambda-env rollouts), and the routing its last confirmed write
-- left on it (JSON: stable version, canary version and weight), which the
-- watcher reads metrics by (ExecutedVersion) and checks for drift.
ALTER TABLE rollouts ADD COLUMN alias TEXT;
ALTER TABLE rollouts ADD COLUMN routing TEXT;
