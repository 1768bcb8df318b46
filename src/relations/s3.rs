//! S3 relation: Juju `s3` interface fields, or an ObjectBucketClaim's keys (its Secret's
//! credentials plus the bucket keys of its ConfigMap, merged into one Secret).

use super::{RelationError, SecretData, check_host, parse_port};

#[derive(Clone, PartialEq, Eq)]
pub struct S3 {
    /// `None` with workload identity (`spec.serviceAccount`): the AWS SDK's default chain
    /// then finds the credentials the cloud's webhook or metadata server provides.
    pub keys: Option<Keys>,
    pub bucket: String,
    /// Full endpoint URL; `None` means AWS itself.
    pub endpoint: Option<String>,
    pub region: String,
}

super::debug_hiding!(S3 { shows: [keys, bucket, endpoint, region], hides: [] });

/// A static key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub access_key: String,
    pub secret_key: String,
}

super::debug_hiding!(Keys { shows: [access_key], hides: [secret_key] });

const ACCESS_KEY: [&str; 2] = ["access-key", "AWS_ACCESS_KEY_ID"];
const SECRET_KEY: [&str; 2] = ["secret-key", "AWS_SECRET_ACCESS_KEY"];

/// `identity`: the pods have a cloud identity (`spec.serviceAccount`), so the key pair may be
/// left out; half a pair is refused either way, naming the missing half.
pub fn parse(d: &SecretData, identity: bool) -> Result<S3, RelationError> {
    let keys = match (d.first(&ACCESS_KEY)?, d.first(&SECRET_KEY)?, identity) {
        (Some((_, access)), Some((_, secret)), _) => {
            Some(Keys { access_key: access.to_string(), secret_key: secret.to_string() })
        }
        (None, None, true) => None,
        (None, _, false) | (None, Some(_), true) => return Err(d.missing(&ACCESS_KEY)),
        (Some(_), None, _) => return Err(d.missing(&SECRET_KEY)),
    };
    let (bucket_key, bucket) = d.require(&["bucket", "BUCKET_NAME"])?;
    if bucket.len() > 255
        || !bucket.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        || bucket.chars().all(|c| c == '.')
    {
        return Err(d.error(bucket_key, "is not a bucket name (letters, digits, '.', '_', '-')"));
    }
    let region = match d.first(&["region", "BUCKET_REGION"])? {
        Some((key, r)) if !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            return Err(d.error(key, "is not a region name (letters, digits, '-')"));
        }
        Some((_, r)) => r.to_string(),
        None => "us-east-1".to_string(),
    };

    let endpoint = if let Some(endpoint) = d.get("endpoint")? {
        Some(normalise_endpoint(endpoint).map_err(|p| d.error("endpoint", p))?)
    } else if let Some(host) = d.get("BUCKET_HOST")? {
        check_host(host).map_err(|p| d.error("BUCKET_HOST", p))?;
        let port = match d.get("BUCKET_PORT")? {
            Some(p) => parse_port(p).map_err(|p| d.error("BUCKET_PORT", p))?,
            None => 443,
        };
        // ObjectBucketClaims give no scheme; Rook and NooBaa serve plain HTTP except on 443.
        let scheme = if port == 443 { "https" } else { "http" };
        Some(normalise_endpoint(&format!("{scheme}://{host}:{port}")).map_err(|p| d.error("BUCKET_HOST", p))?)
    } else {
        None
    };

    if let Some(style) = d.get("s3-uri-style")? {
        match style {
            "path" => {}
            // Penpot switches to path-style whenever an endpoint is set and has no knob for it.
            "virtual" if endpoint.is_some() => {
                return Err(
                    d.error("s3-uri-style", "is virtual, but Penpot always uses path-style with a custom endpoint")
                );
            }
            "virtual" => {}
            _ => return Err(d.error("s3-uri-style", "must be path or virtual")),
        }
    }
    if d.get("path")?.is_some_and(|p| p != "/") {
        return Err(d.error("path", "is set, but Penpot stores objects at the bucket root and has no prefix setting"));
    }

    Ok(S3 { keys, bucket: bucket.to_string(), endpoint, region })
}

/// The AWS SDK wants a URL with a scheme; a bare host (as the Juju interface allows) means HTTPS.
fn normalise_endpoint(value: &str) -> Result<String, String> {
    // The URL parser would decode `%41` in a host and read `\` as `/`: refuse both outright.
    if value.contains(['%', '\\']) {
        return Err("has characters that are not allowed in a host name".into());
    }
    let with_scheme = if value.contains("://") { value.to_string() } else { format!("https://{value}") };
    let url = url::Url::parse(&with_scheme).map_err(|_| "is not a valid URL or host name".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    let host = url.host_str().ok_or_else(|| "has no host".to_string())?;
    check_host(host)?;
    if url.port() == Some(0) {
        return Err("has port 0; a port is 1-65535".into());
    }
    // A bare `host/x` would otherwise pass as a URL with a path; objects live at the bucket root.
    if url.path() != "/" && !url.path().is_empty() {
        return Err("must not have a path; the bucket goes in its own key".into());
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry credentials, a query or a #fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}
