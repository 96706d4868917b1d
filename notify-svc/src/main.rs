//! notify-svc: owns the Notification aggregate (one per customer). Decides exactly one
//! notification per order and kind, then delivers it (file by default, `NOTIFY_WEBHOOK_URL`
//! for a webhook) with retries, a circuit breaker and parking (`NOTIFY_*`, see the README), its
//! text from the templates of `NOTIFY_TEMPLATES_DIR` or the built-in ones.
use anyhow::Context;
use contracts::notification::Notification;
use notify_svc::{
    MIGRATOR, VERSION,
    delivery::{DeliveryConfig, runner::DeliveryLoop},
    notification::NotificationDecider,
    policies, read_model, routes,
    sender::sender_from_env,
    templates::Templates,
};
use runtime::{Projection, Service, kafka::EventCodec};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The settings are checked before anything connects: a broken templates folder stops the
    // start with the file and the reason, not the first notification of each kind.
    let templates = Arc::new(Templates::from_env().context("notify-svc does not start")?);
    let notify_from_stock = policies::NotifyFromStock::from_env().context("notify-svc does not start")?;
    let mut service = Service::start(env!("CARGO_PKG_NAME"), VERSION, &MIGRATOR).await?;
    let delivery_config = DeliveryConfig::from_env()?;
    let sender = sender_from_env(std::path::Path::new(&service.config.run_dir), delivery_config.timeout)?;
    let codec = Arc::new(EventCodec::<Notification>::new(&service.config.schema_registry_url)?);
    let history = service.accepted_history::<Notification>()?;
    let delivery = Arc::new(DeliveryLoop::new(delivery_config, sender, codec, history, &service.config.kafka_brokers, service.config.name));
    service
        .aggregate(NotificationDecider::new(templates))?
        .background_policy(policies::NotifyFromOrders)?
        .background_policy(policies::NotifyFromAccounts)?
        .background_policy(policies::NotifyFromShipments)?
        .background_policy(notify_from_stock)?
        .background_loop(&DeliveryLoop::label(), move || {
            let delivery = delivery.clone();
            async move { delivery.run().await }
        })
        .projection(|registry| Projection::new("notifications", &["notifications"]).from::<Notification>(registry, read_model::project_notification))?
        .routes(routes());
    service.run().await?;
    Ok(())
}
