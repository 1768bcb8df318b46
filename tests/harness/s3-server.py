"""A real S3 endpoint that verifies AWS Signature V4, for the pre-flight checks.

Run by relations.sh with the Python of its venv (moto[server] and boto3 from PyPI). moto in
server mode checks no signature until its "initial no-auth action count" is used up; from then
on every S3 request must carry a SigV4 Authorization header made with the secret of an IAM
access key (moto recomputes the signature with botocore and compares: a wrong secret is 403
SignatureDoesNotMatch, an unknown key 403 InvalidAccessKeyId), and the key's IAM policy must
allow the action (else 403 AccessDenied).

So: start moto with authentication off, make through its own APIs an IAM user with an access
key and an allow-s3:* policy, and the bucket; then switch authentication on for every later
request (POST /moto-api/reset-auth 0, moto's documented switch) and write the key to --out.
moto makes the key itself (an AKIA id and a random 40-character secret); there is no API to
choose one. The file appears only once the server is ready, so relations.sh waits for it.

What moto 5.2.5 does not check, unlike AWS: the X-Amz-Date's age (a correct signature from
2020 passes), the region in the credential scope against the bucket's, and the payload against
x-amz-content-sha256 (the header is signed, the body not hashed). A request without an
Authorization header gets 500, not 403. POST /moto-api/reset-auth stays open: anyone on
127.0.0.1 could switch authentication off again.
"""

import argparse
import json
import os
import signal
import threading
import urllib.request

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--out", required=True, help="file for the access key id and secret")
    args = p.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=True)
    server.start()
    endpoint = f"http://127.0.0.1:{args.port}"
    # Authentication is still off: any credentials do for the set-up calls.
    setup = dict(
        endpoint_url=endpoint,
        region_name=args.region,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="penpot")
    iam.put_user_policy(
        UserName="penpot",
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="penpot")["AccessKey"]
    s3 = boto3.client("s3", **setup)
    if args.region == "us-east-1":
        s3.create_bucket(Bucket=args.bucket)
    else:
        s3.create_bucket(
            Bucket=args.bucket, CreateBucketConfiguration={"LocationConstraint": args.region}
        )
    # From here on every request is authenticated (0 more requests without). Not form-encoded
    # (urllib's default type): Flask would then parse the body as a form and moto read nothing.
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(req).read()

    tmp = args.out + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{key['AccessKeyId']}\n{key['SecretAccessKey']}\n")
    os.rename(tmp, args.out)
    print(f"moto S3 ready on {endpoint}, bucket {args.bucket}, SigV4 required", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
