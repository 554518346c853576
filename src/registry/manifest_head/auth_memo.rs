//! What a registry asked for the last time it refused a request, and the pull tokens it
//! granted, so that the next question goes out with its answer instead of being refused first.
//!
//! Without it every HEAD to a registry that wants credentials is two requests (Basic: the 401,
//! then the answer) or three (Bearer: the 401, a token, the answer): the mirror asks the backup
//! twice per copy and the audit once per backup reference, which DESIGN counts as one request
//! each. Docker's own clients keep tokens the same way.
//!
//! Basic credentials are sent unasked only to the origin (scheme and host) whose last challenge
//! was Basic — where they would go after its 401 anyway. A token is reused only for the same
//! realm, service, repository and credentials, and only until a tenth of its lifetime before
//! it expires; a 401 to a remembered answer drops it, and the request goes through the
//! challenge again. Tokens are credentials: nothing here is logged or printed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::challenge::Challenge;

/// A token lifetime when the token endpoint names none (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens living less than this are not kept: too little is left to reuse them safely.
const SHORTEST_KEPT: Duration = Duration::from_secs(10);

/// Which token: a pull token is for one repository of one service, with or without the docker
/// config's credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct TokenKey {
    pub realm: String,
    pub service: Option<String>,
    pub domain: String,
    pub repository: String,
    pub credentialed: bool,
}

/// A granted token and when it stops being used.
struct Kept {
    token: String,
    until: Instant,
}

#[derive(Default)]
pub(super) struct AuthMemo {
    /// The last challenge of each origin (`scheme://host`) that refused a request.
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<TokenKey, Kept>>,
}

impl AuthMemo {
    /// The challenge `origin` last answered with, if any.
    pub fn challenge(&self, origin: &str) -> Option<Challenge> {
        let challenges = self
            .challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        challenges.get(origin).cloned()
    }

    pub fn learn(&self, origin: &str, challenge: &Challenge) {
        let mut challenges = self
            .challenges
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        challenges.insert(origin.to_owned(), challenge.clone());
    }

    /// A kept token for `key`, while it is not close to expiring.
    pub fn token(&self, key: &TokenKey) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = tokens.get(key)?;
        (Instant::now() < kept.until).then(|| kept.token.clone())
    }

    /// Keeps `token`, granted just now for `expires_in` seconds (the endpoint's figure, when
    /// it gave one), until a tenth of that lifetime is left.
    pub fn keep_token(&self, key: TokenKey, token: &str, expires_in: Option<u64>) {
        let lifetime = expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        if lifetime < SHORTEST_KEPT {
            return;
        }
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|_, kept| now < kept.until);
        tokens.insert(
            key,
            Kept {
                token: token.to_owned(),
                until: now + lifetime - lifetime / 10,
            },
        );
    }

    /// The registry refused `key`'s token: it is not sent again.
    pub fn forget_token(&self, key: &TokenKey) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.remove(key);
    }
}

/// `scheme://host[:port]` of a URL: what a remembered challenge belongs to.
pub(super) fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(repository: &str) -> TokenKey {
        TokenKey {
            realm: "https://auth.example/token".into(),
            service: Some("registry.example".into()),
            domain: "registry.example".into(),
            repository: repository.into(),
            credentialed: true,
        }
    }

    #[test]
    fn origins_are_scheme_and_host() {
        assert_eq!(
            origin_of("https://registry.example:5000/v2/team/app/manifests/1"),
            "https://registry.example:5000"
        );
        assert_eq!(origin_of("http://127.0.0.1:80"), "http://127.0.0.1:80");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_kept_per_repository_until_a_tenth_of_their_life_is_left() {
        let memo = AuthMemo::default();
        memo.keep_token(key("team/app"), "t1", Some(300));
        assert_eq!(memo.token(&key("team/app")).as_deref(), Some("t1"));
        assert_eq!(memo.token(&key("team/other")), None, "another repository");
        let anonymous = TokenKey {
            credentialed: false,
            ..key("team/app")
        };
        assert_eq!(memo.token(&anonymous), None, "another identity");
        tokio::time::advance(Duration::from_secs(269)).await;
        assert_eq!(memo.token(&key("team/app")).as_deref(), Some("t1"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(memo.token(&key("team/app")), None, "30 s of 300 left");
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_are_not_kept_and_refused_ones_are_forgotten() {
        let memo = AuthMemo::default();
        memo.keep_token(key("team/app"), "brief", Some(5));
        assert_eq!(memo.token(&key("team/app")), None);
        memo.keep_token(key("team/app"), "t", None);
        tokio::time::advance(Duration::from_secs(53)).await;
        assert_eq!(
            memo.token(&key("team/app")).as_deref(),
            Some("t"),
            "60 s by default"
        );
        memo.forget_token(&key("team/app"));
        assert_eq!(memo.token(&key("team/app")), None);
    }
}
