-- Conversations of the recall app and what the model made of them. The AI fields are
-- written once per content hash (a duplicate delivery of the task changes nothing);
-- ai_enqueue_pending marks a conversation whose task could not be enqueued at creation,
-- for the retry schedule.
CREATE TABLE IF NOT EXISTS recall_conversations (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id            TEXT NOT NULL,
    title               TEXT,
    content             TEXT NOT NULL,
    post_type           TEXT NOT NULL,
    priority            TEXT NOT NULL CHECK (priority IN ('high', 'default', 'low')),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    ai_processed        BOOLEAN NOT NULL DEFAULT false,
    ai_summary          TEXT,
    ai_action_items     JSONB NOT NULL DEFAULT '[]',
    ai_keywords         JSONB NOT NULL DEFAULT '[]',
    ai_model            TEXT,
    ai_content_hash     TEXT,
    ai_processed_at     TIMESTAMPTZ,
    ai_enqueue_pending  BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS recall_conversations_owner ON recall_conversations (owner_id, id);
-- The retry schedule reads only the few deferred rows.
CREATE INDEX IF NOT EXISTS recall_conversations_deferred ON recall_conversations (id)
    WHERE ai_enqueue_pending;
