-- People who may sign in: a role and an argon2id password hash (PHC
-- string; the password itself is never stored).
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
