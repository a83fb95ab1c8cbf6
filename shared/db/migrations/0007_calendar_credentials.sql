-- Each user's own Google account for the calendar: the OAuth refresh token, sealed with
-- AES-256-GCM under the operator's key ring (functions/calendar/src/keyring.rs). Only the
-- ciphertext is stored, with the id of the key that sealed it, so keys can rotate.
CREATE TABLE IF NOT EXISTS calendar_credentials (
    user_id        TEXT PRIMARY KEY,
    key_id         TEXT NOT NULL,
    sealed_token   BYTEA NOT NULL,
    scope          TEXT NOT NULL,
    connected_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    sealed_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Finding the tokens still sealed under a key about to be dropped from the ring.
CREATE INDEX IF NOT EXISTS calendar_credentials_key ON calendar_credentials (key_id);
