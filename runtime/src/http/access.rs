//! Who may call what. With a token configured (`API_TOKEN`, or `API_TOKEN_FILE` naming a file
//! that holds it), every write route (any method but GET, HEAD and OPTIONS) and every
//! `/admin/*` route needs `Authorization: Bearer <token>`; reads need it too with
//! `API_TOKEN_READS=1`. Probes and scrapes (`/health`, `/ready`, `/metrics`) stay open, so
//! orchestrators and Prometheus need no secret. Without a token, `/admin/*` answers loopback
//! peers only: pausing a service must not be open to whoever can reach its port.
//!
//! The token is compared in constant time (over SHA-256 digests, so not even its length
//! leaks) and never printed: [`ApiToken`]'s `Debug` is redacted.
use super::error::ApiError;
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use std::{net::SocketAddr, sync::Arc};
use subtle::ConstantTimeEq;

pub const TOKEN_ENV: &str = "API_TOKEN";
pub const TOKEN_FILE_ENV: &str = "API_TOKEN_FILE";
pub const TOKEN_READS_ENV: &str = "API_TOKEN_READS";
/// Shortest token accepted: a guessable token protects nothing.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The shared secret callers present; only its digest is kept.
#[derive(Clone)]
pub struct ApiToken([u8; 32]);

impl ApiToken {
    pub fn new(token: &str) -> Self {
        ApiToken(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&presented).into()
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// What the service asks of callers.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    pub token: Option<ApiToken>,
    pub reads_need_token: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessConfigError {
    #[error("{TOKEN_FILE_ENV}={path}: {source}")]
    TokenFile { path: String, source: std::io::Error },
    #[error("{TOKEN_ENV} and {TOKEN_FILE_ENV} are both set; set one")]
    Both,
    #[error("the API token has {0} characters; it needs at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 24`)")]
    TooShort(usize),
    #[error("the API token may hold only visible ASCII characters (it travels in an HTTP header)")]
    NotVisibleAscii,
    #[error("{TOKEN_READS_ENV}=1 needs a token ({TOKEN_ENV} or {TOKEN_FILE_ENV})")]
    ReadsWithoutToken,
}

impl AccessPolicy {
    pub fn from_env() -> Result<Self, AccessConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::from_settings(var(TOKEN_ENV), var(TOKEN_FILE_ENV), var(TOKEN_READS_ENV).as_deref() == Some("1"), |path| std::fs::read_to_string(path))
    }

    /// [`AccessPolicy::from_env`] with the settings passed in (`read_file` reads the token file).
    pub fn from_settings(
        token: Option<String>,
        token_file: Option<String>,
        reads_need_token: bool,
        read_file: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Self, AccessConfigError> {
        let token = match (token, token_file) {
            (Some(_), Some(_)) => return Err(AccessConfigError::Both),
            (Some(token), None) => Some(token),
            (None, Some(path)) => Some(read_file(&path).map_err(|source| AccessConfigError::TokenFile { path, source })?.trim().to_string()),
            (None, None) => None,
        };
        if let Some(token) = &token {
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(AccessConfigError::NotVisibleAscii);
            }
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(AccessConfigError::TooShort(token.chars().count()));
            }
        }
        if reads_need_token && token.is_none() {
            return Err(AccessConfigError::ReadsWithoutToken);
        }
        Ok(AccessPolicy { token: token.as_deref().map(ApiToken::new), reads_need_token })
    }

    /// What a request needs, from its method, path and peer.
    pub fn requirement(&self, method: &Method, path: &str, peer: Option<SocketAddr>) -> Requirement {
        if matches!(path, "/health" | "/ready" | "/metrics") {
            return Requirement::None;
        }
        let admin = path.starts_with("/admin/") || path == "/admin";
        let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        match &self.token {
            Some(_) if admin || write || self.reads_need_token => Requirement::Token,
            Some(_) => Requirement::None,
            None if admin && !peer.is_some_and(|peer| peer.ip().is_loopback()) => Requirement::Loopback,
            None => Requirement::None,
        }
    }
}

/// What a request must bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    None,
    /// `Authorization: Bearer <token>`.
    Token,
    /// Refused: `/admin/*` without a configured token, from a peer that is not loopback.
    Loopback,
}

/// Axum middleware enforcing the [`AccessPolicy`]; 401 (with `WWW-Authenticate: Bearer`) or
/// 403, both with the JSON error shape.
pub async fn guard(State(policy): State<Arc<AccessPolicy>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| *peer);
    match policy.requirement(request.method(), request.uri().path(), peer) {
        Requirement::None => next.run(request).await,
        Requirement::Loopback => {
            ApiError { status: StatusCode::FORBIDDEN, message: format!("/admin answers only local callers unless {TOKEN_ENV} is set") }
                .into_response()
        }
        Requirement::Token => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")));
            let Some(token) = &policy.token else { return next.run(request).await };
            if presented.is_some_and(|presented| token.matches(presented.trim())) {
                return next.run(request).await;
            }
            let message = if presented.is_some() { "the bearer token is not valid" } else { "this route needs Authorization: Bearer <API token>" };
            let mut response = ApiError { status: StatusCode::UNAUTHORIZED, message: message.into() }.into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn local() -> Option<SocketAddr> {
        Some("127.0.0.1:50000".parse().expect("address"))
    }
    fn remote() -> Option<SocketAddr> {
        Some("192.0.2.7:50000".parse().expect("address"))
    }
    fn with_token(reads: bool) -> AccessPolicy {
        AccessPolicy::from_settings(Some(TOKEN.into()), None, reads, |_| unreachable!()).expect("valid")
    }

    #[test]
    fn with_a_token_writes_and_admin_need_it_and_reads_only_when_asked() {
        let policy = with_token(false);
        assert_eq!(policy.requirement(&Method::POST, "/orders", local()), Requirement::Token);
        assert_eq!(policy.requirement(&Method::PUT, "/preferences/c-1", remote()), Requirement::Token);
        assert_eq!(policy.requirement(&Method::POST, "/admin/pause", local()), Requirement::Token);
        assert_eq!(policy.requirement(&Method::GET, "/orders/o-1", remote()), Requirement::None);
        let strict = with_token(true);
        assert_eq!(strict.requirement(&Method::GET, "/orders/o-1", local()), Requirement::Token);
        for open in ["/health", "/ready", "/metrics"] {
            assert_eq!(strict.requirement(&Method::GET, open, remote()), Requirement::None, "{open}");
        }
    }

    #[test]
    fn without_a_token_only_admin_is_closed_and_only_to_strangers() {
        let policy = AccessPolicy::default();
        assert_eq!(policy.requirement(&Method::POST, "/admin/pause", local()), Requirement::None);
        assert_eq!(policy.requirement(&Method::POST, "/admin/pause", Some("[::1]:1".parse().expect("v6"))), Requirement::None);
        assert_eq!(policy.requirement(&Method::POST, "/admin/resume", remote()), Requirement::Loopback);
        assert_eq!(policy.requirement(&Method::POST, "/admin/pause", None), Requirement::Loopback);
        assert_eq!(policy.requirement(&Method::POST, "/orders", remote()), Requirement::None);
    }

    #[test]
    fn tokens_are_checked_whole_and_never_shown() {
        let token = ApiToken::new(TOKEN);
        assert!(token.matches(TOKEN));
        assert!(!token.matches(&TOKEN[..TOKEN.len() - 1]));
        assert!(!token.matches(""));
        assert!(!format!("{:?}", with_token(true)).contains(TOKEN));
    }

    #[test]
    fn weak_or_ambiguous_token_settings_are_refused() {
        let never = |_: &str| -> std::io::Result<String> { unreachable!() };
        assert!(matches!(AccessPolicy::from_settings(Some("short".into()), None, false, never), Err(AccessConfigError::TooShort(5))));
        assert!(matches!(AccessPolicy::from_settings(Some(format!("{TOKEN} x")), None, false, never), Err(AccessConfigError::NotVisibleAscii)));
        assert!(matches!(AccessPolicy::from_settings(Some(TOKEN.into()), Some("f".into()), false, never), Err(AccessConfigError::Both)));
        assert!(matches!(AccessPolicy::from_settings(None, None, true, never), Err(AccessConfigError::ReadsWithoutToken)));
        let from_file = AccessPolicy::from_settings(None, Some("t".into()), false, |_| Ok(format!("{TOKEN}\n"))).expect("file token");
        assert!(from_file.token.is_some_and(|t| t.matches(TOKEN)));
        let missing = AccessPolicy::from_settings(None, Some("/nope".into()), false, |_| Err(std::io::ErrorKind::NotFound.into()));
        assert!(matches!(missing, Err(AccessConfigError::TokenFile { .. })));
    }
}
