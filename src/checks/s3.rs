//! S3: a signed `HEAD /bucket` (HeadBucket, path-style as Penpot addresses custom endpoints),
//! which proves the endpoint answers, the keys are accepted and the bucket is theirs to list.

use super::sigv4::{self, EMPTY_SHA256};
use super::{Failure, Found, Probe};
use crate::controller::egress::{UrlRefused, fenced_client};
use crate::relations::s3::S3;

pub async fn check(s3: &S3, probe: &Probe<'_>) -> Result<Found, Failure> {
    let Some(keys) = &s3.keys else {
        return Ok(Found::Skipped(
            "not checked: the workload's identity holds the credentials, the operator does not".into(),
        ));
    };
    let endpoint = match &s3.endpoint {
        Some(endpoint) => endpoint.clone(),
        None => format!("https://s3.{}.amazonaws.com", s3.region),
    };
    let mut url = url::Url::parse(&format!("{endpoint}/{}", s3.bucket))
        .map_err(|_| Failure::Protocol("the endpoint does not parse".into()))?;
    // Names only: an address is what it is.
    if let Some(url::Host::Domain(name)) = url.host().map(|h| h.to_owned()) {
        let qualified = super::net::qualify(&name, probe.namespace);
        url.set_host(Some(&qualified)).map_err(|_| Failure::Protocol("the endpoint does not parse".into()))?;
    }
    let url = url.to_string();
    probe.egress.check_url(&url).map_err(|e| match e {
        UrlRefused::Fenced(why) => Failure::Fenced(why),
        UrlRefused::Unparsed(_) => Failure::Protocol("the endpoint does not parse".into()),
    })?;
    let parsed = url::Url::parse(&url).map_err(|_| Failure::Protocol("the endpoint does not parse".into()))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => return Err(Failure::Protocol("the endpoint has no host".into())),
    };
    let parsed_host = parsed.host_str().unwrap_or_default().to_string();
    let amz_date = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let headers = [("host", host.as_str()), ("x-amz-content-sha256", EMPTY_SHA256), ("x-amz-date", amz_date.as_str())];
    let authorization = sigv4::authorization(&sigv4::Request {
        method: "HEAD",
        path: parsed.path(),
        headers: &headers,
        region: &s3.region,
        access_key: &keys.access_key,
        secret_key: &keys.secret_key,
    });
    let client = fenced_client(probe.egress, probe.ca_bundle, super::CHECK_TIMEOUT)
        .map_err(|e| Failure::Tls(crate::error::error_chain(&e)))?;
    let response = client
        .head(parsed)
        .header("x-amz-content-sha256", EMPTY_SHA256)
        .header("x-amz-date", &amz_date)
        .header("authorization", authorization)
        .send()
        .await
        .map_err(|e| {
            let e = e.without_url();
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(refused) = s.downcast_ref::<crate::controller::egress::Refused>() {
                    return Failure::Fenced(refused.why);
                }
                source = s.source();
            }
            // hyper's resolver error has no public type to match: its words do.
            let why = crate::error::error_chain(&e);
            if why.contains("dns error") || why.contains("failed to lookup address") {
                Failure::NotResolved(parsed_host.clone())
            } else {
                super::net::tls_failure(&e)
            }
        })?;
    let bucket = &s3.bucket;
    let region = |r: &reqwest::Response| {
        r.headers().get("x-amz-bucket-region").and_then(|v| v.to_str().ok()).map(str::to_string)
    };
    match response.status().as_u16() {
        200 => Ok(Found::Passed(format!("bucket {bucket} answered a signed HeadBucket"))),
        301 | 400 if region(&response).is_some_and(|r| r != s3.region) => Err(Failure::Refused(format!(
            "bucket {bucket} is in region {}, the relation says {}",
            region(&response).unwrap_or_default(),
            s3.region
        ))),
        403 => Err(Failure::Refused(format!(
            "HeadBucket on {bucket}: 403 Forbidden (the keys are refused, or they may not list this bucket)"
        ))),
        404 => Err(Failure::Refused(format!("bucket {bucket} does not exist at {endpoint}"))),
        code => Err(Failure::Refused(format!("HeadBucket on {bucket}: HTTP {code}"))),
    }
}
