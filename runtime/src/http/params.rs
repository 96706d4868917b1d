//! Parameters list routes share.
use super::ApiError;

/// `limit` of list routes: 100 when absent, at most 1000.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// Checks a list route's `limit` parameter (1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`]).
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    let limit = requested.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}
