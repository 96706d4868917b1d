-- The order view joins every service's topics. Each source stream gets its own table keyed by
-- order, so rows never depend on the order in which topics are consumed (a payment may be
-- projected before the OrderPlaced that caused it); queries join them. Portable SQL.
CREATE TABLE order_payments (
    order_id     TEXT   NOT NULL PRIMARY KEY,
    -- CAPTURED, DECLINED or REFUNDED
    status       TEXT   NOT NULL,
    amount_cents BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE order_shipments (
    order_id        TEXT   NOT NULL PRIMARY KEY,
    -- SCHEDULED, REJECTED, CANCELLED, DISPATCHED or DELIVERED
    status          TEXT   NOT NULL,
    carrier         TEXT,
    tracking_number TEXT,
    updated_at      BIGINT NOT NULL
);

-- One notification per order and kind (the notifier's own rule).
CREATE TABLE order_notifications (
    order_id TEXT   NOT NULL,
    kind     TEXT   NOT NULL,
    sent_at  BIGINT NOT NULL,
    PRIMARY KEY (order_id, kind)
);

-- Every event about an order from every topic: the audit trail.
CREATE TABLE order_timeline (
    event_id       TEXT   NOT NULL PRIMARY KEY,
    order_id       TEXT   NOT NULL,
    topic          TEXT   NOT NULL,
    service        TEXT   NOT NULL,
    event_type     TEXT   NOT NULL,
    aggregate_id   TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    occurred_at    BIGINT NOT NULL,
    correlation_id TEXT   NOT NULL,
    causation_id   TEXT   NOT NULL,
    command_id     TEXT   NOT NULL
);

CREATE INDEX order_timeline_by_order ON order_timeline (order_id, occurred_at);
-- Keyset pagination: (created_at, order_id) with optional customer and status filters.
CREATE INDEX orders_by_status ON orders (status, created_at, order_id);
CREATE INDEX orders_by_created ON orders (created_at, order_id);
