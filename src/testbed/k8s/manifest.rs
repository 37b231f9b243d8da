//! [`Rendered`] as Kubernetes objects: one YAML file per object and
//! `all.yaml` with all of them in the order `kubectl apply` needs
//! (namespace, secrets, config maps, meshnet topologies before the pods
//! whose CNI call reads them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    API_SOCKET, CONFIG_DIR, MeshnetLink, MeshnetTopology, Rendered, RenderedRouter, RenderedVnode,
};

pub const MESHNET_API_VERSION: &str = "networkop.co.uk/v1beta1";
/// How long the node may take to TEAR its links down on SIGTERM (it gives
/// itself 5 s by default), and then some.
const GRACE_S: u64 = 15;

/// A meshnet `Topology` resource as a cluster stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopologyResource {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: TopologySpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    pub links: Vec<MeshnetLink>,
}

impl TopologyResource {
    /// Reads a `topology-<pod>.yaml` back.
    pub fn parse(file: &str, yaml: &str) -> Result<Self> {
        serde_norway::from_str(yaml).with_context(|| format!("{file}: not a meshnet Topology"))
    }

    pub fn topology(&self) -> MeshnetTopology {
        MeshnetTopology {
            name: self.metadata.name.clone(),
            links: self.spec.links.clone(),
        }
    }
}

/// One object: its file name and the object.
pub struct Object {
    pub file: String,
    pub value: Value,
}

fn labels(r: &Rendered, node: &str, role: &str) -> Value {
    json!({
        "app.kubernetes.io/part-of": "vlsp",
        "vlsp/topology": r.topology,
        "vlsp/node": node,
        "vlsp/role": role,
    })
}

fn meta(r: &Rendered, name: &str, node: &str, role: &str) -> Value {
    json!({ "name": name, "namespace": r.namespace, "labels": labels(r, node, role) })
}

fn topology_resource(r: &Rendered, t: &MeshnetTopology, node: &str, role: &str) -> Value {
    json!({
        "apiVersion": MESHNET_API_VERSION,
        "kind": "Topology",
        "metadata": meta(r, &t.name, node, role),
        "spec": { "links": t.links },
    })
}

fn config_map_name(pod: &str) -> String {
    format!("{pod}-config")
}

/// The init container: the same image, `vlsp k8s init` on the pod's plan.
fn init_container(r: &Rendered, caps: &[&str]) -> Value {
    json!({
        "name": "init-wait",
        "image": r.image,
        "command": ["vlsp", "k8s", "init", "--plan", format!("{CONFIG_DIR}/init.toml")],
        "securityContext": { "capabilities": { "add": caps } },
        "volumeMounts": [{ "name": "config", "mountPath": CONFIG_DIR, "readOnly": true }],
    })
}

fn router_pod(r: &Rendered, x: &RenderedRouter) -> Value {
    let mut mounts = vec![json!({ "name": "config", "mountPath": CONFIG_DIR, "readOnly": true })];
    let mut volumes =
        vec![json!({ "name": "config", "configMap": { "name": config_map_name(&x.pod) } })];
    for (provider, _, _) in &x.secret_files {
        let s = r
            .secrets
            .iter()
            .find(|s| s.provider == *provider)
            .expect("a router's key files are its providers'");
        mounts.push(json!({ "name": s.name, "mountPath": s.mount, "readOnly": true }));
        volumes.push(
            json!({ "name": s.name, "secret": { "secretName": s.name, "defaultMode": 0o400 } }),
        );
    }
    let api_dir = Path::new(API_SOCKET).parent().expect("an absolute path");
    mounts.push(json!({ "name": "run", "mountPath": api_dir }));
    volumes.push(json!({ "name": "run", "emptyDir": {} }));
    let main = if x.nsis {
        json!({
            "name": "vlsp-node",
            "image": r.image,
            "command": x.node_args,
            "env": [{ "name": "VLSP_LOG", "value": r.log }],
            // NET_ADMIN: tunnel ends, bridges, HTB classes, SO_RCVBUFFORCE;
            // NET_RAW: the Router Alert socket; NET_BIND_SERVICE: GIST's port 270.
            "securityContext": { "capabilities": { "add": ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"] } },
            "readinessProbe": {
                "exec": { "command": ["vlsp", "node", "health", "--api", API_SOCKET] },
                "periodSeconds": 5,
                "failureThreshold": 3,
            },
            "volumeMounts": mounts,
        })
    } else {
        // A plain router only forwards: the init container set it up.
        json!({
            "name": "router",
            "image": r.image,
            "command": ["sleep", "infinity"],
        })
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(r, &x.pod, &x.name, "router"),
        "spec": {
            "terminationGracePeriodSeconds": GRACE_S,
            // Namespaced, but not in the kubelet's safe set: allow it with
            // --allowed-unsafe-sysctls=net.ipv4.ip_forward.
            "securityContext": { "sysctls": [{ "name": "net.ipv4.ip_forward", "value": "1" }] },
            "initContainers": [init_container(r, &["NET_ADMIN"])],
            "containers": [main],
            "volumes": volumes,
        },
    })
}

fn vnode_pod(r: &Rendered, v: &RenderedVnode) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(r, &v.pod, &v.name, "vnode"),
        "spec": {
            "terminationGracePeriodSeconds": 1,
            // On its host router's k8s node, as a VM is on its host: meshnet
            // then joins them by a veth pair, not VXLAN.
            "affinity": { "podAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": { "matchLabels": { "vlsp/topology": r.topology, "vlsp/node": v.host } },
                "topologyKey": "kubernetes.io/hostname",
            }] } },
            "initContainers": [init_container(r, &["NET_ADMIN"])],
            "containers": [{
                "name": "vnode",
                "image": r.image,
                "command": ["sleep", "infinity"],
            }],
            "volumes": [{ "name": "config", "configMap": { "name": config_map_name(&v.pod) } }],
        },
    })
}

/// Every object, in apply order.
pub fn objects(r: &Rendered) -> Vec<Object> {
    let mut v = vec![Object {
        file: "namespace.yaml".into(),
        value: json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": r.namespace, "labels": { "app.kubernetes.io/part-of": "vlsp", "vlsp/topology": r.topology } },
        }),
    }];
    for s in &r.secrets {
        v.push(Object {
            file: format!("secret-{}.yaml", s.name),
            value: json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta(r, &s.name, &s.provider, "key"),
                "type": "Opaque",
                "stringData": s.files,
            }),
        });
    }
    for x in &r.routers {
        let mut data = serde_json::Map::new();
        data.insert("init.toml".into(), x.init.to_toml().into());
        if x.nsis {
            data.insert("node.toml".into(), x.node_config_toml.clone().into());
        }
        v.push(Object {
            file: format!("configmap-{}.yaml", x.pod),
            value: json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(r, &config_map_name(&x.pod), &x.name, "router"),
                "data": data,
            }),
        });
    }
    for x in &r.vnodes {
        v.push(Object {
            file: format!("configmap-{}.yaml", x.pod),
            value: json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(r, &config_map_name(&x.pod), &x.name, "vnode"),
                "data": { "init.toml": x.init.to_toml() },
            }),
        });
    }
    for x in &r.routers {
        v.push(Object {
            file: format!("topology-{}.yaml", x.pod),
            value: topology_resource(r, &x.topology, &x.name, "router"),
        });
    }
    for x in &r.vnodes {
        v.push(Object {
            file: format!("topology-{}.yaml", x.pod),
            value: topology_resource(r, &x.topology, &x.name, "vnode"),
        });
    }
    for x in &r.routers {
        v.push(Object {
            file: format!("pod-{}.yaml", x.pod),
            value: router_pod(r, x),
        });
    }
    for x in &r.vnodes {
        v.push(Object {
            file: format!("pod-{}.yaml", x.pod),
            value: vnode_pod(r, x),
        });
    }
    v
}

pub fn to_yaml(v: &Value) -> String {
    serde_norway::to_string(v).expect("a JSON value always serializes as YAML")
}

/// Writes one file per object and `all.yaml` into `dir`; the files written.
pub fn write_dir(r: &Rendered, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut all = String::new();
    let mut files = Vec::new();
    for o in objects(r) {
        let y = to_yaml(&o.value);
        let p = dir.join(&o.file);
        std::fs::write(&p, &y).with_context(|| format!("cannot write {}", p.display()))?;
        all.push_str("---\n");
        all.push_str(&y);
        files.push(p);
    }
    let p = dir.join("all.yaml");
    std::fs::write(&p, all).with_context(|| format!("cannot write {}", p.display()))?;
    files.push(p);
    Ok(files)
}
