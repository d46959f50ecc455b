-- Secrets the server keeps for itself, made once on first use (e.g. the key
-- that turns typed user names into throttle buckets without storing them).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Failed logins are now keyed by a keyed hash of the typed name (same for
-- names of nobody), so old plain-name rows are meaningless.
DELETE FROM login_failures;
-- Which sign-in attempt wrote a row: the attempt is recorded before the
-- password is checked (so concurrent guesses all count) and its rows are
-- taken back when it succeeds.
ALTER TABLE login_failures ADD COLUMN attempt TEXT;

-- A session's role when it came from an identity provider (from the
-- configured claim at sign-in); NULL for local users, whose role is read
-- from users at each request.
ALTER TABLE sessions ADD COLUMN role TEXT;

-- OIDC sign-ins under way: the state sent to the provider, with the nonce
-- and PKCE verifier that go with it, and the hash of a cookie given to the
-- browser that began it (so a callback link planted in someone else's
-- browser signs nobody in). Each row is used once.
CREATE TABLE oidc_logins (
    state         TEXT PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next_path     TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX login_failures_by_attempt ON login_failures (attempt);

-- Who each identity-provider name belongs to: the provider's subject
-- (`sub`: stable and unique, unlike a user name or an e-mail address) is
-- bound to the name it first signed in with. A renamed user keeps that
-- name in rollgate's audit log; a name once bound cannot become another
-- subject's.
CREATE TABLE oidc_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    name       TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE UNIQUE INDEX oidc_identities_by_name ON oidc_identities (issuer, name);
