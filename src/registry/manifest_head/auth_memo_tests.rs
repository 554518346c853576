//! The memo of challenges and tokens (`auth_memo.rs`) against small fake registries on
//! loopback: how many requests a question costs once the registry said what it wants.

use super::tests::{
    DIGEST_HEADER, Seen, bearer_challenge, client_with_credentials, recording_registry, status,
    token_answer,
};
use super::*;

/// A token endpoint's 200, granting `token` for 300 s.
fn grant(token: &str) -> String {
    token_answer(&format!(r#"{{"token":"{token}","expires_in":300}}"#))
}

/// The `Authorization` line of the docker config's credentials (`alice:pw`), lowercase.
fn alices_basic() -> String {
    format!(
        "authorization: basic {}",
        encode_basic("alice", "pw").to_ascii_lowercase()
    )
}

/// A registry behind a token endpoint that grants a token to the docker config's credentials.
fn token_registry(req: &str, me: &str) -> String {
    if req.starts_with("get /token") {
        if req.contains(&alices_basic()) {
            grant("granted")
        } else {
            status("401 Unauthorized", "")
        }
    } else if req.contains("authorization: bearer granted") {
        status("200 OK", DIGEST_HEADER)
    } else {
        let challenge =
            format!("WWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"s\"\r\n");
        status("401 Unauthorized", &challenge)
    }
}

/// A registry asking for Basic credentials (`alice:pw`).
fn basic_registry(req: &str, _: &str) -> String {
    if req.contains(&alices_basic()) {
        status("200 OK", DIGEST_HEADER)
    } else {
        status(
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"r\"\r\n",
        )
    }
}

fn taken(seen: &Seen) -> Vec<String> {
    std::mem::take(&mut *seen.lock().expect("the record"))
}

#[tokio::test]
async fn a_basic_registry_is_sent_its_credentials_once_it_asked_for_them() {
    let (host, seen) = recording_registry(basic_registry).await;
    let client = client_with_credentials(&host);
    let a = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    let b = ImageRef::parse(&format!("{host}/team/other:2")).expect("a reference");
    assert!(client.digest(&a).await.expect("an answer").is_some());
    assert_eq!(
        taken(&seen).len(),
        2,
        "the first question: refused, then answered"
    );
    assert!(client.digest(&a).await.expect("an answer").is_some());
    assert!(client.digest(&b).await.expect("an answer").is_some());
    assert_eq!(
        taken(&seen),
        [
            "head /v2/team/app/manifests/1 http/1.1",
            "head /v2/team/other/manifests/2 http/1.1"
        ],
        "one request per question once the registry said what it wants"
    );
    // The anonymous question never borrows them.
    assert_eq!(
        client.visibility(&a).await.expect("an answer"),
        Visibility::Private
    );
}

#[tokio::test]
async fn a_pull_token_is_asked_once_per_repository_and_reused_while_it_lives() {
    let (host, seen) = recording_registry(token_registry).await;
    let client = client_with_credentials(&host);
    let a = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    let a2 = ImageRef::parse(&format!("{host}/team/app:2")).expect("a reference");
    let b = ImageRef::parse(&format!("{host}/team/other:1")).expect("a reference");
    assert!(client.digest(&a).await.expect("an answer").is_some());
    assert_eq!(taken(&seen).len(), 3, "refused, a token, answered");
    assert!(client.digest(&a).await.expect("an answer").is_some());
    assert!(client.digest(&a2).await.expect("an answer").is_some());
    assert_eq!(
        taken(&seen).len(),
        2,
        "the kept token, for each tag of the repository"
    );
    assert!(client.digest(&b).await.expect("an answer").is_some());
    let other = taken(&seen);
    assert_eq!(
        other.len(),
        2,
        "another repository: its token straight away: {other:?}"
    );
    assert!(
        other[0].starts_with("get /token?scope=repository:team/other:pull"),
        "{other:?}"
    );
}

/// Like [`token_registry`] (for anyone), but each token is good for one request only, so a
/// kept token is refused.
fn single_use_token_registry(req: &str, me: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static GRANTED: AtomicUsize = AtomicUsize::new(0);
    // The last token whose one request was answered.
    static SPENT: AtomicUsize = AtomicUsize::new(0);
    let latest = GRANTED.load(Ordering::SeqCst);
    if req.starts_with("get /token") {
        let n = GRANTED.fetch_add(1, Ordering::SeqCst) + 1;
        grant(&format!("t{n}"))
    } else if req.contains(&format!("authorization: bearer t{latest}\r"))
        && SPENT.swap(latest, Ordering::SeqCst) != latest
    {
        status("200 OK", DIGEST_HEADER)
    } else {
        bearer_challenge(me)
    }
}

#[tokio::test]
async fn a_refused_kept_token_is_replaced_and_the_question_still_answered() {
    let (host, seen) = recording_registry(single_use_token_registry).await;
    let client = client_with_credentials(&host);
    let a = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    assert!(client.digest(&a).await.expect("an answer").is_some());
    assert_eq!(taken(&seen).len(), 3, "refused, a token, answered");
    assert!(
        client
            .digest(&a)
            .await
            .expect("answered after a new token")
            .is_some()
    );
    let again = taken(&seen);
    assert_eq!(
        again.len(),
        3,
        "the kept token refused, a new token, answered: {again:?}"
    );
    assert!(again[1].starts_with("get /token"), "{again:?}");
}
