-- What the watcher evaluated, kept for the dashboard's charts: one row per
-- rollout per evaluation (at most one a minute at the default tick) holding
-- every guardrail's and gate's numbers as JSON, bounded per rollout (older
-- rows are thinned out), so a page view never calls CloudWatch and reads
-- few rows. The error rate has a column of its own for the overview's
-- sparklines.
CREATE TABLE metric_ticks (
    rollout_id BIGINT NOT NULL,
    at         TEXT NOT NULL,      -- RFC 3339, the evaluation's time
    error_rate DOUBLE PRECISION,
    points     TEXT NOT NULL,      -- JSON: [{kind, name, label, value, samples, verdict, threshold, reference}]
    PRIMARY KEY (rollout_id, at)
);

-- The audit page's filters, each served by an index ending in seq (the
-- cursor), so a page stays fast however long the log is.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);
-- The overview's order (rollouts holding their function first, then newest)
-- and the plan page's usage.
CREATE INDEX rollouts_holding_first ON rollouts ((active_target IS NULL), id DESC);
CREATE INDEX rollouts_plan ON rollouts (plan_name, plan_hash);
