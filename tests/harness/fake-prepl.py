#!/usr/bin/env python3
"""STAND-IN for the PREPL of Penpot's JVM backend (which cannot run here). kwok runs it for
each port-forward to port 6063 of a fake pod, with the forwarded connection as stdin and
stdout. It speaks Penpot's JSON-lines protocol (backend/src/app/srepl.clj, 2.8+): reads
one request line {"cmd", "params"}, records it exactly in calls.jsonl next to this file,
prints a line of text as the real PREPL may (tag "out"), then answers with a "ret" line
holding "val" or "err" {hint, code, type}. The outcome is chosen by the email address:
  exists...    create-profile is refused: email-already-exists
  clojure...   the answer is the exception a PREPL before 2.8 (which reads Clojure forms,
               not JSON) answers a JSON line with
  missing...   update-profile and delete-profile change no row: val false
  busy...      update-profile fails with an error (create-profile works)
(A backend that closes the connection without answering cannot be played here: kwok keeps
the forwarded stream open until the client closes it. The real node's stand-in plays it.)
"""
import json
import os
import sys

line = sys.stdin.readline()
request = json.loads(line)
log = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl")
with open(log, "a") as f:
    f.write(json.dumps(request) + "\n")

cmd, params = request.get("cmd"), request.get("params", {})
email = params.get("email", "")


def answer(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if email.startswith("clojure"):
    answer({"tag": "ret", "val": {"via": [{"type": "clojure.lang.LispReader$ReaderException"}],
                                  "cause": "Invalid token: :"}, "ns": "user", "ms": 0, "form": "",
            "exception": True})
    sys.exit(0)
answer({"tag": "out", "val": f"stand-in prepl: {cmd}\n"})
if cmd == "create-profile":
    if email.startswith("exists"):
        answer({"tag": "ret", "err": {"type": "validation", "code": "email-already-exists",
                                      "hint": "email already exists"}})
    elif not params.get("password"):
        answer({"tag": "ret", "err": {"type": "validation", "code": "invalid-data", "hint": "empty password"}})
    else:
        answer({"tag": "ret", "val": {"email": email, "id": "00000000-0000-0000-0000-00000000stand"}})
elif cmd == "update-profile" and email.startswith("busy"):
    answer({"tag": "ret", "err": {"type": "internal", "code": "db-busy", "hint": "the database is busy"}})
elif cmd in ("update-profile", "delete-profile"):
    answer({"tag": "ret", "val": not email.startswith("missing")})
else:
    answer({"tag": "ret", "err": {"type": "internal", "code": "not-implemented",
                                  "hint": f"command '{cmd}' not implemented"}})
