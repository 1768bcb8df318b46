//! A mocked API server for tests of code that talks to the cluster (tower-test, as kube-rs's
//! controller-rs does): it answers through a closure and records every request in order.

use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the mock API server saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
}

pub type Responder = dyn Fn(&str, &str, &Value) -> (StatusCode, Value) + Send + Sync;

/// A client whose API server is `respond`; every request is recorded in order.
pub fn mock(respond: Box<Responder>) -> (Client, Arc<Mutex<Vec<Call>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log = Arc::new(Mutex::new(Vec::new()));
    let record = log.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let bytes = request.into_body().collect_bytes().await;
            let body = bytes.ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
            let (status, answer) = respond(&method, &path, &body);
            record.lock().unwrap().push(Call { method, path, body });
            let response = Response::builder().status(status).body(Body::from(serde_json::to_vec(&answer).unwrap()));
            send.send_response(response.unwrap());
        }
    });
    (Client::new(service, "ns"), log)
}

pub fn not_found() -> (StatusCode, Value) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404});
    (StatusCode::NOT_FOUND, status)
}

/// A create race lost: the first GET finds nothing, every create gets 409, and every later
/// GET finds the Secret `name` holding `key`: `value`, which another writer made meanwhile.
pub fn secret_created_meanwhile(name: &str, key: &str, value: &str) -> Box<Responder> {
    use base64::Engine;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                        "data": {key: base64::engine::general_purpose::STANDARD.encode(value)}});
    let read_once = std::sync::atomic::AtomicBool::new(false);
    Box::new(move |method, _, _| match method {
        "GET" if !read_once.swap(true, std::sync::atomic::Ordering::SeqCst) => not_found(),
        "GET" => (StatusCode::OK, secret.clone()),
        _ => conflict(),
    })
}

/// 409 AlreadyExists: what a create loses to an object made meanwhile.
pub fn conflict() -> (StatusCode, Value) {
    let status =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "AlreadyExists", "code": 409});
    (StatusCode::CONFLICT, status)
}

/// `METHOD /path` of every request so far, in order.
pub fn requests(log: &Arc<Mutex<Vec<Call>>>) -> Vec<String> {
    log.lock().unwrap().iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}
