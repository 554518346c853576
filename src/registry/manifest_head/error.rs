//! How a manifest HEAD failed.

use std::time::{Duration, SystemTime};

use http::header;
use thiserror::Error;

use super::retry_after::parse_retry_after;

#[derive(Debug, Error)]
pub enum HeadError {
    #[error("manifest HEAD not usable here ({0}); falling back to skopeo inspect")]
    Unsupported(String),
    #[error("manifest HEAD {url}: {detail}")]
    Request { url: String, detail: String },
    #[error("manifest HEAD {url}: timed out")]
    Timeout { url: String },
    /// The registry answered 429 (to the HEAD or to its token request). Asking skopeo the same
    /// registry instead would only meet the same limit, slower.
    #[error("manifest HEAD {url}: rate-limited by the registry (429){}", wait_text(*.retry_after))]
    RateLimited {
        url: String,
        /// What its `Retry-After` header asked for, when it sent a readable one.
        retry_after: Option<Duration>,
    },
}

fn wait_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry after {}", humantime::format_duration(d)),
        None => String::new(),
    }
}

impl HeadError {
    /// A short, stable label per variant, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HeadError::Unsupported(_) => "HeadUnsupported",
            HeadError::Request { .. } => "HeadRequestFailed",
            HeadError::Timeout { .. } => "HeadTimeout",
            HeadError::RateLimited { .. } => "RateLimited",
        }
    }

    /// The error for a 429 answer to `url`.
    pub(super) fn rate_limited(url: &str, headers: &http::HeaderMap) -> HeadError {
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        HeadError::RateLimited {
            url: url.to_owned(),
            retry_after,
        }
    }
}
