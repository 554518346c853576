//! Does the backup registry answer anonymous pulls? Asked as a kubelet without a pull secret
//! would: a manifest HEAD of a real copy with no credentials, following the registry's token
//! protocol (an anonymous token request where it asks for a Bearer token) — the manifest HEAD
//! client's [`ManifestHead::visibility`]. Asked once per backup registry: a yes is kept; a no
//! is asked again after [`REFUSED_TTL`], so a registry made public is noticed without a
//! restart; no answer (timeout, 5xx, 429) is not kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::image::reference::ImageRef;
use crate::registry::manifest_head::{ManifestHead, Visibility};

/// How long a refusal is believed before the registry is asked again.
pub const REFUSED_TTL: Duration = Duration::from_secs(600);

/// What the backup registry answered an anonymous pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pullable,
    /// Served only with credentials. Says so.
    Refused(String),
    /// No answer worth keeping.
    Unknown(String),
}

/// The answers, by backup registry host.
pub struct AnonymousCheck {
    /// A manifest HEAD client holding no credentials; `None` when it could not be built (its
    /// TLS setup failed), and every check is then unknown.
    head: Option<ManifestHead>,
    answers: Mutex<HashMap<String, (Verdict, Instant)>>,
}

impl AnonymousCheck {
    pub fn new(head: Option<ManifestHead>) -> Self {
        AnonymousCheck {
            head,
            answers: Mutex::default(),
        }
    }

    /// Whether a node without a pull secret could pull `copy`. Concurrent callers wait for the
    /// one request in flight.
    pub async fn check(&self, copy: &str) -> Verdict {
        if self.known_pullable(copy).await {
            return Verdict::Pullable;
        }
        // Boxed, where it runs: inline, the request's state sized every check, copied into the
        // gate's box for each patched workload (callgrind: ~570 instructions of `memcpy` a
        // workload, with the pull secret's provisioning below).
        Box::pin(self.ask_once(copy)).await
    }

    /// [`Self::check`] for a copy under a registry not known to answer anonymous pulls.
    async fn ask_once(&self, copy: &str) -> Verdict {
        let image = match ImageRef::parse(copy) {
            Ok(i) => i,
            Err(e) => return Verdict::Unknown(format!("{copy} is not a reference: {e}")),
        };
        let registry = image.domain().to_ascii_lowercase();
        let mut answers = self.answers.lock().await;
        match answers.get(&registry) {
            Some((Verdict::Pullable, _)) => return Verdict::Pullable,
            Some((refused, at)) if at.elapsed() < REFUSED_TTL => return refused.clone(),
            _ => {}
        }
        let verdict = self.ask(&image, copy).await;
        match &verdict {
            Verdict::Pullable => {
                tracing::info!(%registry, "the backup registry answers anonymous pulls");
            }
            Verdict::Refused(why) => {
                tracing::warn!(%registry, "{why}: without a pull secret the nodes could not pull the copies");
            }
            Verdict::Unknown(_) => return verdict,
        }
        answers.insert(registry, (verdict.clone(), Instant::now()));
        verdict
    }

    /// Whether `copy` is under a registry that answered anonymous pulls, told without parsing
    /// it: every patched workload asks, and parsing its copy's reference (pinned, ~100
    /// characters) was 4,900 instructions, 1.7 % of a cold `run --once` of 2,000 workloads
    /// (callgrind). A reference's first component is its registry when it names a host, and
    /// the answers are kept by registry as parsed (lower case), so a copy whose first component
    /// (as written) is a registry that said yes is in it; any other copy takes the long way.
    async fn known_pullable(&self, copy: &str) -> bool {
        let Some((first, _)) = copy.split_once('/') else {
            return false;
        };
        matches!(
            self.answers.lock().await.get(first),
            Some((Verdict::Pullable, _))
        )
    }

    /// What the registry answers an anonymous pull of `reference`, which need not exist; not
    /// kept.
    pub async fn probe(&self, reference: &str) -> Verdict {
        match ImageRef::parse(reference) {
            Ok(image) => self.ask(&image, reference).await,
            Err(e) => Verdict::Unknown(format!("{reference} is not a reference: {e}")),
        }
    }

    async fn ask(&self, image: &ImageRef, copy: &str) -> Verdict {
        let Some(head) = &self.head else {
            return Verdict::Unknown("no registry client (its TLS setup failed)".to_owned());
        };
        match head.visibility(image).await {
            Ok(Visibility::Public) => Verdict::Pullable,
            Ok(Visibility::Private) => Verdict::Refused(format!(
                "{} does not serve {copy} without credentials",
                image.domain()
            )),
            Err(e) => Verdict::Unknown(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    /// A registry serving the manifest to anyone.
    const PULLABLE: &str = "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    /// A registry asking for a password.
    const PASSWORD_WANTED: &str = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"testbed\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    /// A plain-HTTP registry on loopback answering every request with `answer`; counts them.
    async fn registry(answer: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("an address").to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::Relaxed);
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    if conn.read_buf(&mut request).await.unwrap_or(0) == 0 {
                        break;
                    }
                }
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        (host, count)
    }

    /// A check whose client speaks plain HTTP to `hosts`.
    fn check_for(hosts: &[&str]) -> AnonymousCheck {
        let head = ManifestHead::new(
            Vec::new(),
            Vec::new(),
            hosts.iter().map(|h| (*h).to_owned()).collect(),
            None,
            Duration::from_secs(1),
        )
        .expect("a client");
        AnonymousCheck::new(Some(head))
    }

    #[tokio::test]
    async fn a_registry_asking_for_a_password_refuses_and_is_believed_for_a_while() {
        let (host, requests) = registry(PASSWORD_WANTED).await;
        let check = check_for(&[&host]);
        let copy = format!("{host}/mirror/app:1@{DIGEST}");
        let verdict = check.check(&copy).await;
        assert!(
            matches!(&verdict, Verdict::Refused(why) if why.contains("does not serve") && why.contains(&copy)),
            "{verdict:?}"
        );
        let asked = requests.load(Ordering::Relaxed);
        assert_eq!(check.check(&copy).await, verdict);
        assert_eq!(requests.load(Ordering::Relaxed), asked, "asked once");
    }

    #[tokio::test]
    async fn an_anonymous_pull_that_works_is_kept() {
        let (host, requests) = registry(PULLABLE).await;
        let check = check_for(&[&host]);
        let copy = format!("{host}/mirror/app:1@{DIGEST}");
        assert_eq!(check.check(&copy).await, Verdict::Pullable);
        let asked = requests.load(Ordering::Relaxed);
        assert_eq!(check.check(&copy).await, Verdict::Pullable);
        let other = format!("{host}/mirror/other@{DIGEST}");
        assert_eq!(check.check(&other).await, Verdict::Pullable);
        assert_eq!(requests.load(Ordering::Relaxed), asked);
    }

    /// A yes from one registry answers for its copies only: a copy in another registry (even
    /// one whose name starts the same) is asked of that registry.
    #[tokio::test]
    async fn a_yes_answers_only_for_its_own_registry() {
        let (open, _) = registry(PULLABLE).await;
        let (closed, refusals) = registry(PASSWORD_WANTED).await;
        let check = check_for(&[&open, &closed]);
        let open_copy = format!("{open}/mirror/app:1@{DIGEST}");
        assert_eq!(check.check(&open_copy).await, Verdict::Pullable);
        let closed_copy = format!("{closed}/mirror/app:1@{DIGEST}");
        assert!(matches!(
            check.check(&closed_copy).await,
            Verdict::Refused(_)
        ));
        assert!(
            refusals.load(Ordering::Relaxed) > 0,
            "the other registry was asked"
        );
        // The open registry's host without its port is another registry.
        let (host, _) = open.split_once(':').expect("host:port");
        let portless = format!("{host}/mirror/app:1@{DIGEST}");
        assert!(!check.known_pullable(&portless).await);
        assert!(check.known_pullable(&format!("{open}/anything")).await);
    }

    #[tokio::test]
    async fn no_answer_is_not_kept() {
        let (host, requests) = registry(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        let check = check_for(&[&host]);
        let copy = format!("{host}/mirror/app:1");
        assert!(matches!(check.check(&copy).await, Verdict::Unknown(_)));
        let asked = requests.load(Ordering::Relaxed);
        assert!(matches!(check.check(&copy).await, Verdict::Unknown(_)));
        assert!(requests.load(Ordering::Relaxed) > asked, "asked again");
    }
}
