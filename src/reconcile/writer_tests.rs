//! [`Writer`]'s own connections against the simulator (faults injected, its counters read) and
//! against a bare HTTP server on loopback (the request line as sent, a closed connection):
//! throttling is waited out, an error is the server's `Status` as kube's client reports it,
//! the server's path and a closed connection are handled (api_tests.rs has the burst of
//! writes and their token and agent).

use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::runtime::events::EventType;
use kube_sim::FailRule;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::api::{Unobserved, WorkloadApi};
use super::api_tests::{NS, api, app, cluster, pin_image, reporter, stored_image};
use super::error::ApiError;
use super::patch::Op;
use super::writer::Writer;
use crate::workload::partial::Deployment;

#[tokio::test]
async fn throttled_writes_are_sent_again_once_the_server_allows() {
    let sim = cluster();
    let api = api(&sim).await;
    sim.faults().fail_next(FailRule {
        verb: Some("patch".into()),
        resource: Some("deployments".into()),
        count: 2,
        status: 429,
        retry_after: Some(0),
    });
    sim.faults().fail_next(FailRule {
        verb: Some("create".into()),
        resource: Some("events".into()),
        count: 1,
        status: 503,
        retry_after: None,
    });
    api.patch::<Deployment>(NS, "app-3", &pin_image())
        .await
        .expect("patched once the server allows");
    let obj = Api::<Deployment>::namespaced(api.client().clone(), NS)
        .get("app-3")
        .await
        .expect("read");
    api.event(&obj, EventType::Normal, "Cloned", "copied".into())
        .await;

    let codes = |verb: &str, resource: &str| -> Vec<u16> {
        let requests = sim.faults().requests();
        requests
            .iter()
            .filter(|r| r.verb == verb && r.resource == resource)
            .map(|r| r.code)
            .collect()
    };
    assert_eq!(codes("patch", "deployments"), [429, 429, 200]);
    assert_eq!(codes("create", "events"), [503, 201]);
    assert_eq!(stored_image(&sim, "app-3"), "backup.example.com/nginx:1.27");
}

#[tokio::test]
async fn an_error_answer_is_the_servers_status_as_kubes_client_reports_it() {
    let sim = cluster();
    let direct = api(&sim).await;
    let through_kube = WorkloadApi::new(
        crate::sim_client::client(&sim).await,
        reporter(),
        Arc::new(Unobserved),
    );
    let status = |result: Result<Option<String>, ApiError>| match result {
        Err(ApiError::Kube(kube::Error::Api(s))) => (s.code, s.reason, s.message),
        other => panic!("expected the server's Status, got {other:?}"),
    };
    let missing = status(
        direct
            .patch::<Deployment>(NS, "no-such-app", &pin_image())
            .await,
    );
    assert_eq!(missing.0, 404, "{missing:?}");
    assert_eq!(
        missing,
        status(
            through_kube
                .patch::<Deployment>(NS, "no-such-app", &pin_image())
                .await
        )
    );
    // A failed `test` operation: what a concurrent edit looks like.
    let stale = vec![Op::Test {
        path: "/spec/template/spec/containers/0/image".into(),
        value: json!("nginx:0.1"),
    }];
    let conflict = status(direct.patch::<Deployment>(NS, "app-4", &stale).await);
    assert_eq!(conflict.0, 422, "{conflict:?}");
    assert_eq!(
        conflict,
        status(through_kube.patch::<Deployment>(NS, "app-4", &stale).await)
    );
    assert_eq!(stored_image(&sim, "app-4"), "nginx:1.27");
}

#[test]
fn a_configuration_with_a_proxy_is_refused_not_bypassed() {
    let mut config = kube::Config::new("https://127.0.0.1:6443".parse().expect("a URL"));
    config.proxy_url = Some("http://127.0.0.1:3128".parse().expect("a URL"));
    let refused = Writer::for_config(&config).err().expect("refused");
    assert!(refused.to_string().contains("127.0.0.1:3128"), "{refused}");
}

/// An answer of `{}`.
const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

/// A bare HTTP/1.1 server on loopback that answers `answers` in turn (then the last again) and
/// closes each connection right after its first answer (without saying so: no `Connection:
/// close`); the request heads it read, and the connections it accepted, in order.
async fn closing_server(
    answers: &'static [&'static [u8]],
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    let (heads, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut answers = answers.iter().copied();
        let mut last = OK;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut read = Vec::new();
            let mut buf = [0u8; 4096];
            let head = loop {
                let n = socket.read(&mut buf).await.expect("read");
                assert!(n > 0, "the client closed before a whole request");
                read.extend_from_slice(&buf[..n]);
                if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                    break String::from_utf8_lossy(&read[..end]).into_owned();
                }
            };
            last = answers.next().unwrap_or(last);
            socket.write_all(last).await.expect("answer");
            let _ = heads.send(head);
            // Dropped: the connection is closed.
        }
    });
    (format!("127.0.0.1:{}", address.port()), seen)
}

/// A throttled write is sent again with the head it was first sent with, whatever its headers:
/// a few (kept in place) or many, a name given twice included.
#[tokio::test]
async fn a_throttled_write_is_sent_again_with_the_same_head() {
    const THROTTLED: &[u8] =
        b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n";
    let (authority, mut seen) = closing_server(&[THROTTLED, OK, THROTTLED, THROTTLED, OK]).await;
    let config = kube::Config::new(format!("http://{authority}").parse().expect("a URL"));
    let writer = Writer::for_config(&config).expect("a writer");
    let few = http::Request::post("/api/v1/namespaces/shop/events")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(b"{}".to_vec())
        .expect("a request");
    let many = http::Request::patch("/apis/apps/v1/namespaces/shop/deployments/web")
        .header("content-type", "application/json-patch+json")
        .header("accept", "application/json")
        .header("x-trace", "a")
        .header("x-trace", "b")
        .header("x-tenant", "shop")
        .header("x-more", "1")
        .body(b"[]".to_vec())
        .expect("a request");
    for (request, attempts) in [(few, 2), (many, 3)] {
        let answer = writer.send(request).await.expect("answered");
        assert_eq!(&answer[..], b"{}");
        let mut heads = Vec::new();
        for _ in 0..attempts {
            heads.push(seen.recv().await.expect("a request head"));
        }
        assert!(heads.iter().all(|h| *h == heads[0]), "{heads:#?}");
    }
    let last = seen.try_recv();
    assert!(last.is_err(), "an attempt too many: {last:?}");
}

#[tokio::test]
async fn writes_go_under_the_servers_path_and_a_connection_it_closed_is_replaced() {
    let (authority, mut seen) = closing_server(&[OK]).await;
    let config = kube::Config::new(
        format!("http://{authority}/k8s/clusters/c-1/")
            .parse()
            .expect("a URL"),
    );
    let writer = Writer::for_config(&config).expect("a writer");
    for n in 0..3 {
        let request = http::Request::patch(
            "/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=image-cloner",
        )
        .body(b"[]".to_vec())
        .expect("a request");
        let answer = writer.send(request).await.expect("answered");
        assert_eq!(&answer[..], b"{}", "write {n}");
        let head = seen.recv().await.expect("a request head");
        let mut lines = head.lines();
        assert_eq!(
            lines.next(),
            Some(
                "PATCH /k8s/clusters/c-1/apis/apps/v1/namespaces/shop/deployments/web?fieldManager=image-cloner HTTP/1.1"
            ),
            "write {n}"
        );
        assert!(
            lines.any(|l| l.eq_ignore_ascii_case(&format!("host: {authority}"))),
            "write {n}: {head}"
        );
        // Time for the client to see the close.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server that closes every connection as soon as it accepts it: the write is tried on a
/// second connection, then fails with why, rather than opening connections without end.
#[tokio::test]
async fn a_server_that_closes_every_connection_at_once_fails_the_write() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(socket);
        }
    });
    let config = kube::Config::new(format!("http://{address}").parse().expect("a URL"));
    let writer = Writer::for_config(&config).expect("a writer");
    let request = http::Request::post("/api/v1/namespaces/shop/events")
        .body(b"{}".to_vec())
        .expect("a request");
    let error = tokio::time::timeout(Duration::from_secs(10), writer.send(request))
        .await
        .expect("an answer in time")
        .expect_err("no answer from a server that closes");
    let text = error.to_string();
    assert!(
        text.contains("before this request was answered")
            || text.contains("closed a new connection"),
        "{text}"
    );
    assert!(
        accepted.load(std::sync::atomic::Ordering::Relaxed) <= 2,
        "{accepted:?}"
    );
}

/// Writes sent all at once on the real kube-apiserver (envtest), far more than the writer's
/// connections, so that most are pipelined behind others: each is answered as it would be alone
/// — a patch whose `test` holds applied, a stale one refused with the server's 422 `Status`,
/// each Event created — and the stored objects say the same.
#[tokio::test]
async fn the_real_api_server_answers_each_of_a_burst_of_pipelined_writes() {
    use futures::future::join_all;
    use k8s_openapi::api::apps::v1::Deployment as FullDeployment;
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::events::v1::Event;
    use kube::api::PostParams;
    use kube::config::{KubeConfigOptions, Kubeconfig};

    const WORKLOADS: usize = 120;
    const NS: &str = "pipelined";
    let Some(envtest) = kube_sim::envtest::Envtest::start() else {
        return;
    };
    let kubeconfig = Kubeconfig::read_from(envtest.kubeconfig()).expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config");
    let client = kube::Client::try_from(config.clone()).expect("a client");
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}});
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(namespace).expect("a Namespace"),
        )
        .await
        .expect("the namespace created");
    let deployments = Api::<FullDeployment>::namespaced(client.clone(), NS);
    for i in 0..WORKLOADS {
        deployments
            .create(
                &PostParams::default(),
                &serde_json::from_value(app(NS, i)).expect("a Deployment"),
            )
            .await
            .expect("created");
    }

    let writer = Writer::for_config(&config).expect("a writer");
    let image = "/spec/template/spec/containers/0/image";
    let patch = |i: usize| {
        // Every third workload's `test` is stale, as after a concurrent edit.
        let tested = if i.is_multiple_of(3) {
            "nginx:0.1"
        } else {
            "nginx:1.27"
        };
        let operations = json!([
            {"op": "test", "path": image, "value": tested},
            {"op": "replace", "path": image, "value": format!("backup.example.com/nginx:1.27-{i}")},
        ]);
        http::Request::patch(format!(
            "/apis/apps/v1/namespaces/{NS}/deployments/app-{i}?fieldManager=image-cloner"
        ))
        .header("content-type", "application/json-patch+json")
        .header("accept", "application/json")
        .body(serde_json::to_vec(&operations).expect("JSON"))
        .expect("a request")
    };
    let event = |i: usize| {
        let body = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": format!("app-{i}.cloned"), "namespace": NS},
            "eventTime": "2026-12-04T06:00:00.000000Z",
            "reportingController": "image-cloner",
            "reportingInstance": "test",
            "action": "Patch",
            "reason": "Cloned",
            "type": "Normal",
            "note": format!("write {i}"),
            "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": format!("app-{i}")},
        });
        http::Request::post(format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(serde_json::to_vec(&body).expect("JSON"))
            .expect("a request")
    };
    let writes = (0..WORKLOADS).flat_map(|i| {
        let writer = &writer;
        [
            Box::pin(async move { (i, "patch", writer.send(patch(i)).await) })
                as std::pin::Pin<Box<dyn Future<Output = _>>>,
            Box::pin(async move { (i, "event", writer.send(event(i)).await) }),
        ]
    });
    for (i, what, answered) in join_all(writes).await {
        match (what, i.is_multiple_of(3), answered) {
            ("patch", false, Ok(answer)) => {
                let object: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
                assert_eq!(object["metadata"]["name"], format!("app-{i}"));
            }
            ("patch", true, Err(kube::Error::Api(status))) => {
                assert_eq!(status.code, 422, "{i}: {status:?}");
            }
            ("event", _, Ok(answer)) => {
                let object: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
                assert_eq!(object["note"], format!("write {i}"));
            }
            (what, stale, answered) => {
                panic!("{what} {i} (stale: {stale}) answered {answered:?}")
            }
        }
    }
    for d in deployments
        .list(&Default::default())
        .await
        .expect("listed")
        .items
    {
        let name = d.metadata.name.clone().expect("a name");
        let i: usize = name["app-".len()..].parse().expect("a number");
        let object = serde_json::to_value(&d).expect("JSON");
        let stored = object["spec"]["template"]["spec"]["containers"][0]["image"].as_str();
        let expected = if i.is_multiple_of(3) {
            "nginx:1.27".to_owned()
        } else {
            format!("backup.example.com/nginx:1.27-{i}")
        };
        assert_eq!(stored, Some(expected.as_str()), "{name}");
    }
    let events = Api::<Event>::namespaced(client, NS)
        .list(&Default::default())
        .await
        .expect("listed");
    assert_eq!(events.items.len(), WORKLOADS);
}
