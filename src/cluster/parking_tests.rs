//! The parking lot with a real mirror in front of the mirror's map-backed registry, whose
//! copies end when the test says: a parked workload is woken when its copies end; a failure is
//! handed to it once, also after the mirror has forgotten it, while a success is left to the
//! mirror's record; once the daemon is stopping, its waiting task reconciles it instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::parking::{Finish, HANDED_TTL, ParkingLot, ParkingObserver};
use crate::audit::WorkloadKey;
use crate::image::manifest::RawManifest;
use crate::image::reference::{Digest, ImageRef};
use crate::reconcile::parking::Parking;
use crate::registry::client::RegistryClient;
use crate::registry::mirror::fake::{CopyBehaviour, Fake};
use crate::registry::mirror::{Ensured, Mirror, Outcome, test_mirror};
use crate::workload::Kind;

const BACKUP: &str = "backup.example.com/mirror";
const SOURCE: &str = "app:1";

fn source() -> ImageRef {
    ImageRef::parse(SOURCE).expect("a valid reference")
}

fn web() -> WorkloadKey {
    WorkloadKey {
        kind: Kind::Deployment,
        namespace: "shop".into(),
        name: "web".into(),
    }
}

/// The last count of parked workloads the lot told.
#[derive(Default)]
struct Counted(AtomicUsize);

impl ParkingObserver for Counted {
    fn waiting(&self, workloads: usize) {
        self.0.store(workloads, Ordering::SeqCst);
    }
}

/// A registry, a mirror in front of it, and a lot in which `web` is parked on the mirror's copy
/// of [`SOURCE`]; the lot's Deployment wake-ups, and its direct reconciles (the daemon
/// stopping), are told on channels.
struct Parked {
    registry: Arc<Fake>,
    mirror: Mirror,
    lot: ParkingLot,
    counted: Arc<Counted>,
    wakeups: mpsc::UnboundedReceiver<WorkloadKey>,
    finishes: mpsc::UnboundedReceiver<WorkloadKey>,
}

fn parked(registry: Arc<Fake>) -> Parked {
    let registry = registry.with(SOURCE, RawManifest::modern(Digest::sha256_of(b"app")));
    let mirror = test_mirror(Arc::clone(&registry) as Arc<dyn RegistryClient>, BACKUP, 1);
    let counted = Arc::new(Counted::default());
    let lot = ParkingLot::observed(Arc::clone(&counted) as _);
    let (finished, finishes) = mpsc::unbounded_channel();
    let finish: Finish = Arc::new(move |w| {
        let _ = finished.send(w);
        Box::pin(async {})
    });
    let wakeups = lot.register(Kind::Deployment, finish);
    park(&lot, &mirror);
    Parked {
        registry,
        mirror,
        lot,
        counted,
        wakeups,
        finishes,
    }
}

/// `f`'s output, failing the test when it does not come (a wake-up that never happens).
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("it should have come by now")
}

/// Parks `web` on the copy of [`SOURCE`] that `mirror` starts.
fn park(lot: &ParkingLot, mirror: &Mirror) {
    let Ensured::Running(copy) = mirror.start(&source()) else {
        panic!("the copy should be running");
    };
    lot.park(web(), vec![copy]);
}

#[tokio::test]
async fn a_parked_workload_is_woken_when_its_copy_ends_and_finds_it_in_the_mirror() {
    let mut p = parked(Fake::holding(CopyBehaviour::Faithful));
    tokio::task::yield_now().await;
    assert!(p.wakeups.try_recv().is_err(), "woken before its copy ended");
    assert_eq!(p.lot.waiting(), 1);
    assert_eq!(p.counted.0.load(Ordering::SeqCst), 1, "told");

    p.registry.release();
    assert_eq!(within(p.wakeups.recv()).await, Some(web()));
    within(p.lot.idle()).await;
    assert_eq!(p.counted.0.load(Ordering::SeqCst), 0, "told");
    assert!(p.lot.handed(&web()).is_empty(), "a success is not handed");
    let Some(Ok(copied)) = p.mirror.recorded(&source()) else {
        panic!("the mirror should remember the copy");
    };
    assert_eq!(copied.outcome, Outcome::Copied);
    assert!(
        p.finishes.try_recv().is_err(),
        "the controller reconciles it"
    );
}

/// The mirror remembers a failure for 3 s; a wake-up that comes later behind a long queue must
/// still find it, or the reconcile would start the failed copy again at once.
#[tokio::test(start_paused = true)]
async fn a_failed_copy_is_handed_over_after_the_mirror_forgot_it_and_not_for_ever() {
    let mut p = parked(Fake::new(CopyBehaviour::Fails));
    assert_eq!(within(p.wakeups.recv()).await, Some(web()));
    tokio::time::advance(p.mirror.options().failure_ttl * 2).await;
    assert!(
        p.mirror.recorded(&source()).is_none(),
        "the mirror forgot it"
    );
    let handed = p.lot.handed(&web());
    let failed = &handed[source().canonical().as_ref()];
    assert_eq!(failed.reason(), "BackupUnavailable", "{failed}");
    assert!(p.lot.handed(&web()).is_empty(), "handed over once");

    park(&p.lot, &p.mirror);
    assert_eq!(within(p.wakeups.recv()).await, Some(web()));
    tokio::time::advance(HANDED_TTL + Duration::from_secs(1)).await;
    assert!(
        p.lot.handed(&web()).is_empty(),
        "an old outcome is asked again"
    );
}

#[tokio::test]
async fn once_stopping_the_waiting_task_reconciles_the_workload_itself() {
    let mut p = parked(Fake::holding(CopyBehaviour::Faithful));
    p.lot.stopping();
    p.registry.release();
    assert_eq!(within(p.finishes.recv()).await, Some(web()));
    within(p.lot.idle()).await;
    assert_eq!(p.lot.waiting(), 0);
    assert!(
        p.wakeups.try_recv().is_err(),
        "a stopping controller takes no work"
    );
    assert!(matches!(p.mirror.recorded(&source()), Some(Ok(_))));
}
