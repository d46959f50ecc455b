-- Sign-in: sessions, API tokens and failed logins. Only SHA-256 hashes of
-- session ids and tokens are stored: a copy of the database lets nobody in.

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL,
    -- password | oidc
    via          TEXT NOT NULL,
    -- The form token bound to this session (CSRF): sent in every form.
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);

CREATE TABLE api_tokens (
    name         TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    last_used_at TEXT
);

-- One row per failed login, by account ("user:NAME") and by address
-- ("addr:IP"); rows older than the throttle window are pruned.
CREATE TABLE login_failures (
    throttle_key TEXT NOT NULL,
    at           TEXT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (throttle_key, at);
