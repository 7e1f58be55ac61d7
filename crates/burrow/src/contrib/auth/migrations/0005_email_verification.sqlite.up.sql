-- Email verification links: SHA-256 of a 32-byte token, 24 hours, for one address of
-- one user (a link for an address the account no longer has verifies nothing).
CREATE TABLE email_verifications (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX email_verifications_user ON email_verifications (user_id);
