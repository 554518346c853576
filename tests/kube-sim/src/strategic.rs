//! `application/strategic-merge-patch+json` for the API server simulator.
//!
//! This is a port of the server-side half of
//! `k8s.io/apimachinery/pkg/util/strategicpatch` (`StrategicMergeMapPatch`,
//! i.e. `mergeMap` with `MergeParallelList: true, IgnoreUnmatchedNulls: true`)
//! working on [`serde_json::Value`].
//!
//! Instead of Go struct tags, the `patchStrategy`/`patchMergeKey` metadata comes
//! from a small built-in table keyed by the Kubernetes Kind and the JSON path of a
//! list with list indices removed (e.g. `spec.template.spec.containers` for a
//! Deployment). Unknown kinds get no metadata at all: maps merge recursively and
//! every list is replaced, exactly like a JSON merge patch.
//!
//! Ordering follows the real server: elements already present keep their live
//! order, elements named in the patch take the patch's relative order, and a
//! `$setElementOrder/<list>` directive (sent by `kubectl apply`) takes precedence
//! over both. Note that, like the real server, a new element sent without
//! `$setElementOrder` lands *before* the live elements that the patch does not
//! mention (`kubectl patch` adding a container puts it first).

use serde_json::{Map, Number, Value};

type JsonMap = Map<String, Value>;
type Result<T> = std::result::Result<T, StrategicPatchError>;

const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// Go's `reflect.Type` spelling of the decoded JSON types, used in messages.
const GO_MAP_TYPE: &str = "map[string]interface {}";
const GO_LIST_TYPE: &str = "[]interface {}";

/// Errors of [`apply`]. The `Display` messages are the ones the real
/// `strategicpatch`/`mergepatch` packages produce (Go `%v` formatting included);
/// `path` fields carry the dotted JSON path (list indices removed, `""` for the
/// root) for diagnostics and are not part of the messages.
#[derive(Debug, thiserror::Error)]
pub enum StrategicPatchError {
    /// The patch (or the original object) is not a JSON object.
    #[error("json: cannot unmarshal {actual} into Go value of type map[string]interface {{}}")]
    NotAnObject { actual: &'static str },

    /// A `$patch` directive with an unknown value (in a map or a list element).
    #[error("unknown patch type: {directive} in map: {map}")]
    InvalidDirective {
        path: String,
        directive: String,
        map: String,
    },

    /// A `$`-prefixed key that is not a strategic-merge-patch directive.
    #[error("unknown patch directive {key:?} at {path:?}")]
    UnknownDirective { path: String, key: String },

    /// An element of a list merged by key lacks the merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    MissingMergeKey {
        path: String,
        key: String,
        map: String,
    },

    /// `{"$patch": "merge"}` as a list element.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeListDirective { path: String },

    /// A list of maps with a merge strategy but no merge key (e.g. maps in `finalizers`).
    #[error("cannot merge lists without merge key for {path}")]
    NoMergeKeyForList { path: String },

    /// `$retainKeys` is not a list, or the patch sets a key missing from it.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys { path: String },

    /// Malformed `$deleteFromPrimitiveList/<list>` directive.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList { path: String },

    /// Malformed `$setElementOrder/<list>` directive.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder { path: String },

    /// The patch list names elements in an order contradicting `$setElementOrder`.
    #[error(
        "The order in patch list:\n{patch_list}\n doesn't match $setElementOrder list:\n{order_list}\n"
    )]
    SetElementOrderMismatch {
        path: String,
        patch_list: String,
        order_list: String,
    },

    /// A value has the wrong JSON type (Go type names in the message).
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        path: String,
        expected: &'static str,
        actual: &'static str,
    },

    /// A merging list contains lists.
    #[error("lists of lists are not supported")]
    ListOfLists { path: String },

    /// The elements of a merging list (original and patch together) differ in type.
    #[error("list element types are not identical: {lists}")]
    MixedListTypes { path: String, lists: String },
}

impl StrategicPatchError {
    /// The dotted JSON path (list indices removed) where the error was found,
    /// when known. `Some("")` is the root object.
    #[must_use]
    #[allow(dead_code)]
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::NotAnObject { .. } => None,
            Self::InvalidDirective { path, .. }
            | Self::UnknownDirective { path, .. }
            | Self::MissingMergeKey { path, .. }
            | Self::MergeListDirective { path }
            | Self::NoMergeKeyForList { path }
            | Self::BadRetainKeys { path }
            | Self::BadPrimitiveList { path }
            | Self::BadSetElementOrder { path }
            | Self::SetElementOrderMismatch { path, .. }
            | Self::BadArgType { path, .. }
            | Self::ListOfLists { path }
            | Self::MixedListTypes { path, .. } => Some(path),
        }
    }
}

/// Applies the strategic merge patch `patch` to `original`, an object of Kind `kind`.
///
/// Which lists merge by which key is decided by the JSON path of the list with list
/// indices removed, e.g. `"spec.template.spec.containers"` for a Deployment (see the
/// module documentation). A `null` patch is a no-op, as it is for the real server.
///
/// # Errors
///
/// A [`StrategicPatchError`] when the patch or the original is not an object, or the
/// patch is malformed: unknown `$patch` value or `$`-directive, list element without
/// its merge key, bad `$retainKeys` / `$setElementOrder` / `$deleteFromPrimitiveList`,
/// or mixed element types in a merging list.
pub fn apply(original: &Value, patch: &Value, kind: &str) -> Result<Value> {
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => JsonMap::new(),
        other => {
            return Err(StrategicPatchError::NotAnObject {
                actual: json_type_name(other),
            });
        }
    };
    let patch = match patch {
        Value::Object(map) => map.clone(),
        Value::Null => return Ok(Value::Object(original)),
        other => {
            return Err(StrategicPatchError::NotAnObject {
                actual: json_type_name(other),
            });
        }
    };
    let schema = Schema { kind };
    merge_map(original, patch, &schema, "").map(Value::Object)
}

// ---------------------------------------------------------------------------
// Patch metadata (the `patchStrategy` / `patchMergeKey` struct tags).
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListStrategy {
    /// No `patchStrategy`: the patch's list replaces the original one.
    Replace,
    /// `patchStrategy:"merge"` without a merge key (list of scalars, e.g. finalizers).
    MergePrimitive,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`.
    MergeByKey(&'static str),
}

impl ListStrategy {
    fn merge_key(self) -> Option<&'static str> {
        match self {
            Self::MergeByKey(key) => Some(key),
            Self::Replace | Self::MergePrimitive => None,
        }
    }
}

const KNOWN_KINDS: [&str; 19] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
    "Service",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Namespace",
    "Lease",
    "PodDisruptionBudget",
    "Event",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
];

const POD_TEMPLATE_KINDS: [&str; 5] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
];

struct Schema<'k> {
    kind: &'k str,
}

impl Schema<'_> {
    /// Paths of the `metav1.ObjectMeta` objects of the kind.
    fn object_meta_paths(&self) -> &'static [&'static str] {
        if POD_TEMPLATE_KINDS.contains(&self.kind) {
            &["metadata", "spec.template.metadata"]
        } else if self.kind == "CronJob" {
            &[
                "metadata",
                "spec.jobTemplate.metadata",
                "spec.jobTemplate.spec.template.metadata",
            ]
        } else {
            &["metadata"]
        }
    }

    /// Path of the `core/v1.PodSpec` of the kind.
    fn pod_spec_path(&self) -> Option<&'static str> {
        if self.kind == "Pod" {
            Some("spec")
        } else if POD_TEMPLATE_KINDS.contains(&self.kind) {
            Some("spec.template.spec")
        } else if self.kind == "CronJob" {
            Some("spec.jobTemplate.spec.template.spec")
        } else {
            None
        }
    }

    fn list_strategy(&self, path: &str) -> ListStrategy {
        if !KNOWN_KINDS.contains(&self.kind) {
            return ListStrategy::Replace;
        }
        for meta in self.object_meta_paths() {
            match strip_path_prefix(path, meta) {
                Some("ownerReferences") => return ListStrategy::MergeByKey("uid"),
                Some("finalizers") => return ListStrategy::MergePrimitive,
                _ => {}
            }
        }
        if let Some(pod_spec) = self.pod_spec_path()
            && let Some(rest) = strip_path_prefix(path, pod_spec)
            && let Some(strategy) = pod_spec_list_strategy(rest)
        {
            return strategy;
        }
        match (self.kind, path) {
            ("Pod", "status.conditions") => ListStrategy::MergeByKey("type"),
            ("Pod", "status.podIPs" | "status.hostIPs") => ListStrategy::MergeByKey("ip"),
            ("Pod", "status.resourceClaimStatuses") => ListStrategy::MergeByKey("name"),
            (
                "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "Namespace"
                | "Service",
                "status.conditions",
            ) => ListStrategy::MergeByKey("type"),
            ("Service", "spec.ports") => ListStrategy::MergeByKey("port"),
            ("ServiceAccount", "secrets") => ListStrategy::MergeByKey("name"),
            _ => ListStrategy::Replace,
        }
    }
}

/// Lists of `core/v1.PodSpec` (path relative to the PodSpec) with a merge strategy.
/// Everything else in a PodSpec (tolerations, args, command, envFrom, readinessGates,
/// resizePolicy, ...) is replaced.
fn pod_spec_list_strategy(rest: &str) -> Option<ListStrategy> {
    let strategy = match rest {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "schedulingGates"
        | "resourceClaims"
        | "evictionResponders" => ListStrategy::MergeByKey("name"),
        "hostAliases" => ListStrategy::MergeByKey("ip"),
        "topologySpreadConstraints" => ListStrategy::MergeByKey("topologyKey"),
        _ => {
            let (container_list, field) = rest.split_once('.')?;
            if !matches!(
                container_list,
                "containers" | "initContainers" | "ephemeralContainers"
            ) {
                return None;
            }
            match field {
                "env" => ListStrategy::MergeByKey("name"),
                "ports" => ListStrategy::MergeByKey("containerPort"),
                "volumeMounts" => ListStrategy::MergeByKey("mountPath"),
                "volumeDevices" => ListStrategy::MergeByKey("devicePath"),
                _ => return None,
            }
        }
    };
    Some(strategy)
}

fn strip_path_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    path.strip_prefix(prefix)?.strip_prefix('.')
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

// ---------------------------------------------------------------------------
// Maps.
// ---------------------------------------------------------------------------

/// `mergeMap`: merges `patch` into `original` (the map at `path`).
fn merge_map(
    mut original: JsonMap,
    mut patch: JsonMap,
    schema: &Schema<'_>,
    path: &str,
) -> Result<JsonMap> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        match directive.as_str() {
            Some(REPLACE_DIRECTIVE) => {
                patch.remove(DIRECTIVE_MARKER);
                return strip_map(patch, path);
            }
            // Like the real server: the map's content goes, the (now empty) map stays.
            Some(DELETE_DIRECTIVE) => return Ok(JsonMap::new()),
            _ => return Err(invalid_directive(path, directive, &patch)),
        }
    }

    apply_retain_keys(&mut original, &mut patch, path)?;
    merge_set_element_order(&mut original, &mut patch, schema, path)?;

    let mut deletion_lists = Vec::new();
    for (key, patch_value) in patch {
        if key.starts_with('$') {
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
                let list_key = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX, path)?;
                deletion_lists.push((list_key, patch_value));
                continue;
            }
            return Err(StrategicPatchError::UnknownDirective {
                path: path.to_owned(),
                key,
            });
        }
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let child = child_path(path, &key);
        let current = original.get_mut(&key).map(std::mem::take);
        let merged = match (current, patch_value) {
            (Some(Value::Object(current)), Value::Object(patch_map)) => Some(Value::Object(
                merge_map(current, patch_map, schema, &child)?,
            )),
            (Some(Value::Array(current)), Value::Array(patch_list)) => {
                let strategy = schema.list_strategy(&child);
                Some(Value::Array(merge_list(
                    current, patch_list, strategy, schema, &child,
                )?))
            }
            // Absent in the original, or of another type: take the patch value.
            (_, patch_value) => strip_new(patch_value, &child)?,
        };
        match merged {
            Some(value) => {
                original.insert(key, value);
            }
            None => {
                original.remove(&key);
            }
        }
    }

    for (list_key, patch_value) in deletion_lists {
        if patch_value.is_null() {
            original.remove(&list_key);
            continue;
        }
        let child = child_path(path, &list_key);
        let (Some(Value::Array(current)), Value::Array(to_delete)) =
            (original.get_mut(&list_key), patch_value)
        else {
            // Nothing to delete from (or mismatched types): ignored, as upstream.
            continue;
        };
        if current.is_empty() && to_delete.is_empty() {
            continue;
        }
        if slice_element_kind(&[current.as_slice(), to_delete.as_slice()], &child)?
            == Some(ElemKind::Map)
        {
            return Err(StrategicPatchError::BadPrimitiveList { path: child });
        }
        current.retain(|item| !to_delete.iter().any(|d| values_eq(d, item)));
    }
    Ok(original)
}

/// `applyRetainKeysDirective`: drops the original keys missing from `$retainKeys`.
fn apply_retain_keys(original: &mut JsonMap, patch: &mut JsonMap, path: &str) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let bad = || StrategicPatchError::BadRetainKeys {
        path: path.to_owned(),
    };
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let retained = |key: &str| retain.iter().any(|r| r.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(key) {
            return Err(bad());
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// `mergePatchIntoOriginal`: processes every `$setElementOrder/<list>` directive
/// together with `<list>` of the patch, and removes both from the patch.
fn merge_set_element_order(
    original: &mut JsonMap,
    patch: &mut JsonMap,
    schema: &Schema<'_>,
    path: &str,
) -> Result<()> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in directive_keys {
        let Some(order) = patch.remove(&directive_key) else {
            continue;
        };
        let order = match order {
            Value::Array(order) => order,
            other => return Err(bad_arg_type(path, GO_LIST_TYPE, &other)),
        };
        let list_key = extract_key(&directive_key, SET_ELEMENT_ORDER_PREFIX, path)?;
        let child = child_path(path, &list_key);
        let original_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type(&child, GO_LIST_TYPE, other)),
        };
        let patch_list = match patch.remove(&list_key) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(other) => return Err(bad_arg_type(&child, GO_LIST_TYPE, &other)),
        };
        let strategy = schema.list_strategy(&child);
        let merge_key = strategy.merge_key();
        validate_patch_with_set_order_list(
            patch_list.as_deref().unwrap_or(&[]),
            &order,
            merge_key,
            &child,
        )?;

        let server_order = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(current), None) => current,
            (None, Some(patch_list)) => strip_list(patch_list, &child)?,
            (Some(current), Some(patch_list)) => {
                merge_list(current, patch_list, strategy, schema, &child)?
            }
            (None, None) => continue,
        };
        let (patch_items, server_only) = partition_by_presence(merged, &order, merge_key, &child)?;
        let ordered = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &server_order,
            merge_key,
            &child,
        )?;
        original.insert(list_key, Value::Array(ordered));
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list must name its elements in the
/// relative order of the `$setElementOrder` list (deletions are ignored).
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut non_delete = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_some() {
            let Value::Object(map) = item else {
                return Err(bad_arg_type(path, GO_MAP_TYPE, item));
            };
            if map.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE) {
                continue;
            }
        }
        non_delete.push(item);
    }
    let (mut patch_index, mut order_index) = (0, 0);
    while let (Some(item), Some(ordered)) = (non_delete.get(patch_index), order.get(order_index)) {
        if contains_directive_marker(item) {
            patch_index += 1;
            continue;
        }
        if merge_key_value_equal(item, ordered, merge_key, path)? {
            patch_index += 1;
        }
        order_index += 1;
    }
    if patch_index < non_delete.len() && order_index >= order.len() {
        return Err(StrategicPatchError::SetElementOrderMismatch {
            path: path.to_owned(),
            patch_list: go_fmt_list(patch_list),
            order_list: go_fmt_list(order),
        });
    }
    Ok(())
}

fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: Option<&str>,
    path: &str,
) -> Result<bool> {
    let Some(key) = merge_key else {
        return Ok(values_eq(left, right));
    };
    let left_value = merge_key_of(left, key, path)?;
    let right_value = merge_key_of(right, key, path)?;
    Ok(values_eq(left_value, right_value))
}

/// The merge-key value of a list element, which must be a map holding the key.
fn merge_key_of<'v>(item: &'v Value, key: &str, path: &str) -> Result<&'v Value> {
    let Value::Object(map) = item else {
        return Err(bad_arg_type(path, GO_MAP_TYPE, item));
    };
    map.get(key)
        .ok_or_else(|| missing_merge_key(path, key, item))
}

fn contains_directive_marker(item: &Value) -> bool {
    item.as_object()
        .is_some_and(|map| map.contains_key(DIRECTIVE_MARKER))
}

/// `extractKey`: `"$setElementOrder/containers"` -> `"containers"`.
fn extract_key(directive_key: &str, prefix: &str, path: &str) -> Result<String> {
    match directive_key.split_once('/') {
        Some((head, list_key)) if head == prefix => Ok(list_key.to_owned()),
        _ if prefix == SET_ELEMENT_ORDER_PREFIX => Err(StrategicPatchError::BadSetElementOrder {
            path: path.to_owned(),
        }),
        _ => Err(StrategicPatchError::BadPrimitiveList {
            path: path.to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------
// Lists.
// ---------------------------------------------------------------------------

/// `mergeSliceHandler`.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    strategy: ListStrategy,
    schema: &Schema<'_>,
    path: &str,
) -> Result<Vec<Value>> {
    match strategy {
        ListStrategy::Replace => strip_list(patch, path),
        ListStrategy::MergePrimitive => merge_slice(original, patch, None, schema, path),
        ListStrategy::MergeByKey(key) => merge_slice(original, patch, Some(key), schema, path),
    }
}

/// `mergeSlice` for a list with the merge strategy.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&'static str>,
    schema: &Schema<'_>,
    path: &str,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_kind(&[&original, &patch], path)?;

    if kind != Some(ElemKind::Map) {
        // A list of scalars: ordered set union.
        if merge_key.is_some()
            && let Some(item) = original.iter().chain(&patch).find(|v| !v.is_object())
        {
            return Err(bad_arg_type(path, GO_MAP_TYPE, item));
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(&patch) {
            if !merged.iter().any(|m| values_eq(m, item)) {
                merged.push(item.clone());
            }
        }
        let (patch_items, server_only) = partition_by_presence(merged, &patch, None, path)?;
        return normalize_element_order(patch_items, server_only, &patch, &original, None, path);
    }

    let Some(key) = merge_key else {
        return Err(StrategicPatchError::NoMergeKeyForList {
            path: path.to_owned(),
        });
    };
    let (original, patch) = merge_slice_with_special_elements(original, patch, key, path)?;
    let merged = merge_slice_without_special_elements(original.clone(), &patch, key, schema, path)?;
    let (patch_items, server_only) = partition_by_presence(merged, &patch, Some(key), path)?;
    normalize_element_order(patch_items, server_only, &patch, &original, Some(key), path)
}

/// `mergeSliceWithSpecialElements`: applies the `$patch` list elements. Returns the
/// (new) original list and the patch without special elements.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return Err(bad_arg_type(path, GO_MAP_TYPE, &item));
        };
        let Some(directive) = map.get(DIRECTIVE_MARKER) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let Some(doomed) = map.get(key) else {
                    return Err(missing_merge_key(path, key, &item));
                };
                original.retain(|o| {
                    !o.as_object()
                        .and_then(|o| o.get(key))
                        .is_some_and(|v| values_eq(v, doomed))
                });
            }
            // Keep going to prune any other `$patch` element.
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => {
                return Err(StrategicPatchError::MergeListDirective {
                    path: path.to_owned(),
                });
            }
            _ => return Err(invalid_directive(path, directive, map)),
        }
    }
    if replace {
        Ok((strip_list(plain, path)?, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// `mergeSliceWithoutSpecialElements`: merges each patch element into the original
/// element with the same merge-key value, or appends it.
fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    schema: &Schema<'_>,
    path: &str,
) -> Result<Vec<Value>> {
    for item in patch {
        let Value::Object(patch_map) = item else {
            return Err(bad_arg_type(path, GO_MAP_TYPE, item));
        };
        let Some(wanted) = patch_map.get(key) else {
            return Err(missing_merge_key(path, key, item));
        };
        let found = original.iter_mut().find(|o| {
            o.as_object()
                .and_then(|o| o.get(key))
                .is_some_and(|v| values_eq(v, wanted))
        });
        match found {
            Some(slot) => {
                let current = match std::mem::take(slot) {
                    Value::Object(current) => current,
                    _ => JsonMap::new(),
                };
                *slot = Value::Object(merge_map(current, patch_map.clone(), schema, path)?);
            }
            None => {
                if let Some(new_item) = strip_new(item.clone(), path)? {
                    original.push(new_item);
                }
            }
        }
    }
    Ok(original)
}

/// `partitionPrimitivesByPresentInList` / `partitionMapsByPresentInList`: splits
/// `merged` into (items named in `by`, the other items), keeping relative order.
fn partition_by_presence(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut named = Vec::with_capacity(merged.len());
    let mut others = Vec::with_capacity(merged.len());
    for item in merged {
        let present = match merge_key {
            None => by.iter().any(|b| values_eq(b, &item)),
            Some(key) => {
                let wanted = merge_key_of(&item, key, path)?;
                let mut present = false;
                for b in by {
                    let Value::Object(b) = b else {
                        return Err(bad_arg_type(path, GO_MAP_TYPE, b));
                    };
                    if b.get(key).is_some_and(|v| values_eq(v, wanted)) {
                        present = true;
                        break;
                    }
                }
                present
            }
        };
        if present {
            named.push(item);
        } else {
            others.push(item);
        }
    }
    Ok((named, others))
}

/// `normalizeElementOrder`: sorts `patch_items` by `patch_order` and `server_only`
/// by `server_order`, then interleaves them (`mergeSortedSlice`).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<Vec<Value>> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, path)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, path)?;
    Ok(merge_sorted_slice(
        server_only,
        patch_items,
        server_order,
        merge_key,
    ))
}

/// `normalizeSliceOrder`: stable sort of `to_sort` by position in `order`.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    path: &str,
) -> Result<Vec<Value>> {
    let mut to_sort = to_sort;
    let mut to_delete = Vec::new();
    if let Some(key) = merge_key {
        for item in to_sort.iter().chain(order) {
            merge_key_of(item, key, path)?;
        }
        let (keep, delete): (Vec<Value>, Vec<Value>) = to_sort.into_iter().partition(|item| {
            item.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE_DIRECTIVE)
        });
        to_sort = keep;
        to_delete = delete;
    }
    to_sort.sort_by_key(|item| index_of(order, item, merge_key).unwrap_or(usize::MAX));
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// `mergeSortedSlice`: merges `left` (server-only items) into `right` (patch items),
/// keeping both relative orders; a left item goes first only when both items are
/// in `server_order` and the left one comes earlier there.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let take_left = matches!(
            (index_of(server_order, l, merge_key), index_of(server_order, r, merge_key)),
            (Some(li), Some(ri)) if li < ri
        );
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out.extend(left);
    out.extend(right);
    out
}

/// `index`: position of `item` in `list`, comparing merge-key values (or whole values).
fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    let identity = |v: &'_ Value| -> Option<Value> {
        match merge_key {
            Some(key) => v.as_object().and_then(|m| m.get(key)).cloned(),
            None => Some(v.clone()),
        }
    };
    let wanted = identity(item);
    list.iter().position(|v| match (identity(v), &wanted) {
        (None, None) => true,
        (Some(a), Some(b)) => values_eq(&a, b),
        _ => false,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ElemKind {
    Null,
    Bool,
    Number,
    String,
    Map,
}

/// `sliceElementType`: the common element kind of the lists (`None` if all empty).
fn slice_element_kind(lists: &[&[Value]], path: &str) -> Result<Option<ElemKind>> {
    let mut kind = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let this = match item {
            Value::Null => ElemKind::Null,
            Value::Bool(_) => ElemKind::Bool,
            Value::Number(_) => ElemKind::Number,
            Value::String(_) => ElemKind::String,
            Value::Object(_) => ElemKind::Map,
            Value::Array(_) => {
                return Err(StrategicPatchError::ListOfLists {
                    path: path.to_owned(),
                });
            }
        };
        match kind {
            None => kind = Some(this),
            Some(k) if k == this => {}
            Some(_) => {
                let lists: Vec<String> = lists.iter().map(|l| go_fmt_list(l)).collect();
                return Err(StrategicPatchError::MixedListTypes {
                    path: path.to_owned(),
                    lists: format!("[{}]", lists.join(" ")),
                });
            }
        }
    }
    Ok(kind)
}

// ---------------------------------------------------------------------------
// Values taken from the patch as they are (no original to merge with).
// ---------------------------------------------------------------------------

/// `removeDirectives` + `discardNullValuesFromPatch`: a patch value used where the
/// original has nothing to merge with. `None` means "no value" (`$patch: delete`).
fn strip_new(value: Value, path: &str) -> Result<Option<Value>> {
    match value {
        Value::Object(mut map) => {
            if let Some(directive) = map.get(DIRECTIVE_MARKER) {
                match directive.as_str() {
                    Some(DELETE_DIRECTIVE) => return Ok(None),
                    Some(REPLACE_DIRECTIVE) => {
                        map.remove(DIRECTIVE_MARKER);
                    }
                    _ => return Err(invalid_directive(path, directive, &map)),
                }
            }
            Ok(Some(Value::Object(strip_map(map, path)?)))
        }
        Value::Array(list) => Ok(Some(Value::Array(strip_list(list, path)?))),
        other => Ok(Some(other)),
    }
}

/// Drops null values and directives from a map taken from the patch.
fn strip_map(map: JsonMap, path: &str) -> Result<JsonMap> {
    let mut out = JsonMap::new();
    for (key, value) in map {
        if key.starts_with('$') {
            if key == DIRECTIVE_MARKER || key == RETAIN_KEYS_DIRECTIVE {
                continue;
            }
            if key.starts_with(SET_ELEMENT_ORDER_PREFIX) {
                extract_key(&key, SET_ELEMENT_ORDER_PREFIX, path)?;
                continue;
            }
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
                extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX, path)?;
                continue;
            }
            return Err(StrategicPatchError::UnknownDirective {
                path: path.to_owned(),
                key,
            });
        }
        if value.is_null() {
            continue;
        }
        let child = child_path(path, &key);
        if let Some(value) = strip_new(value, &child)? {
            out.insert(key, value);
        }
    }
    Ok(out)
}

/// Drops `$patch` elements (and directives inside elements) from a patch list.
fn strip_list(list: Vec<Value>, path: &str) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        if contains_directive_marker(&item) {
            continue;
        }
        if let Some(item) = strip_new(item, path)? {
            out.push(item);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Helpers: equality and Go-style formatting for error messages.
// ---------------------------------------------------------------------------

/// JSON equality where `80` and `80.0` are the same number (the Go decoder turns
/// integral floats into int64 before comparing merge keys).
fn values_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| values_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_eq(v, w)))
        }
        _ => a == b,
    }
}

fn numbers_eq(x: &Number, y: &Number) -> bool {
    if x.is_f64() || y.is_f64() {
        match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    } else {
        x == y
    }
}

fn invalid_directive(path: &str, directive: &Value, map: &JsonMap) -> StrategicPatchError {
    StrategicPatchError::InvalidDirective {
        path: path.to_owned(),
        directive: go_fmt(directive),
        map: go_fmt_map(map),
    }
}

fn missing_merge_key(path: &str, key: &str, item: &Value) -> StrategicPatchError {
    StrategicPatchError::MissingMergeKey {
        path: path.to_owned(),
        key: key.to_owned(),
        map: go_fmt(item),
    }
}

fn bad_arg_type(path: &str, expected: &'static str, actual: &Value) -> StrategicPatchError {
    StrategicPatchError::BadArgType {
        path: path.to_owned(),
        expected,
        actual: go_type_name(actual),
    }
}

/// The `encoding/json` name of a JSON value's type.
fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `reflect.TypeOf(v)` spelling (as printed with `%s`) of a decoded JSON value.
fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() != 0.0 => "float64",
            _ => "int64",
        },
        Value::String(_) => "string",
        Value::Array(_) => GO_LIST_TYPE,
        Value::Object(_) => GO_MAP_TYPE,
    }
}

/// Go's `%v` of a decoded JSON value.
fn go_fmt(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_fmt_number(n),
        Value::String(s) => s.clone(),
        Value::Array(list) => go_fmt_list(list),
        Value::Object(map) => go_fmt_map(map),
    }
}

fn go_fmt_number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
        _ => n.to_string(),
    }
}

fn go_fmt_list(list: &[Value]) -> String {
    let items: Vec<String> = list.iter().map(go_fmt).collect();
    format!("[{}]", items.join(" "))
}

fn go_fmt_map(map: &JsonMap) -> String {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let items: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
        .collect();
    format!("map[{}]", items.join(" "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value, kind: &str) -> Value {
        apply(&original, &patch, kind).unwrap()
    }

    fn smp_err(original: Value, patch: Value, kind: &str) -> StrategicPatchError {
        apply(&original, &patch, kind).unwrap_err()
    }

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": containers}
                }
            }
        })
    }

    fn containers_of(obj: &Value) -> &Vec<Value> {
        obj.pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .unwrap()
    }

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().map(|c| c["name"].as_str().unwrap()).collect()
    }

    fn assert_no_directives(value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    assert!(!k.starts_with('$'), "directive {k} left in result");
                    assert_no_directives(v);
                }
            }
            Value::Array(list) => list.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    fn two_containers() -> Value {
        json!([
            {"name": "app", "image": "old", "ports": [{"containerPort": 8080}],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "envoy"}
        ])
    }

    #[test]
    fn image_patch_keeps_other_containers_and_fields() {
        let original = deployment(two_containers());
        let patch =
            json!({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"new"}]}}}});
        let result = smp(original, patch, "Deployment");
        let containers = containers_of(&result);
        assert_eq!(names(containers), ["app", "sidecar"]);
        assert_eq!(containers[0]["image"], "new");
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 8080}]));
        assert_eq!(containers[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(containers[1], json!({"name": "sidecar", "image": "envoy"}));
        assert_eq!(result["spec"]["replicas"], 2);
        assert_eq!(result["metadata"]["labels"]["tier"], "fe");
    }

    #[test]
    fn new_container_is_added_in_front_like_the_real_server() {
        // `kubectl patch` without $setElementOrder: upstream mergeSortedSlice puts
        // elements unknown to the live list before the untouched live elements
        // (see the kubectl patch task in the Kubernetes docs: the added redis
        // container is listed first).
        let original = deployment(two_containers());
        let patch =
            json!({"spec":{"template":{"spec":{"containers":[{"name":"extra","image":"redis"}]}}}});
        let result = smp(original, patch, "Deployment");
        let containers = containers_of(&result);
        assert_eq!(names(containers), ["extra", "app", "sidecar"]);
        assert_eq!(containers[0], json!({"name": "extra", "image": "redis"}));
        assert_eq!(containers[1]["image"], "old");
    }

    #[test]
    fn new_container_follows_the_patch_element_before_it() {
        let original = deployment(two_containers());
        let patch = json!({"spec":{"template":{"spec":{"containers":[
            {"name":"app","image":"v2"},
            {"name":"extra","image":"redis"}
        ]}}}});
        let result = smp(original, patch, "Deployment");
        assert_eq!(names(containers_of(&result)), ["app", "extra", "sidecar"]);
    }

    #[test]
    fn new_container_appended_with_set_element_order() {
        // What `kubectl apply` sends when a container is added at the end.
        let original = deployment(two_containers());
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers": [{"name":"app"},{"name":"sidecar"},{"name":"extra"}],
            "containers": [{"name":"extra","image":"redis"}]
        }}}});
        let result = smp(original, patch, "Deployment");
        let containers = containers_of(&result);
        assert_eq!(names(containers), ["app", "sidecar", "extra"]);
        assert_eq!(containers[0]["image"], "old");
        assert_no_directives(&result);
    }

    #[test]
    fn patch_delete_removes_a_container() {
        let original = deployment(two_containers());
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}});
        let result = smp(original, patch, "Deployment");
        let containers = containers_of(&result);
        assert_eq!(names(containers), ["app"]);
        assert_eq!(containers[0]["image"], "old");
        assert_no_directives(&result);
    }

    #[test]
    fn patch_delete_without_merge_key_is_an_error() {
        let err = smp_err(
            deployment(two_containers()),
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"delete"}]}}}}),
            "Deployment",
        );
        assert!(
            matches!(err, StrategicPatchError::MissingMergeKey { .. }),
            "{err}"
        );
    }

    #[test]
    fn env_is_merged_by_name() {
        let original = deployment(two_containers());
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"app","env":[
            {"name":"B","value":"20"},
            {"name":"C","value":"3"},
            {"name":"A","$patch":"delete"}
        ]}]}}}});
        let result = smp(original, patch, "Deployment");
        let env = &containers_of(&result)[0]["env"];
        assert_eq!(
            env,
            &json!([{"name":"B","value":"20"},{"name":"C","value":"3"}])
        );
    }

    #[test]
    fn ports_merge_by_container_port_and_volume_mounts_by_mount_path() {
        let original = json!({"spec":{"containers":[{
            "name":"app",
            "ports":[{"containerPort":80,"name":"http"},{"containerPort":443,"name":"https"}],
            "volumeMounts":[{"mountPath":"/data","name":"data"},{"mountPath":"/etc/cfg","name":"cfg"}]
        }]}});
        let patch = json!({"spec":{"containers":[{
            "name":"app",
            "ports":[{"containerPort":80,"protocol":"TCP"}],
            "volumeMounts":[{"mountPath":"/etc/cfg","readOnly":true}]
        }]}});
        let result = smp(original, patch, "Pod");
        let c = &result["spec"]["containers"][0];
        assert_eq!(
            c["ports"],
            json!([{"containerPort":80,"name":"http","protocol":"TCP"},{"containerPort":443,"name":"https"}])
        );
        assert_eq!(
            c["volumeMounts"],
            json!([{"mountPath":"/data","name":"data"},{"mountPath":"/etc/cfg","name":"cfg","readOnly":true}])
        );
    }

    #[test]
    fn cronjob_containers_merge() {
        let original = json!({
            "kind": "CronJob",
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name":"job","image":"busybox","args":["echo","hi"]},{"name":"log","image":"fluent"}]
            }}}}}
        });
        let patch = json!({"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"job","image":"alpine"}]}}}}}});
        let result = smp(original, patch, "CronJob");
        let containers = result
            .pointer("/spec/jobTemplate/spec/template/spec/containers")
            .unwrap();
        assert_eq!(
            containers,
            &json!([{"name":"job","image":"alpine","args":["echo","hi"]},{"name":"log","image":"fluent"}])
        );
        assert_eq!(result["spec"]["schedule"], "* * * * *");
    }

    #[test]
    fn cronjob_at_deployment_path_is_not_merged() {
        // The PodSpec of a CronJob is not at spec.template.spec: nothing merges there.
        let original =
            json!({"spec":{"template":{"spec":{"containers":[{"name":"a"},{"name":"b"}]}}}});
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"c"}]}}}});
        let result = smp(original, patch, "CronJob");
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{"name":"c"}])
        );
    }

    #[test]
    fn pod_init_containers_merge() {
        let original = json!({"kind":"Pod","spec":{
            "initContainers":[{"name":"init-a","image":"a"},{"name":"init-b","image":"b"}],
            "containers":[{"name":"main","image":"m"}]
        }});
        let patch =
            json!({"spec":{"initContainers":[{"name":"init-b","image":"b2","command":["sh"]}]}});
        let result = smp(original, patch, "Pod");
        assert_eq!(
            result["spec"]["initContainers"],
            json!([{"name":"init-a","image":"a"},{"name":"init-b","image":"b2","command":["sh"]}])
        );
        assert_eq!(
            result["spec"]["containers"],
            json!([{"name":"main","image":"m"}])
        );
    }

    #[test]
    fn set_element_order_reorders_and_disappears() {
        let original = deployment(json!([{"name":"a"},{"name":"b","image":"x"},{"name":"c"}]));
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"c"},{"name":"a"},{"name":"b"}]
        }}}});
        let result = smp(original, patch, "Deployment");
        assert_eq!(names(containers_of(&result)), ["c", "a", "b"]);
        assert_eq!(containers_of(&result)[2]["image"], "x");
        assert!(
            result["spec"]["template"]["spec"]
                .get("$setElementOrder/containers")
                .is_none()
        );
        assert_no_directives(&result);
    }

    /// Fixtures from upstream patch_test.go ("set elements order in a list with
    /// server-only items" 1 and 2): live-only items interleave by live order.
    #[test]
    fn set_element_order_with_server_only_items_matches_upstream() {
        let list = |ns: &[i64]| -> Value {
            Value::Array(ns.iter().map(|n| json!({"name": n.to_string()})).collect())
        };
        let run = |live: &[i64], order: &[i64]| -> Vec<String> {
            let original = json!({"spec": {"containers": list(live)}});
            let patch = json!({"spec": {"$setElementOrder/containers": list(order)}});
            let result = smp(original, patch, "Pod");
            result["spec"]["containers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            run(&[1, 3, 4, 2, 9], &[4, 2, 3, 1]),
            ["4", "2", "3", "1", "9"]
        );
        assert_eq!(
            run(&[1, 2, 9, 3, 4], &[2, 1, 4, 3]),
            ["2", "1", "9", "4", "3"]
        );
        assert_eq!(
            run(&[1, 2, 7, 9, 8, 3, 4], &[2, 1, 4, 3]),
            ["2", "1", "7", "9", "8", "4", "3"]
        );
    }

    #[test]
    fn set_element_order_contradicting_the_patch_is_an_error() {
        let original = deployment(json!([{"name":"a"},{"name":"b"}]));
        let patch = json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"a"},{"name":"b"}],
            "containers":[{"name":"b","image":"1"},{"name":"a","image":"2"}]
        }}}});
        let err = smp_err(original, patch, "Deployment");
        assert!(
            matches!(err, StrategicPatchError::SetElementOrderMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn retain_keys_clears_other_fields() {
        let original =
            json!({"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1}}}});
        let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}});
        let result = smp(original, patch, "Deployment");
        assert_eq!(result["spec"]["strategy"], json!({"type":"Recreate"}));

        let original = json!({"spec":{"volumes":[{"name":"v","emptyDir":{}}]}});
        let patch = json!({"spec":{"volumes":[{"name":"v","$retainKeys":["name","configMap"],"configMap":{"name":"cm"}}]}});
        let result = smp(original, patch, "Pod");
        assert_eq!(
            result["spec"]["volumes"],
            json!([{"name":"v","configMap":{"name":"cm"}}])
        );
    }

    #[test]
    fn retain_keys_must_cover_the_patch() {
        let original = json!({"spec":{"strategy":{"type":"RollingUpdate"}}});
        let patch =
            json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{"maxSurge":1}}}});
        let err = smp_err(original, patch, "Deployment");
        assert!(matches!(err, StrategicPatchError::BadRetainKeys { .. }));
        assert_eq!(err.to_string(), "invalid patch format of retainKeys");
        assert_eq!(err.path(), Some("spec.strategy"));
    }

    #[test]
    fn null_deletes_a_key() {
        let original = deployment(two_containers());
        let patch = json!({"metadata":{"labels":{"tier":null,"new":"x"}},"spec":{"replicas":null}});
        let result = smp(original, patch, "Deployment");
        assert_eq!(result["metadata"]["labels"], json!({"app":"web","new":"x"}));
        assert!(result["spec"].get("replicas").is_none());
        assert!(result["spec"].get("selector").is_some());
    }

    #[test]
    fn nulls_inside_new_values_are_dropped() {
        let original = json!({"metadata":{"name":"x"}});
        let patch = json!({"metadata":{"annotations":{"a":"1","b":null}}});
        let result = smp(original, patch, "ConfigMap");
        assert_eq!(result["metadata"]["annotations"], json!({"a":"1"}));
    }

    #[test]
    fn non_merge_lists_are_replaced() {
        let original = json!({"spec":{
            "tolerations":[{"key":"a","operator":"Exists"},{"key":"b","operator":"Exists"}],
            "containers":[{"name":"app","args":["--a","--b"],"command":["run"]}]
        }});
        let patch = json!({"spec":{
            "tolerations":[{"key":"c","operator":"Exists"}],
            "containers":[{"name":"app","args":["--c"]}]
        }});
        let result = smp(original, patch, "Pod");
        assert_eq!(
            result["spec"]["tolerations"],
            json!([{"key":"c","operator":"Exists"}])
        );
        assert_eq!(
            result["spec"]["containers"],
            json!([{"name":"app","args":["--c"],"command":["run"]}])
        );
    }

    #[test]
    fn missing_merge_key_is_an_error() {
        let original = deployment(two_containers());
        let patch = json!({"spec":{"template":{"spec":{"containers":[{"image":"new"}]}}}});
        let err = smp_err(original, patch, "Deployment");
        assert!(
            matches!(err, StrategicPatchError::MissingMergeKey { .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "map: map[image:new] does not contain declared merge key: name"
        );
        assert_eq!(err.path(), Some("spec.template.spec.containers"));
    }

    #[test]
    fn unknown_kind_is_a_json_merge_patch() {
        let original = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}}}
        });
        let patch = json!({
            "metadata": {"labels": {"b": null, "c": "3"}, "finalizers": ["y"]},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}]}}}
        });
        let result = smp(original, patch, "Widget");
        assert_eq!(
            result,
            json!({
                "metadata": {"labels": {"a": "1", "c": "3"}, "finalizers": ["y"]},
                "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "2"}]}}}
            })
        );
    }

    #[test]
    fn list_replace_directive() {
        let original = deployment(two_containers());
        let patch = json!({"spec":{"template":{"spec":{"containers":[
            {"$patch":"replace"},
            {"name":"only","image":"x"}
        ]}}}});
        let result = smp(original, patch, "Deployment");
        assert_eq!(
            containers_of(&result),
            &vec![json!({"name":"only","image":"x"})]
        );
    }

    #[test]
    fn map_replace_and_delete_directives() {
        let original = json!({"metadata":{"labels":{"a":"1","b":"2"},"annotations":{"x":"y"}}});
        let patch = json!({"metadata":{
            "labels":{"$patch":"replace","c":"3"},
            "annotations":{"$patch":"delete"}
        }});
        let result = smp(original, patch, "ConfigMap");
        assert_eq!(result["metadata"]["labels"], json!({"c":"3"}));
        // Like the server: the deleted map's content is gone.
        assert_eq!(result["metadata"]["annotations"], json!({}));
        assert_no_directives(&result);
    }

    #[test]
    fn invalid_patch_directive_is_an_error() {
        let original = json!({"metadata":{"labels":{"a":"1"}}});
        let err = smp_err(
            original.clone(),
            json!({"metadata":{"labels":{"$patch":"bogus"}}}),
            "ConfigMap",
        );
        assert!(matches!(err, StrategicPatchError::InvalidDirective { .. }));
        assert_eq!(
            err.to_string(),
            "unknown patch type: bogus in map: map[$patch:bogus]"
        );

        let err = smp_err(
            deployment(two_containers()),
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"merge"}]}}}}),
            "Deployment",
        );
        assert!(matches!(
            err,
            StrategicPatchError::MergeListDirective { .. }
        ));
    }

    #[test]
    fn unknown_dollar_key_is_an_error() {
        let err = smp_err(
            json!({"spec":{}}),
            json!({"spec":{"$frobnicate":[1]}}),
            "Pod",
        );
        assert!(
            matches!(err, StrategicPatchError::UnknownDirective { .. }),
            "{err}"
        );
        let err = smp_err(json!({}), json!({"data":{"$x":"1"}}), "ConfigMap");
        assert!(
            matches!(err, StrategicPatchError::UnknownDirective { .. }),
            "{err}"
        );
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let original = json!({"metadata":{"finalizers":["a","b"]}});
        let result = smp(
            original.clone(),
            json!({"metadata":{"finalizers":["b","c"]}}),
            "ConfigMap",
        );
        assert_eq!(result["metadata"]["finalizers"], json!(["a", "b", "c"]));

        let result = smp(
            original.clone(),
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}),
            "ConfigMap",
        );
        assert_eq!(result["metadata"]["finalizers"], json!(["b"]));
        assert_no_directives(&result);

        let err = smp_err(
            original,
            json!({"metadata":{"$deleteFromPrimitiveListfinalizers":["a"]}}),
            "ConfigMap",
        );
        assert!(matches!(err, StrategicPatchError::BadPrimitiveList { .. }));
    }

    #[test]
    fn primitive_lists_with_directives() {
        let original = json!({"metadata":{"finalizers":["a","b","c"]},
            "spec":{"containers":[{"name":"app","args":["-x","-y","-z"]}]}});
        let patch = json!({
            "metadata":{"$setElementOrder/finalizers":["c","a","b"]},
            "spec":{"containers":[{"name":"app","$deleteFromPrimitiveList/args":["-y"]}]}
        });
        let result = smp(original, patch, "Pod");
        assert_eq!(result["metadata"]["finalizers"], json!(["c", "a", "b"]));
        assert_eq!(result["spec"]["containers"][0]["args"], json!(["-x", "-z"]));
        assert_no_directives(&result);
    }

    #[test]
    fn merge_list_missing_from_original_is_taken_from_the_patch() {
        let original = json!({"spec":{"replicas":1}});
        let patch = json!({"spec":{"template":{"spec":{"containers":[
            {"name":"a","image":"x","env":[{"name":"E","value":"1"}]},
            {"name":"b","$patch":"delete"}
        ]}}}});
        let result = smp(original, patch, "Deployment");
        assert_eq!(
            result["spec"]["template"]["spec"]["containers"],
            json!([{"name":"a","image":"x","env":[{"name":"E","value":"1"}]}])
        );
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let original =
            json!({"metadata":{"ownerReferences":[{"uid":"1","kind":"ReplicaSet","name":"rs"}]}});
        let patch = json!({"metadata":{"ownerReferences":[{"uid":"1","controller":true},{"uid":"2","kind":"X","name":"x"}]}});
        let result = smp(original, patch, "Pod");
        assert_eq!(
            result["metadata"]["ownerReferences"],
            json!([{"uid":"1","kind":"ReplicaSet","name":"rs","controller":true},{"uid":"2","kind":"X","name":"x"}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let original = json!({"spec":{"ports":[{"port":80,"targetPort":8080,"name":"http"},{"port":443,"name":"https"}]}});
        let patch = json!({"spec":{"ports":[{"port":80,"targetPort":9090}]}});
        let result = smp(original, patch, "Service");
        assert_eq!(
            result["spec"]["ports"],
            json!([{"port":80,"targetPort":9090,"name":"http"},{"port":443,"name":"https"}])
        );
    }

    #[test]
    fn conditions_merge_by_type_in_status() {
        let original = json!({"status":{"conditions":[{"type":"Available","status":"False"},{"type":"Progressing","status":"True"}]}});
        let patch = json!({"status":{"conditions":[{"type":"Available","status":"True"}]}});
        let result = smp(original, patch, "Deployment");
        assert_eq!(
            result["status"]["conditions"],
            json!([{"type":"Available","status":"True"},{"type":"Progressing","status":"True"}])
        );
    }

    #[test]
    fn no_directive_survives_in_new_values() {
        let original = json!({"spec":{"containers":[{"name":"app"}]}});
        let patch = json!({"spec":{
            "volumes":[{"name":"v","$retainKeys":["name"]},{"name":"gone","$patch":"delete"}],
            "containers":[{"name":"new","env":[{"name":"E","$patch":"delete"}],"$setElementOrder/env":[{"name":"E"}]}],
            "securityContext":{"$patch":"replace","runAsUser":1},
            "dnsConfig":{"$patch":"delete"}
        }});
        let result = smp(original, patch, "Pod");
        assert_no_directives(&result);
        assert_eq!(result["spec"]["volumes"], json!([{"name":"v"}]));
        assert_eq!(result["spec"]["securityContext"], json!({"runAsUser":1}));
        assert!(result["spec"].get("dnsConfig").is_none());
        assert_eq!(
            names(result["spec"]["containers"].as_array().unwrap()),
            ["new", "app"]
        );
    }

    #[test]
    fn non_object_patch_is_an_error_and_null_patch_is_a_no_op() {
        let err = smp_err(json!({}), json!([1]), "Pod");
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        );
        let original = deployment(two_containers());
        assert_eq!(smp(original.clone(), Value::Null, "Deployment"), original);
    }

    #[test]
    fn whole_object_replace_and_empty_patch() {
        let original = deployment(two_containers());
        assert_eq!(smp(original.clone(), json!({}), "Deployment"), original);
        let result = smp(
            original,
            json!({"$patch":"replace","kind":"Deployment"}),
            "Deployment",
        );
        assert_eq!(result, json!({"kind":"Deployment"}));
    }
}
