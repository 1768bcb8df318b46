//! The Gateway API route (`spec.gateway`): one HTTPRoute sending every path of the Penpot's
//! host names to its Service, the counterpart of the Ingress for Gateway-based clusters.
//! WebSockets (`/ws/notifications`) need nothing more: Gateway API implementations pass the
//! upgrade through on an HTTPRoute.

use kube::api::DynamicObject;
use serde_json::json;

use crate::crd::GatewaySpec;

use super::network::Meta;
use super::owned::OwnedKind;
use super::paths;

pub fn http_route(m: &Meta, gateway: &GatewaySpec, public_uri: &str) -> DynamicObject {
    let parent_refs: Vec<_> = gateway
        .parent_refs
        .iter()
        .map(|p| {
            let mut parent = json!({ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": p.name });
            if let Some(ns) = &p.namespace {
                parent["namespace"] = json!(ns);
            }
            if let Some(section) = &p.section_name {
                parent["sectionName"] = json!(section);
            }
            parent
        })
        .collect();
    let hostnames = if gateway.hostnames.is_empty() {
        // The public URI's host, when it is a name: Gateway API hostnames cannot be addresses,
        // and without one the route answers every host its Gateway listener accepts.
        let host = url::Url::parse(public_uri).ok().and_then(|u| match u.host() {
            Some(url::Host::Domain(name)) => Some(name.to_string()),
            _ => None,
        });
        host.into_iter().collect()
    } else {
        gateway.hostnames.clone()
    };
    let spec = json!({
        "parentRefs": parent_refs,
        "hostnames": hostnames,
        "rules": [{
            "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
            "backendRefs": [{ "kind": "Service", "name": m.name, "port": paths::NGINX_PORT }],
        }],
    });
    let mut route = DynamicObject::new(m.name, &OwnedKind::HttpRoute.api_resource()).data(json!({ "spec": spec }));
    route.metadata = m.object(m.name.to_string(), "penpot");
    route
}
