-- Side effects that must happen once (an email sent, stock returned) record their
-- idempotency key here in the same transaction as the effect, so a redelivered task
-- finds the key and skips the effect.
CREATE TABLE IF NOT EXISTS applied_effects (
    effect_key  TEXT PRIMARY KEY,
    task_name   TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
