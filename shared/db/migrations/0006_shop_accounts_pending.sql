-- Accounts that expire unless confirmed, and password reset tokens.
--
-- An unconfirmed user is pending until its registration link expires (pending_until);
-- after that it no longer holds its address. Users unconfirmed before this migration get
-- the default link lifetime (24 hours) from their registration.
ALTER TABLE shop_users ADD COLUMN IF NOT EXISTS pending_until TIMESTAMPTZ;
UPDATE shop_users SET pending_until = created_at + interval '24 hours'
    WHERE confirmed_at IS NULL AND pending_until IS NULL;

ALTER TABLE shop_email_tokens DROP CONSTRAINT IF EXISTS shop_email_tokens_kind_check;
ALTER TABLE shop_email_tokens ADD CONSTRAINT shop_email_tokens_kind_check
    CHECK (kind IN ('registration', 'email_change', 'password_reset'));
-- Issuing a link kills the user's earlier unused links of the same kind.
CREATE INDEX IF NOT EXISTS shop_email_tokens_user_kind ON shop_email_tokens (user_id, kind)
    WHERE used_at IS NULL;
