-- Read model of account.events. Amounts are cents, timestamps epoch millis (event occurred_at).
-- A row in accounts exists only once the customer deposited funds: declined payments of
-- customers without an account touch payments only.
CREATE TABLE accounts (
    customer_id     TEXT   NOT NULL PRIMARY KEY,
    currency        TEXT   NOT NULL,
    balance_cents   BIGINT NOT NULL,
    deposited_cents BIGINT NOT NULL,
    captured_cents  BIGINT NOT NULL,
    refunded_cents  BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE payments (
    order_id       TEXT   NOT NULL PRIMARY KEY,
    customer_id    TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    amount_cents   BIGINT NOT NULL,
    currency       TEXT   NULL,
    decline_reason TEXT   NULL,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX payments_by_customer ON payments (customer_id, updated_at);
