-- Read model of notification.events: one row per NotificationSent; sent_at is epoch millis
-- (event occurred_at).
CREATE TABLE notifications (
    event_id    TEXT   NOT NULL PRIMARY KEY,
    customer_id TEXT   NOT NULL,
    order_id    TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    channel     TEXT   NOT NULL,
    recipient   TEXT   NOT NULL,
    message     TEXT   NOT NULL,
    sent_at     BIGINT NOT NULL
);

CREATE INDEX notifications_by_order ON notifications (order_id, sent_at);
CREATE INDEX notifications_by_customer ON notifications (customer_id, sent_at);
