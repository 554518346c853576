//! The manifest HEAD client against small fake registries on loopback.

use super::*;

#[test]
fn docker_config_keys_name_hosts_the_way_docker_login_writes_them() {
    assert_eq!(config_key_host("https://index.docker.io/v1/"), "docker.io");
    assert_eq!(config_key_host("quay.io"), "quay.io");
    assert_eq!(
        config_key_host("https://Registry.Example:5000"),
        "registry.example:5000"
    );
}

#[test]
fn credentials_never_show_in_debug_output() {
    let b = BasicAuth(encode_basic("alice", "secret"));
    assert_eq!(format!("{b:?}"), "BasicAuth(***)");
}

/// A registry on loopback (plain HTTP) answering each request with `answer(request head,
/// its own host)`.
async fn fake_registry(answer: fn(&str, &str) -> String) -> String {
    recording_registry(answer).await.0
}

/// The first line of each request a [`recording_registry`] was sent, lowercase, in order.
pub(super) type Seen = Arc<std::sync::Mutex<Vec<String>>>;

/// [`fake_registry`], recording what it was sent.
pub(super) async fn recording_registry(answer: fn(&str, &str) -> String) -> (String, Seen) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("its address").to_string();
    let me = host.clone();
    let seen = Seen::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let me = me.clone();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    if conn.read_buf(&mut request).await.unwrap_or(0) == 0 {
                        return;
                    }
                }
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let line = text.lines().next().unwrap_or_default().to_owned();
                record.lock().expect("the record").push(line);
                let _ = conn.write_all(answer(&text, &me).as_bytes()).await;
            });
        }
    });
    (host, seen)
}

fn head_client(host: &str) -> ManifestHead {
    ManifestHead::new(
        Vec::new(),
        Vec::new(),
        vec![host.to_owned()],
        None,
        Duration::from_secs(5),
    )
    .expect("a client")
}

#[tokio::test]
async fn a_429_is_rate_limited_with_its_retry_after() {
    let host = fake_registry(|_, _| {
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
    })
    .await;
    let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    let err = head_client(&host)
        .resolve(&image)
        .await
        .expect_err("rate-limited");
    // Returned from the plain-HTTP attempt, not replaced by the HTTPS one's failure.
    match &err {
        HeadError::RateLimited { url, retry_after } => {
            assert_eq!(url, &format!("http://{host}/v2/team/app/manifests/1"));
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("not rate-limited: {other}"),
    }
    assert!(err.to_string().contains("(429), retry after 7s"), "{err}");
    assert_eq!(err.reason(), "RateLimited");
}

#[tokio::test]
async fn a_429_from_the_token_endpoint_is_rate_limited_too() {
    let host = fake_registry(|line, me| {
        if line.starts_with("head ") {
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        } else {
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .into()
        }
    })
    .await;
    let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    let err = head_client(&host)
        .digest(&image)
        .await
        .expect_err("rate-limited");
    match &err {
        HeadError::RateLimited { url, retry_after } => {
            assert_eq!(url, &format!("http://{host}/token"));
            assert_eq!(*retry_after, None);
        }
        other => panic!("not rate-limited: {other}"),
    }
}

#[test]
fn a_protocol_error_is_not_reported_as_a_cert_dir() {
    let err = TlsSetupError::ProtocolVersions {
        source: rustls::Error::General("no usable versions".into()),
    };
    assert!(!err.to_string().contains("CA certificates"), "{err}");
    assert!(err.to_string().contains("no usable versions"), "{err}");
    assert_eq!(err.reason(), "TLSProtocolVersions");
}

/// An answer with no body that closes the connection.
pub(super) fn status(line: &str, headers: &str) -> String {
    format!("HTTP/1.1 {line}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
}

/// A token endpoint's 200 with `body` (JSON).
pub(super) fn token_answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A 401 with a Bearer challenge naming the token endpoint at `me`/token.
pub(super) fn bearer_challenge(me: &str) -> String {
    let challenge = format!("WWW-Authenticate: Bearer realm=\"http://{me}/token\"\r\n");
    status("401 Unauthorized", &challenge)
}

/// A client holding credentials for `host`, to show the anonymous question never sends them.
pub(super) fn client_with_credentials(host: &str) -> ManifestHead {
    ManifestHead::new(
        vec![(host.to_owned(), encode_basic("alice", "pw"))],
        Vec::new(),
        vec![host.to_owned()],
        None,
        Duration::from_secs(5),
    )
    .expect("a client")
}

async fn visibility_of(answer: fn(&str, &str) -> String) -> Result<Visibility, HeadError> {
    let host = fake_registry(answer).await;
    let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    client_with_credentials(&host).visibility(&image).await
}

#[tokio::test]
async fn a_registry_answering_strangers_is_public() {
    let ok = |_: &str, _: &str| {
        status(
            "200 OK",
            "Docker-Content-Digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\r\n",
        )
    };
    assert_eq!(
        visibility_of(ok).await.expect("an answer"),
        Visibility::Public
    );
    // No credentials asked, no such tag: nothing there is private (the copy says "missing").
    let missing = |_: &str, _: &str| status("404 Not Found", "");
    assert_eq!(
        visibility_of(missing).await.expect("an answer"),
        Visibility::Public
    );
}

#[tokio::test]
async fn basic_auth_registries_are_private_and_never_get_the_credentials() {
    // Would answer 200 to the docker config's credentials: a leak would read as public.
    let htpasswd = |req: &str, _: &str| {
        if req.contains("authorization: basic") {
            status("200 OK", "")
        } else {
            status(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"r\"\r\n",
            )
        }
    };
    assert_eq!(
        visibility_of(htpasswd).await.expect("an answer"),
        Visibility::Private
    );
}

#[tokio::test]
async fn an_anonymous_token_decides_by_what_it_opens() {
    // Docker Hub's way: anyone gets a token; a private repository still answers 401 to it.
    let hub = |req: &str, me: &str| {
        if req.contains("authorization: basic") {
            status("500 Leaked", "")
        } else if req.starts_with("get /token") {
            token_answer(r#"{"token":"anon"}"#)
        } else if req.contains("authorization: bearer anon") {
            status("401 Unauthorized", "")
        } else {
            let challenge =
                format!("WWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"s\"\r\n");
            status("401 Unauthorized", &challenge)
        }
    };
    assert_eq!(
        visibility_of(hub).await.expect("an answer"),
        Visibility::Private
    );
    // A public repository: the anonymous token opens it.
    let open = |req: &str, me: &str| {
        if req.starts_with("get /token") {
            token_answer(r#"{"access_token":"anon"}"#)
        } else if req.contains("authorization: bearer anon") {
            status("200 OK", "")
        } else {
            bearer_challenge(me)
        }
    };
    assert_eq!(
        visibility_of(open).await.expect("an answer"),
        Visibility::Public
    );
    // A token endpoint that refuses strangers.
    let refusing = |req: &str, me: &str| {
        if req.starts_with("get /token") {
            status("401 Unauthorized", "")
        } else {
            bearer_challenge(me)
        }
    };
    assert_eq!(
        visibility_of(refusing).await.expect("an answer"),
        Visibility::Private
    );
}

#[tokio::test]
async fn a_429_to_the_anonymous_question_is_rate_limited() {
    let throttled = |_: &str, _: &str| status("429 Too Many Requests", "Retry-After: 4\r\n");
    match visibility_of(throttled).await {
        Err(HeadError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(4)));
        }
        other => panic!("not rate-limited: {other:?}"),
    }
}

#[tokio::test]
async fn the_pull_budget_is_read_from_credentialed_answers() {
    let host = fake_registry(|_, _| {
        status(
            "200 OK",
            "Docker-Content-Digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\r\nRateLimit-Remaining: 6;w=21600\r\n",
        )
    })
    .await;
    let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    let client = client_with_credentials(&host);
    assert_eq!(
        client.take_pull(&host, 5),
        Ok(()),
        "unknown before an answer"
    );
    client.resolve(&image).await.expect("resolved");
    assert_eq!(client.take_pull(&host, 5), Ok(()), "6 left: one more pull");
    assert_eq!(client.take_pull(&host, 5), Err(5), "the reserve is kept");
}

pub(super) const DIGEST_HEADER: &str = "Docker-Content-Digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n";

/// Docker Hub's way for a public repository: a 401 challenge, an anonymous token, then 200.
fn open_behind_a_token(req: &str, me: &str) -> String {
    if req.starts_with("get /token") {
        token_answer(r#"{"token":"anon"}"#)
    } else if req.contains("authorization: bearer anon") {
        status("200 OK", DIGEST_HEADER)
    } else {
        bearer_challenge(me)
    }
}

#[tokio::test]
async fn an_anonymous_200_answers_the_mirrors_resolve_once_when_no_credentials_exist() {
    let host = fake_registry(open_behind_a_token).await;
    let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    let client = head_client(&host);
    assert_eq!(
        client.visibility(&image).await.expect("an answer"),
        Visibility::Public
    );
    let kept = client
        .answered_anonymously(&image)
        .expect("the answer kept");
    assert_eq!(kept.digest.as_str(), format!("sha256:{}", "0".repeat(64)));
    assert!(kept.is_modern(), "{kept:?}");
    assert_eq!(client.answered_anonymously(&image), None, "taken once");
    let other = ImageRef::parse(&format!("{host}/team/app:2")).expect("a reference");
    assert_eq!(client.answered_anonymously(&other), None, "by reference");
}

#[tokio::test]
async fn no_answer_is_kept_where_credentials_would_change_the_question() {
    let ok = |_: &str, _: &str| status("200 OK", DIGEST_HEADER);
    let host = fake_registry(ok).await;
    let image = ImageRef::parse(&format!("{host}/team/app:1")).expect("a reference");
    let credentialed = client_with_credentials(&host);
    assert_eq!(
        credentialed.visibility(&image).await.expect("an answer"),
        Visibility::Public
    );
    assert_eq!(credentialed.answered_anonymously(&image), None);
    let helped = ManifestHead::new(
        Vec::new(),
        vec![host.clone()],
        vec![host.clone()],
        None,
        Duration::from_secs(5),
    )
    .expect("a client");
    assert_eq!(
        helped.visibility(&image).await.expect("an answer"),
        Visibility::Public
    );
    assert_eq!(
        helped.answered_anonymously(&image),
        None,
        "a credential helper's registry"
    );
    // Absent for anyone: public, but nothing to resolve to.
    let missing = fake_registry(|_, _| status("404 Not Found", "")).await;
    let gone = ImageRef::parse(&format!("{missing}/team/app:1")).expect("a reference");
    let client = head_client(&missing);
    assert_eq!(
        client.visibility(&gone).await.expect("an answer"),
        Visibility::Public
    );
    assert_eq!(client.answered_anonymously(&gone), None);
}

#[tokio::test(start_paused = true)]
async fn a_kept_answer_is_not_used_once_it_is_old() {
    let answers = anonymous::AnonymousAnswers::default();
    let image = ImageRef::parse("registry.example/team/app:1").expect("a reference");
    let answer = Resolved {
        digest: Digest::parse(&format!("sha256:{}", "0".repeat(64))).expect("a digest"),
        media_type: None,
    };
    answers.keep(&image, answer.clone());
    tokio::time::advance(ANSWER_REUSED_WITHIN - Duration::from_millis(1)).await;
    assert_eq!(answers.take(&image), Some(answer.clone()), "still fresh");
    answers.keep(&image, answer);
    tokio::time::advance(ANSWER_REUSED_WITHIN).await;
    assert_eq!(
        answers.take(&image),
        None,
        "too old: the mirror asks itself"
    );
}

/// Asking only insecure registries never reads the system's CA certificates (~19 M
/// instructions); the first verified request does.
#[tokio::test]
async fn the_system_certificates_are_read_when_a_verified_registry_is_first_asked() {
    let host = fake_registry(|_, _| {
        status(
            "200 OK",
            "Docker-Content-Digest: sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        )
    })
    .await;
    let insecure = head_client(&host);
    let image = ImageRef::parse(&format!("{host}/app:1")).expect("a reference");
    assert!(insecure.digest(&image).await.expect("answered").is_some());
    assert!(!insecure.verified.is_made(), "no verified request yet");

    let verifying = ManifestHead::new(
        Vec::new(),
        Vec::new(),
        Vec::new(),
        None,
        Duration::from_secs(5),
    )
    .expect("a client");
    // A port nobody listens on: refused, after the client was made.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let nowhere = ImageRef::parse(&format!("{closed}/app:1")).expect("a reference");
    assert!(verifying.digest(&nowhere).await.is_err());
    assert!(verifying.verified.is_made());
}

/// `cert_dir` is still read when the client is set up: a bad certificate there stops the
/// start instead of the first verified request.
#[test]
fn a_bad_certificate_in_cert_dir_stops_the_set_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("bad.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let err = ManifestHead::new(
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Some(dir.path()),
        Duration::from_secs(5),
    )
    .err()
    .expect("refused");
    assert_eq!(err.reason(), "CertDir");
    assert!(err.to_string().contains("bad.crt"), "{err}");
}

/// What a [`slow_registry`] saw: connections accepted, requests in flight at most.
#[derive(Default)]
struct Load {
    connections: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    answered: std::sync::atomic::AtomicUsize,
}

/// A registry on loopback (plain HTTP, kept-alive connections) answering every manifest HEAD
/// 200 with a digest after `delay`, counting its load.
async fn slow_registry(delay: Duration) -> (String, Arc<Load>) {
    use std::sync::atomic::Ordering::SeqCst;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let host = listener.local_addr().expect("its address").to_string();
    let load = Arc::new(Load::default());
    let seen = Arc::clone(&load);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            seen.connections.fetch_add(1, SeqCst);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut pending = Vec::new();
                loop {
                    while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
                        if conn.read_buf(&mut pending).await.unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    let end = pending
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .expect("a whole head")
                        + 4;
                    pending.drain(..end);
                    let now = seen.in_flight.fetch_add(1, SeqCst) + 1;
                    seen.peak.fetch_max(now, SeqCst);
                    tokio::time::sleep(delay).await;
                    seen.in_flight.fetch_sub(1, SeqCst);
                    let answer = "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\r\nContent-Length: 0\r\n\r\n";
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    seen.answered.fetch_add(1, SeqCst);
                }
            });
        }
    });
    (host, load)
}

#[tokio::test]
async fn a_registry_is_asked_a_few_questions_at_a_time_on_kept_connections() {
    use std::sync::atomic::Ordering::SeqCst;
    let (host, load) = slow_registry(Duration::from_millis(20)).await;
    let (other, other_load) = slow_registry(Duration::from_millis(20)).await;
    let client = head_client(&host);
    let client = ManifestHead {
        insecure: Arc::new(vec![host.clone(), other.clone()]),
        ..client
    };
    let images: Vec<ImageRef> = (0..40)
        .map(|i| ImageRef::parse(&format!("{host}/team/app-{i}:1")).expect("a reference"))
        .chain(
            (0..4)
                .map(|i| ImageRef::parse(&format!("{other}/team/app-{i}:1")).expect("a reference")),
        )
        .collect();
    let answers =
        futures::future::join_all(images.iter().map(|image| client.visibility(image))).await;
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Visibility::Public))),
        "every question answered: {answers:?}"
    );
    assert_eq!(load.answered.load(SeqCst), 40);
    assert_eq!(load.peak.load(SeqCst), QUESTIONS_PER_REGISTRY);
    assert!(
        load.connections.load(SeqCst) <= QUESTIONS_PER_REGISTRY,
        "{} connections for {QUESTIONS_PER_REGISTRY} questions at a time",
        load.connections.load(SeqCst)
    );
    // Another registry's questions do not wait behind the first one's.
    assert_eq!(other_load.peak.load(SeqCst), 4);
}
