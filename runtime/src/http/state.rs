//! The state every route shares; handlers extract the part they need.

/// Handle to the service's read-model database.
#[derive(Clone)]
pub struct ReadDb(pub sqlx::AnyPool);

/// Committed progress of each projection by name: a receiver changes after every batch, so a
/// handler can wait for a read model to move without polling the database.
#[derive(Clone, Default)]
pub struct ProjectionProgress(pub std::sync::Arc<std::collections::HashMap<&'static str, crate::projection::Progress>>);

/// State of every route; handlers extract the part they need (`State<ReadDb>`,
/// `State<ProjectionProgress>`, `State<CommandBus>`).
#[derive(Clone)]
pub struct AppState {
    pub db: ReadDb,
    pub progress: ProjectionProgress,
    pub commands: super::CommandBus,
}

impl axum::extract::FromRef<AppState> for ReadDb {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
impl axum::extract::FromRef<AppState> for ProjectionProgress {
    fn from_ref(state: &AppState) -> Self {
        state.progress.clone()
    }
}
impl axum::extract::FromRef<AppState> for super::CommandBus {
    fn from_ref(state: &AppState) -> Self {
        state.commands.clone()
    }
}

/// Routes a service contributes; the runtime adds `/health` (and more).
pub type QueryRoutes = axum::Router<AppState>;

/// Routes that document themselves: `ApiRoutes::new().routes(utoipa_axum::routes!(handler))`;
/// `.into()` gives plain [`QueryRoutes`].
pub type ApiRoutes = utoipa_axum::router::OpenApiRouter<AppState>;
