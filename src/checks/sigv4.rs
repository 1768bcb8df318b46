//! AWS Signature Version 4 for a bodiless request with no query string, the only kind the S3
//! check sends (`HEAD /bucket`). Pure: the clock comes in as the `x-amz-date` header.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub struct Request<'a> {
    pub method: &'a str,
    /// Already URI-encoded, as sent.
    pub path: &'a str,
    /// Every header signed, lowercase names: at least `host`, `x-amz-date` (`YYYYMMDDTHHMMSSZ`)
    /// and `x-amz-content-sha256`.
    pub headers: &'a [(&'a str, &'a str)],
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
}

/// The `Authorization` header for `request`.
pub fn authorization(request: &Request) -> String {
    let Request { method, path, headers, region, access_key, secret_key } = request;
    let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap_or_default();
    let amz_date = header("x-amz-date");
    let date = amz_date.get(..8).unwrap_or_default();
    let mut sorted: Vec<&(&str, &str)> = headers.iter().collect();
    sorted.sort();
    let canonical_headers: String = sorted.iter().map(|(n, v)| format!("{n}:{}\n", v.trim())).collect();
    let signed_headers = sorted.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";");
    let payload = header("x-amz-content-sha256");
    let canonical = format!("{method}\n{path}\n\n{canonical_headers}\n{signed_headers}\n{payload}");
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    for part in [*region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    format!("AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "GET Object" example of Amazon S3's documentation ("Signature Calculations for the
    /// Authorization Header: Transferring Payload in a Single Chunk"), signature and all.
    #[test]
    fn signs_the_documented_example() {
        let request = Request {
            method: "GET",
            path: "/test.txt",
            headers: &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", "20130524T000000Z"),
            ],
            region: "us-east-1",
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        };
        assert_eq!(
            authorization(&request),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }
}
