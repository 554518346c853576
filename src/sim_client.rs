//! What the unit tests that talk to the API simulator share: putting an object in its store,
//! and a kube client from its kubeconfig.

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_sim::Sim;
use serde_json::Value;

/// Stores `obj` (any kind the simulator serves) in the namespace its metadata names.
pub fn create(sim: &Sim, obj: Value) {
    sim.store().create_object(obj).expect("created");
}

/// A client of `sim`, as image-cloner builds one from a kubeconfig.
pub async fn client(sim: &Sim) -> Client {
    Client::try_from(config(sim).await).expect("a client")
}

/// The client configuration of `sim`'s kubeconfig.
pub async fn config(sim: &Sim) -> kube::Config {
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig()).expect("a kubeconfig");
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config")
}
