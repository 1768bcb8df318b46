//! How traffic reaches the pods: the Services, the optional Ingress and the NetworkPolicy.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use crate::crd::IngressSpec as PenpotIngress;

use super::labels;
use super::paths;

/// Metadata shared by every owned object.
pub struct Meta<'a> {
    pub name: &'a str,
    pub namespace: Option<String>,
    pub owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    pub version: &'a str,
}

impl Meta<'_> {
    pub fn object(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: self.namespace.clone(),
            labels: Some(labels::labels(self.name, component, self.version)),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..Default::default()
        }
    }
}

fn http_port() -> ServicePort {
    ServicePort {
        name: Some("http".into()),
        port: paths::NGINX_PORT.into(),
        target_port: Some(IntOrString::String("http".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// The ClusterIP Service users and the Ingress talk to.
pub fn service(m: &Meta) -> Service {
    Service {
        metadata: m.object(m.name.to_string(), "frontend"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(labels::selector(m.name)),
            ports: Some(vec![http_port()]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The StatefulSet's governing Service: stable DNS names per pod.
pub fn headless_service(m: &Meta) -> Service {
    Service {
        metadata: m.object(labels::headless_service_name(m.name), "penpot"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels::selector(m.name)),
            ports: Some(vec![http_port()]),
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        status: None,
    }
}

/// What ingress-nginx needs to carry Penpot: its default body limit (1 MiB) turns every
/// upload (chunks of up to 25 MiB, files up to Penpot's 350 MiB) into a 413, and its 60 s read
/// timeout cuts the `/ws/notifications` websocket. Set for class names with "nginx" in them,
/// or none (the cluster's default class); other controllers get nothing they do not read.
/// `max_body_size`: `spec.maxUploadSize` in bytes, when given.
fn ingress_nginx_defaults(class_name: Option<&str>, max_body_size: Option<u64>) -> BTreeMap<String, String> {
    if !class_name.is_none_or(|c| c.contains("nginx")) {
        return BTreeMap::new();
    }
    let prefix = "nginx.ingress.kubernetes.io";
    [
        (format!("{prefix}/proxy-body-size"), max_body_size.map_or("350m".to_string(), |b| b.to_string())),
        (format!("{prefix}/proxy-read-timeout"), "3600".to_string()),
        (format!("{prefix}/proxy-send-timeout"), "3600".to_string()),
    ]
    .into()
}

pub fn ingress(m: &Meta, spec: &PenpotIngress, max_body_size: Option<u64>) -> Option<Ingress> {
    let host = spec.host.clone()?;
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: m.name.into(),
            port: Some(ServiceBackendPort { name: Some("http".into()), number: None }),
        }),
        ..Default::default()
    };
    let mut metadata = m.object(m.name.to_string(), "frontend");
    let mut annotations = ingress_nginx_defaults(spec.class_name.as_deref(), max_body_size);
    // The user's annotations win.
    annotations.extend(spec.annotations.clone());
    metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath { path: Some("/".into()), path_type: "Prefix".into(), backend }],
                }),
            }]),
            tls: spec
                .tls_secret_name
                .as_ref()
                .map(|secret| vec![IngressTLS { hosts: Some(vec![host]), secret_name: Some(secret.clone()) }]),
            ..Default::default()
        }),
        status: None,
    })
}

/// Admits traffic to the pods on nginx's port and the backend's (its /metrics) only. Penpot
/// 2.15 to 2.17 open an unauthenticated nREPL on 6064 in the backend, and the exporter's 6061
/// takes unauthenticated render requests: nothing outside the pod may reach either.
pub fn network_policy(m: &Meta) -> NetworkPolicy {
    let tcp = |port: u16| NetworkPolicyPort {
        port: Some(IntOrString::Int(port.into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: m.object(m.name.to_string(), "penpot"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(labels::selector(m.name)), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(vec![tcp(paths::NGINX_PORT), tcp(paths::BACKEND_PORT)]),
                from: None,
            }]),
            ..Default::default()
        }),
    }
}
