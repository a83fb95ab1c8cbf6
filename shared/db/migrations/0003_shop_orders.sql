-- The shop's catalogue and orders. Stock never goes below zero (the CHECK is the last
-- line of defence; reservations decrement only where enough is left).
CREATE TABLE IF NOT EXISTS shop_skus (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    price_cents  BIGINT NOT NULL CHECK (price_cents >= 0),
    quantity     INTEGER NOT NULL CHECK (quantity >= 0)
);

CREATE TABLE IF NOT EXISTS shop_orders (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('awaiting_payment', 'paid', 'cancelled')),
    total_cents   BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_at       TIMESTAMPTZ,
    cancelled_at  TIMESTAMPTZ
);
-- The expiry sweep reads unpaid orders oldest first.
CREATE INDEX IF NOT EXISTS shop_orders_awaiting ON shop_orders (created_at)
    WHERE status = 'awaiting_payment';

CREATE TABLE IF NOT EXISTS shop_order_items (
    order_id  UUID NOT NULL REFERENCES shop_orders (id) ON DELETE CASCADE,
    sku_id    TEXT NOT NULL REFERENCES shop_skus (id),
    quantity  INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku_id)
);
