-- The appconfig backend: the feature-flag profile a rollout writes (JSON:
-- application, environment, profile, strategies, poll interval; NULL for
-- the Lambda backends), and the AppConfig deployment of its newest write
-- as last seen (JSON: version, deployment number, state, percentage,
-- completion, who rolled it back), which confirms the write and says when
-- the flags count as live.
ALTER TABLE rollouts ADD COLUMN appconfig TEXT;
ALTER TABLE rollouts ADD COLUMN delivery TEXT;
