-- The carrier's reports (shipment.events ShipmentTrackingUpdated): every one in
-- shipment_tracking, the latest by `at` on the shipment's row. at is epoch millis.
ALTER TABLE shipments ADD COLUMN tracking_status TEXT NULL;
ALTER TABLE shipments ADD COLUMN tracking_location TEXT NULL;
ALTER TABLE shipments ADD COLUMN tracking_at BIGINT NULL;

CREATE TABLE shipment_tracking (
    event_id TEXT   NOT NULL PRIMARY KEY,
    order_id TEXT   NOT NULL,
    status   TEXT   NOT NULL,
    location TEXT   NOT NULL,
    at       BIGINT NOT NULL
);

CREATE INDEX shipment_tracking_by_order ON shipment_tracking (order_id, at);
