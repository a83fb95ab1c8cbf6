-- The shop's accounts. Emails are stored lower-cased, so the unique index is the rule.
CREATE TABLE IF NOT EXISTS shop_users (
    id             UUID PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    confirmed_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One-time tokens mailed for confirmation; only their SHA-256 is kept.
CREATE TABLE IF NOT EXISTS shop_email_tokens (
    token_hash  BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES shop_users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('registration', 'email_change')),
    new_email   TEXT,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);

-- Rotating refresh tokens: each use marks the token used and adds its successor to the
-- family; a used token presented again revokes the whole family.
CREATE TABLE IF NOT EXISTS shop_refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    family_id   UUID NOT NULL,
    user_id     UUID NOT NULL REFERENCES shop_users (id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS shop_refresh_tokens_family ON shop_refresh_tokens (family_id);
