-- The calendar backend (seed 001): push-notification channels, each user's sync state and
-- the synced copy of each user's events.

-- One row per watch channel. Only the SHA-256 of the channel token is kept.
CREATE TABLE IF NOT EXISTS calendar_channels (
    id                    TEXT PRIMARY KEY,
    user_id               TEXT NOT NULL,
    calendar_id           TEXT NOT NULL,
    resource_id           TEXT NOT NULL,
    token_hash            BYTEA NOT NULL,
    address               TEXT NOT NULL,
    expires_at            TIMESTAMPTZ NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_message_number   BIGINT,
    last_notification_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS calendar_channels_user ON calendar_channels (user_id);
-- The daily renewal reads channels soonest to expire first.
CREATE INDEX IF NOT EXISTS calendar_channels_expiry ON calendar_channels (expires_at);

-- The seed's calendar:sync_token:{user_id}, durable: losing it costs a full resync.
CREATE TABLE IF NOT EXISTS calendar_sync_state (
    user_id            TEXT PRIMARY KEY,
    calendar_id        TEXT NOT NULL,
    sync_token         TEXT,
    last_synced_at     TIMESTAMPTZ,
    last_full_sync_at  TIMESTAMPTZ
);

-- Events as the provider last described them (body: the event's JSON), with the columns
-- the reads order by and the sync's "newer version wins" rule compares.
CREATE TABLE IF NOT EXISTS calendar_events (
    user_id      TEXT NOT NULL,
    id           TEXT NOT NULL,
    calendar_id  TEXT NOT NULL,
    starts_at    TIMESTAMPTZ,
    updated      TIMESTAMPTZ,
    body         JSONB NOT NULL,
    PRIMARY KEY (user_id, id)
);
