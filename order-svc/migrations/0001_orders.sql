-- Order view, projected from order.events. Portable across SQLite and PostgreSQL:
-- TEXT and BIGINT only; timestamps are epoch milliseconds taken from the events' occurred_at.
CREATE TABLE orders (
    order_id            TEXT    NOT NULL PRIMARY KEY,
    customer_id         TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    cancellation_reason TEXT,
    cancellation_detail TEXT,
    currency            TEXT    NOT NULL,
    total_cents         BIGINT  NOT NULL,
    -- JSON array of {sku, quantity, unit_price_cents}
    lines_json          TEXT    NOT NULL,
    carrier             TEXT,
    tracking_number     TEXT,
    created_at          BIGINT  NOT NULL,
    updated_at          BIGINT  NOT NULL,
    -- version of the last order event applied
    version             BIGINT  NOT NULL
);

CREATE INDEX orders_by_customer ON orders (customer_id, created_at);
