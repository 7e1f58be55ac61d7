-- Passkeys (WebAuthn). A user's WebAuthn handle is a random UUID, given at registration:
-- authenticators store it, so it must not be the row id.
ALTER TABLE users ADD COLUMN webauthn_id TEXT;
CREATE UNIQUE INDEX users_webauthn_id ON users (webauthn_id);

CREATE TABLE credentials (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- base64url of the credential id the authenticator chose.
    credential_id TEXT NOT NULL UNIQUE,
    -- webauthn-rs's Passkey as JSON: the public key, algorithm and counter it verifies with.
    passkey TEXT NOT NULL,
    sign_count INTEGER NOT NULL DEFAULT 0,
    backup_eligible INTEGER NOT NULL DEFAULT 0 CHECK (backup_eligible IN (0, 1)),
    backup_state INTEGER NOT NULL DEFAULT 0 CHECK (backup_state IN (0, 1)),
    transports TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    last_used_at TEXT
);
CREATE INDEX credentials_user ON credentials (user_id);

-- Registrations and sign-ins in progress: in the database, so one begun before a SIGHUP
-- restart (or on another instance) finishes after it. The id is SHA-256 of the random
-- value kept in the browser's session; single use, 5 minutes.
CREATE TABLE auth_ceremonies (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('register', 'login', 'add')),
    user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    data TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
