-- How the delivery of each notification stands (NotificationDeliveryFailed, NotificationDelivered,
-- NotificationParked): status PENDING until DELIVERED, or FAILED once parked; attempts made so
-- far; the last attempt's error; updated_at is epoch millis of the last of these events (sent_at
-- before any).
ALTER TABLE notifications ADD COLUMN status TEXT NOT NULL DEFAULT 'PENDING';
ALTER TABLE notifications ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN last_error TEXT;
ALTER TABLE notifications ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
UPDATE notifications SET updated_at = sent_at;

-- A delivery event names its notification by customer, order and kind.
CREATE INDEX notifications_by_delivery ON notifications (customer_id, order_id, kind);
