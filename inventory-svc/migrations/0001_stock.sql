-- Stock view, projected from stock.events. Portable across SQLite and PostgreSQL:
-- TEXT and BIGINT only; updated_at is epoch milliseconds from the events' occurred_at.
CREATE TABLE stock (
    sku             TEXT   NOT NULL PRIMARY KEY,
    on_hand         BIGINT NOT NULL,
    reserved        BIGINT NOT NULL,
    restocked_total BIGINT NOT NULL,
    shipped_total   BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- One reservation per order and sku; status is RESERVED, REJECTED, RELEASED or SHIPPED.
CREATE TABLE reservations (
    order_id TEXT   NOT NULL,
    sku      TEXT   NOT NULL,
    quantity BIGINT NOT NULL,
    status   TEXT   NOT NULL,
    PRIMARY KEY (order_id, sku)
);

CREATE INDEX reservations_by_sku ON reservations (sku, status);
