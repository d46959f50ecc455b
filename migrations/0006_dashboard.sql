-- What the watcher evaluated, kept for the dashboard's charts: one point per
-- guardrail or gate per minute at most, bounded per series (older points are
-- thinned out), so a page view never calls CloudWatch.
CREATE TABLE metric_points (
    rollout_id BIGINT NOT NULL,
    kind       TEXT NOT NULL,      -- guardrail | gate
    name       TEXT NOT NULL,      -- the guardrail's or gate's name
    at         TEXT NOT NULL,      -- RFC 3339, the evaluation's time
    label      TEXT NOT NULL,      -- the metric (error_rate, duration_p99, …)
    value      DOUBLE PRECISION,
    samples    BIGINT NOT NULL,
    verdict    TEXT NOT NULL,
    threshold  DOUBLE PRECISION,
    reference  DOUBLE PRECISION,
    PRIMARY KEY (rollout_id, kind, name, at)
);
-- The overview's sparklines: one metric of many rollouts over the last hour.
CREATE INDEX metric_points_label ON metric_points (rollout_id, label, at);

-- The audit page's filters, each served by an index ending in seq (the
-- cursor), so a page stays fast however long the log is.
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_at ON audit_log (at);
-- The overview's order (holding rollouts first) and the plan page's usage.
CREATE INDEX rollouts_plan ON rollouts (plan_name, plan_hash);
