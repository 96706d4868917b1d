-- Read model of shipment.events; updated_at is epoch millis (event occurred_at).
CREATE TABLE shipments (
    order_id            TEXT   NOT NULL PRIMARY KEY,
    customer_id         TEXT   NOT NULL,
    status              TEXT   NOT NULL,
    carrier             TEXT   NULL,
    tracking_number     TEXT   NULL,
    destination_country TEXT   NOT NULL,
    reason              TEXT   NULL,
    updated_at          BIGINT NOT NULL
);

CREATE INDEX shipments_by_customer ON shipments (customer_id, updated_at);
