#!/usr/bin/env python3
"""A validating admission webhook for the fault tests.

While the flag file exists, it refuses every request it is sent with the given HTTP code and
reason (409 Conflict by default); otherwise it allows them. With --first-run, the first request
waits for a shell command before it is answered: a test can race the request it holds up. Every
request is appended to the log as one JSON line, so a test can read when the operator retried.
Prints its port, then serves.

    webhook.py --cert C --key K --deny-while FLAG --log LOG [--code 409 --reason Conflict]
               [--first-run COMMAND]
"""
import argparse
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--deny-while", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--code", type=int, default=409)
    p.add_argument("--reason", default="Conflict")
    p.add_argument("--first-run")
    args = p.parse_args()
    first = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            req = review["request"]
            if args.first_run and first.acquire(blocking=False):
                subprocess.run(args.first_run, shell=True, check=True, stdout=subprocess.DEVNULL)
            deny = os.path.exists(args.deny_while)
            with open(args.log, "a") as log:
                log.write(json.dumps({
                    "time": time.time(),
                    "operation": req.get("operation"),
                    "kind": req.get("kind", {}).get("kind"),
                    "name": req.get("name"),
                    "user": req.get("userInfo", {}).get("username"),
                    "denied": deny,
                }) + "\n")
            response = {"uid": req["uid"], "allowed": not deny}
            if deny:
                response["status"] = {
                    "code": args.code,
                    "reason": args.reason,
                    "message": "fault injection: the object was modified; please retry",
                }
            body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                               "response": response}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
