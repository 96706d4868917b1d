//! Saga metrics: how long orders take from `OrderPlaced` to CONFIRMED or CANCELLED, how many
//! orders enter each status, and why orders are cancelled. A reactor on `order.events` that
//! produces no commands; durations come from the events' `occurred_at`, so they measure the
//! saga itself, not how late this reactor runs.
use contracts::{
    EventEnvelope,
    order::{Order, OrderEvent},
};
use runtime::{CommandOut, EventHandler, HandlerError};
use std::{collections::HashMap, sync::Mutex};

pub const SAGA_SECONDS: &str = "orderflow_saga_duration_seconds";
pub const ORDERS_TOTAL: &str = "orderflow_orders_total";
pub const CANCELLATIONS_TOTAL: &str = "orderflow_order_cancellations_total";

/// Remembers when each open order was placed (forgotten once it settles). A fresh consumer
/// group starts at the beginning of `order.events`, so after a first deployment the counters
/// include the orders already in the log.
#[derive(Default)]
pub struct SagaMetrics {
    placed_at: Mutex<HashMap<String, i64>>,
}

/// The status an event moves its order into.
fn status_of(event: &OrderEvent) -> Option<&'static str> {
    Some(match event {
        OrderEvent::OrderPlaced { .. } => "PENDING",
        OrderEvent::OrderLineReserved { .. } | OrderEvent::OrderCancellationRequested { .. } | OrderEvent::OrderCancellationRefused { .. } => {
            return None;
        }
        OrderEvent::OrderStockReserved { .. } => "STOCK_RESERVED",
        OrderEvent::OrderPaid { .. } => "PAID",
        OrderEvent::OrderConfirmed { .. } => "CONFIRMED",
        OrderEvent::OrderShipped { .. } => "SHIPPED",
        OrderEvent::OrderDelivered { .. } => "DELIVERED",
        OrderEvent::OrderCancelled { .. } => "CANCELLED",
    })
}

impl EventHandler<Order> for SagaMetrics {
    fn name(&self) -> &str {
        "saga-metrics"
    }

    async fn handle(&self, event: &EventEnvelope<OrderEvent>) -> Result<Vec<CommandOut>, HandlerError> {
        if let Some(status) = status_of(&event.payload) {
            metrics::counter!(ORDERS_TOTAL, "status" => status).increment(1);
        }
        let mut placed_at = self.placed_at.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match &event.payload {
            OrderEvent::OrderPlaced { .. } => {
                placed_at.insert(event.aggregate_id.clone(), event.occurred_at);
                None
            }
            OrderEvent::OrderConfirmed { .. } => Some("confirmed"),
            OrderEvent::OrderCancelled { reason, .. } => {
                let reason: &'static str = reason.into();
                metrics::counter!(CANCELLATIONS_TOTAL, "reason" => reason).increment(1);
                Some("cancelled")
            }
            _ => None,
        };
        if let Some(outcome) = outcome
            && let Some(started) = placed_at.remove(&event.aggregate_id)
        {
            let seconds = (event.occurred_at - started).max(0) as f64 / 1000.0;
            metrics::histogram!(SAGA_SECONDS, "outcome" => outcome).record(seconds);
        }
        Ok(vec![])
    }
}

pub const ORDERS_NOW: &str = "orderflow_orders";

/// How many orders are in each status now (and, for cancelled ones, why), read from the order
/// view every `every`: the read model is the truth after a restart, which an in-process tally
/// of events is not.
pub async fn publish_order_counts(pool: sqlx::AnyPool, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    // A status no order is in any more must read 0, not its last count.
    let mut published: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    loop {
        ticker.tick().await;
        let rows: Result<Vec<(String, String, i64)>, sqlx::Error> = sqlx::query_as(
            "SELECT status, COALESCE(cancellation_reason, ''), COUNT(*) FROM orders GROUP BY status, COALESCE(cancellation_reason, '')",
        )
        .fetch_all(&pool)
        .await;
        match rows {
            Ok(rows) => {
                let mut now = std::collections::HashSet::new();
                for (status, reason, count) in rows {
                    metrics::gauge!(ORDERS_NOW, "status" => status.clone(), "cancellation_reason" => reason.clone()).set(count as f64);
                    now.insert((status, reason));
                }
                for (status, reason) in published.difference(&now) {
                    metrics::gauge!(ORDERS_NOW, "status" => status.clone(), "cancellation_reason" => reason.clone()).set(0.0);
                }
                published.extend(now);
            }
            Err(error) => tracing::warn!(%error, "could not count orders by status"),
        }
    }
}
