//! The images a cluster uses, read from what admins already have: `oc get pods -A -o json`, any
//! list of workloads or ClusterServiceVersions, an oc-mirror `mapping.txt`, or a plain list.
//!
//! Each image keeps where it was seen (`namespace/Kind/name`, or `file:line`), so a finding can
//! name the workloads it will break.

use crate::openshift::parse::{read_documents, untag};
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Image reference as written → where it is used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub images: BTreeMap<String, BTreeSet<String>>,
}

impl Inventory {
    pub fn add(&mut self, image: &str, used_by: String) {
        self.images
            .entry(image.to_string())
            .or_default()
            .insert(used_by);
    }

    pub fn merge(&mut self, other: Inventory) {
        for (image, users) in other.images {
            self.images.entry(image).or_default().extend(users);
        }
    }

    /// Who uses `image`, sorted.
    pub fn users(&self, image: &str) -> Vec<String> {
        self.images
            .get(image)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// How an inventory file was read (detected from its content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Kubernetes objects in YAML or JSON: Pods, workloads, CSVs, lists of them.
    Objects,
    /// `source=destination` lines (oc-mirror's `mapping.txt`): the sources are audited.
    Mapping,
    /// Image references separated by white space (`oc get pods -o jsonpath='{..image}'`).
    Plain,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Objects => "Kubernetes objects",
            Format::Mapping => "mapping (source=destination)",
            Format::Plain => "list of image references",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("{origin}: {message}")]
    Document { origin: String, message: String },
    #[error("{origin}: {object}: {field}: {message}")]
    Field {
        origin: String,
        object: String,
        field: String,
        message: String,
    },
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}: no image references found")]
    Empty(String),
}

/// Reads one inventory file; `source` names it in errors and in `used_by` of text formats.
pub fn parse(source: &str, text: &str) -> Result<(Format, Inventory), InventoryError> {
    let format = detect(text);
    let mut inv = Inventory::default();
    match format {
        Format::Objects => {
            let (docs, error) = read_documents(text, source);
            if let Some((origin, message)) = error {
                return Err(InventoryError::Document { origin, message });
            }
            for (origin, v) in &docs {
                Walker {
                    origin,
                    inv: &mut inv,
                }
                .value(v, "", 0)?;
            }
        }
        Format::Mapping => parse_mapping(source, text, &mut inv)?,
        Format::Plain => parse_plain(source, text, &mut inv)?,
    }
    if inv.is_empty() {
        return Err(InventoryError::Empty(source.to_string()));
    }
    Ok((format, inv))
}

/// The images of one decoded object (or list of them), as the API server serves it; `origin`
/// names it in errors.
pub fn from_object(origin: &str, v: &Value) -> Result<Inventory, InventoryError> {
    let mut inv = Inventory::default();
    Walker {
        origin,
        inv: &mut inv,
    }
    .value(v, "", 0)?;
    Ok(inv)
}

fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn detect(text: &str) -> Format {
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with('{') || body.starts_with('[') || body.starts_with("---") {
        return Format::Objects;
    }
    let yaml_key = |l: &str| {
        ["apiVersion:", "kind:", "items:", "metadata:", "spec:"]
            .iter()
            .any(|k| l.starts_with(k))
    };
    if content_lines(text).any(|(_, l)| yaml_key(l)) {
        return Format::Objects;
    }
    // A reference never holds `=`; a mapping line always does.
    if content_lines(text).next().is_some() && content_lines(text).all(|(_, l)| l.contains('=')) {
        return Format::Mapping;
    }
    Format::Plain
}

fn parse_mapping(source: &str, text: &str, inv: &mut Inventory) -> Result<(), InventoryError> {
    for (line, l) in content_lines(text) {
        let (src, dst) = l.split_once('=').unwrap_or((l, ""));
        let (src, dst) = (src.trim(), dst.trim());
        if src.is_empty() || dst.is_empty() || src.contains(char::is_whitespace) {
            return Err(InventoryError::Line {
                file: source.to_string(),
                line,
                message: format!("expected source=destination, found {l:?}"),
            });
        }
        inv.add(src, format!("{source}:{line}"));
    }
    Ok(())
}

fn parse_plain(source: &str, text: &str, inv: &mut Inventory) -> Result<(), InventoryError> {
    for (line, l) in content_lines(text) {
        for word in l.split_whitespace() {
            if word.starts_with('#') {
                break;
            }
            inv.add(word, format!("{source}:{line}"));
        }
    }
    Ok(())
}

const MAX_DEPTH: usize = 8;

struct Walker<'a> {
    origin: &'a str,
    inv: &'a mut Inventory,
}

impl Walker<'_> {
    /// One object, or a list of them (`kind: List`, `*List`, or a bare array).
    fn value(&mut self, v: &Value, path: &str, depth: usize) -> Result<(), InventoryError> {
        let v = untag(v);
        if depth > MAX_DEPTH {
            return Err(self.doc_error(path, "lists nested too deeply"));
        }
        match v {
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.value(item, &format!("{path}[{i}]"), depth + 1)?;
                }
                Ok(())
            }
            Value::Mapping(_) => self.object(v, path, depth),
            Value::Null => Ok(()),
            _ => Err(self.doc_error(path, "expected a Kubernetes object or a list of them")),
        }
    }

    /// `file`, or `file items[3]` inside a list.
    fn origin_at(&self, path: &str) -> String {
        if path.is_empty() {
            self.origin.to_string()
        } else {
            format!("{} {path}", self.origin)
        }
    }

    fn doc_error(&self, path: &str, message: &str) -> InventoryError {
        let origin = self.origin_at(path);
        InventoryError::Document {
            origin,
            message: message.to_string(),
        }
    }

    fn object(&mut self, v: &Value, path: &str, depth: usize) -> Result<(), InventoryError> {
        let kind = str_at(v, &["kind"]).unwrap_or_default();
        if let Some(items) = v.get("items") {
            if kind.is_empty() || kind.ends_with("List") {
                let at = if path.is_empty() {
                    "items".to_string()
                } else {
                    format!("{path}.items")
                };
                return self.value(items, &at, depth + 1);
            }
        }
        let name = str_at(v, &["metadata", "name"]).unwrap_or("?");
        let namespace = str_at(v, &["metadata", "namespace"]).unwrap_or("-");
        let object = format!("{namespace}/{kind}/{name}");
        let specs: Vec<(&str, Option<&Value>)> = match kind {
            "Pod" => vec![("spec", v.get("spec"))],
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "Job"
            | "ReplicationController"
            | "DeploymentConfig" => {
                vec![("spec.template.spec", get(v, &["spec", "template", "spec"]))]
            }
            "CronJob" => vec![(
                "spec.jobTemplate.spec.template.spec",
                get(v, &["spec", "jobTemplate", "spec", "template", "spec"]),
            )],
            "PodTemplate" => vec![("template.spec", get(v, &["template", "spec"]))],
            "ClusterServiceVersion" => return self.csv(v, &object, path),
            _ => return Ok(()),
        };
        for (field, spec) in specs {
            if let Some(spec) = spec {
                self.pod_spec(spec, &object, path, field, kind == "Pod")?;
            }
        }
        Ok(())
    }

    fn pod_spec(
        &mut self,
        spec: &Value,
        object: &str,
        path: &str,
        field: &str,
        required: bool,
    ) -> Result<(), InventoryError> {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let Some(containers) = spec.get(list) else {
                continue;
            };
            let Value::Sequence(containers) = untag(containers) else {
                return Err(self.field_error(
                    path,
                    object,
                    &format!("{field}.{list}"),
                    "expected a list",
                ));
            };
            for (i, c) in containers.iter().enumerate() {
                let at = format!("{field}.{list}[{i}].image");
                match c.get("image").map(untag) {
                    Some(Value::String(image)) if !image.trim().is_empty() => {
                        self.inv.add(image.trim(), object.to_string());
                    }
                    // Controllers may leave the image to a later admission step; a Pod may not.
                    None | Some(Value::Null) if !required => {}
                    Some(Value::String(_)) | None | Some(Value::Null) => {
                        return Err(self.field_error(
                            path,
                            object,
                            &at,
                            "a container needs an image",
                        ));
                    }
                    Some(_) => {
                        return Err(self.field_error(path, object, &at, "expected a string"))
                    }
                }
            }
        }
        Ok(())
    }

    fn csv(&mut self, v: &Value, object: &str, path: &str) -> Result<(), InventoryError> {
        if let Some(related) = get(v, &["spec", "relatedImages"]) {
            let Value::Sequence(related) = untag(related) else {
                return Err(self.field_error(
                    path,
                    object,
                    "spec.relatedImages",
                    "expected a list",
                ));
            };
            for (i, r) in related.iter().enumerate() {
                match r.get("image").map(untag) {
                    Some(Value::String(image)) if !image.trim().is_empty() => {
                        self.inv.add(image.trim(), object.to_string());
                    }
                    _ => {
                        let at = format!("spec.relatedImages[{i}].image");
                        return Err(self.field_error(
                            path,
                            object,
                            &at,
                            "expected an image reference",
                        ));
                    }
                }
            }
        }
        if let Some(deployments) = get(v, &["spec", "install", "spec", "deployments"]) {
            let Value::Sequence(deployments) = untag(deployments) else {
                let at = "spec.install.spec.deployments";
                return Err(self.field_error(path, object, at, "expected a list"));
            };
            for (i, d) in deployments.iter().enumerate() {
                if let Some(spec) = get(d, &["spec", "template", "spec"]) {
                    let field = format!("spec.install.spec.deployments[{i}].spec.template.spec");
                    self.pod_spec(spec, object, path, &field, false)?;
                }
            }
        }
        Ok(())
    }

    fn field_error(&self, path: &str, object: &str, field: &str, message: &str) -> InventoryError {
        let origin = self.origin_at(path);
        InventoryError::Field {
            origin,
            object: object.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

fn get<'v>(v: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().try_fold(v, |v, k| untag(v).get(*k)).map(untag)
}

fn str_at<'v>(v: &'v Value, keys: &[&str]) -> Option<&'v str> {
    get(v, keys).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(inv: &Inventory, image: &str) -> Vec<String> {
        inv.images
            .get(image)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn pods_list_from_oc_get_pods_json_yields_every_container_kind() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
          {"kind":"Pod","metadata":{"name":"web-1","namespace":"shop"},
           "spec":{"initContainers":[{"name":"i","image":"busybox:1.36"}],
                   "containers":[{"name":"c","image":"nginx:1.25.3"},{"name":"s","image":"quay.io/ns/side@sha256:aa"}],
                   "ephemeralContainers":[{"name":"dbg","image":"registry.access.redhat.com/ubi9/ubi"}]}},
          {"kind":"Pod","metadata":{"name":"web-2","namespace":"shop"},
           "spec":{"containers":[{"name":"c","image":"nginx:1.25.3"}]}}]}"#;
        let (format, inv) = parse("pods.json", text).unwrap();
        assert_eq!(format, Format::Objects);
        assert_eq!(inv.len(), 4);
        assert_eq!(
            users(&inv, "nginx:1.25.3"),
            ["shop/Pod/web-1", "shop/Pod/web-2"]
        );
        assert_eq!(users(&inv, "busybox:1.36"), ["shop/Pod/web-1"]);
        assert!(inv
            .images
            .contains_key("registry.access.redhat.com/ubi9/ubi"));
    }

    #[test]
    fn workloads_cronjobs_and_csvs_in_a_yaml_stream() {
        let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    spec:
      containers: [{name: a, image: "quay.io/shop/api:2"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: ops}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: a, image: "docker.io/library/alpine:3.20"}]
---
apiVersion: operators.coreos.com/v1alpha1
kind: ClusterServiceVersion
metadata: {name: gpu-operator.v24, namespace: nvidia-gpu-operator}
spec:
  relatedImages:
    - {name: driver, image: "nvcr.io/nvidia/driver@sha256:bb"}
  install:
    spec:
      deployments:
        - name: gpu-operator
          spec:
            template:
              spec:
                containers: [{name: op, image: "nvcr.io/nvidia/gpu-operator:v24.3.0"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
data: {image: "not/an-image:1"}
"#;
        let (format, inv) = parse("objects.yaml", text).unwrap();
        assert_eq!(format, Format::Objects);
        assert_eq!(users(&inv, "quay.io/shop/api:2"), ["shop/Deployment/api"]);
        assert_eq!(
            users(&inv, "docker.io/library/alpine:3.20"),
            ["ops/CronJob/nightly"]
        );
        let csv = "nvidia-gpu-operator/ClusterServiceVersion/gpu-operator.v24";
        assert_eq!(users(&inv, "nvcr.io/nvidia/driver@sha256:bb"), [csv]);
        assert_eq!(users(&inv, "nvcr.io/nvidia/gpu-operator:v24.3.0"), [csv]);
        assert!(!inv.images.contains_key("not/an-image:1"));
        assert_eq!(inv.len(), 4);
    }

    #[test]
    fn mapping_files_audit_their_sources_and_plain_lists_split_on_white_space() {
        let text = "# oc-mirror\nregistry.redhat.io/ubi9/ubi@sha256:cc=mirror.example.com/ubi9/ubi:1\n\nquay.io/a/b:1=mirror.example.com/a/b:1\n";
        let (format, inv) = parse("mapping.txt", text).unwrap();
        assert_eq!(format, Format::Mapping);
        assert_eq!(users(&inv, "quay.io/a/b:1"), ["mapping.txt:4"]);
        assert!(!inv
            .images
            .keys()
            .any(|k| k.starts_with("mirror.example.com")));

        let (format, inv) = parse("-", "nginx:1 quay.io/a/b:1\nnginx:1 # the web tier\n").unwrap();
        assert_eq!(format, Format::Plain);
        assert_eq!(inv.len(), 2);
        assert_eq!(users(&inv, "nginx:1"), ["-:1", "-:2"]);
    }

    #[test]
    fn bad_input_names_the_file_and_the_place() {
        let e = parse("pods.json", r#"{"kind":"Pod","metadata":{"name":"p","namespace":"n"},"spec":{"containers":[{"name":"c","image":7}]}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "pods.json: n/Pod/p: spec.containers[0].image: expected a string"
        );

        let e = parse("pods.json", r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}}]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "pods.json items[0]: -/Pod/p: spec.containers[0].image: a container needs an image"
        );

        let e = parse("w.yaml", "kind: Deployment\nmetadata: {name: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("w.yaml#1: cannot read YAML"), "{e}");

        let e = parse("m.txt", "a:1=b:1\n = c:1\n").unwrap_err().to_string();
        assert!(e.starts_with("m.txt:2: expected source=destination"), "{e}");

        let e = parse("cm.yaml", "kind: ConfigMap\nmetadata: {name: x}\n").unwrap_err();
        assert_eq!(e.to_string(), "cm.yaml: no image references found");
        assert_eq!(
            parse("e", "\n# nothing\n").unwrap_err(),
            InventoryError::Empty("e".into())
        );
    }
}
