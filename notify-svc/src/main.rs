//! notify-svc: owns the Notification aggregate (one per customer). Decides exactly one
//! notification per order and kind, then delivers it (file by default, `NOTIFY_WEBHOOK_URL`
//! for a webhook).
use contracts::notification::Notification;
use notify_svc::{delivery::DeliverNotifications, notification::NotificationDecider, policies, read_model, sender::sender_from_env, write_api};
use runtime::{Projection, Service};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start("notify-svc", 8005, &MIGRATOR).await?;
    let sender = sender_from_env(std::path::Path::new(&service.config.run_dir))?;
    service
        .aggregate(NotificationDecider)?
        .policy(policies::NotifyFromOrders)?
        .policy(policies::NotifyFromAccounts)?
        .reactor::<Notification, _>(DeliverNotifications { sender })?
        .projection(|registry| Projection::new("notifications", &["notifications"]).from::<Notification>(registry, read_model::project_notification))?
        .routes(read_model::routes())
        .routes(write_api::routes())
        .routes(runtime::openapi::routes(write_api::openapi()));
    service.run().await?;
    Ok(())
}
