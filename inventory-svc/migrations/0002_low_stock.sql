-- Low-stock alerts (stock.events LowStockThresholdSet, StockLow, StockReplenished).
-- low_stock_threshold: the SKU's own threshold, NULL while inventory-svc's LOW_STOCK_THRESHOLD
-- applies. low_since: occurred_at of the standing StockLow, NULL when none stands.
ALTER TABLE stock ADD COLUMN low_stock_threshold BIGINT;
ALTER TABLE stock ADD COLUMN low_since BIGINT;
CREATE INDEX stock_low ON stock (low_since);
