//! notify-svc: owns the Notification aggregate (one per customer). Decides exactly one
//! notification per order and kind, then delivers it (file by default, `NOTIFY_WEBHOOK_URL`
//! for a webhook).
use contracts::notification::Notification;
use notify_svc::{
    MIGRATOR, VERSION, delivery::DeliverNotifications, notification::NotificationDecider, policies, read_model, routes, sender::sender_from_env,
};
use runtime::{Projection, Service};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start(env!("CARGO_PKG_NAME"), VERSION, &MIGRATOR).await?;
    let sender = sender_from_env(std::path::Path::new(&service.config.run_dir))?;
    service
        .aggregate(NotificationDecider)?
        .policy(policies::NotifyFromOrders)?
        .policy(policies::NotifyFromAccounts)?
        .reactor::<Notification, _>(DeliverNotifications { sender })?
        .projection(|registry| Projection::new("notifications", &["notifications"]).from::<Notification>(registry, read_model::project_notification))?
        .routes(routes());
    service.run().await?;
    Ok(())
}
