-- The leader lease: one row. The process holding it (until expires_at,
-- epoch milliseconds) runs the watcher and the reconciler. Every takeover
-- bumps epoch; the leader's writes check it in their own transaction
-- (fencing), so a former leader that wakes up late writes nothing.
CREATE TABLE leader_lease (
    id         INTEGER PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    renewed_at BIGINT NOT NULL
);
INSERT INTO leader_lease (id, holder, epoch, expires_at, renewed_at) VALUES (1, '', 0, 0, 0);
