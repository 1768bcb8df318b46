#!/usr/bin/env python3
"""Stand-in for Penpot's backend/manage.py, run by kwok when something execs into a fake
`penpot` container. It records exactly what it was sent (arguments and stdin) and plays
the real script's answers, including its failures, chosen by the email address:
  exists...    create-profile fails: ERR, exit 255 (duplicate profile)
  down...      transport error: EXC, exit 254 (PREPL not reachable)
  missing...   delete-profile finds nothing: "No profile found", exit 0
"""
import argparse
import json
import os
import sys
import uuid

parser = argparse.ArgumentParser()
sub = parser.add_subparsers(dest="cmd", required=True)
create = sub.add_parser("create-profile")
create.add_argument("-e", "--email", required=True)
create.add_argument("-n", "--fullname", required=True)
create.add_argument("-p", "--password")
update = sub.add_parser("update-profile")
update.add_argument("-e", "--email", required=True)
update.add_argument("-p", "--password")
delete = sub.add_parser("delete-profile")
delete.add_argument("-e", "--email", required=True)
delete.add_argument("-f", "--force", action="store_true")
args = parser.parse_args()

reads_password = args.cmd in ("create-profile", "update-profile") and not args.password
stdin = sys.stdin.readline() if reads_password else ""
log = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl")
with open(log, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "stdin": stdin}) + "\n")

email = args.email
if email.startswith("down"):
    print("EXC: [Errno 111] Connection refused")
    sys.exit(254)
if args.cmd == "create-profile":
    if email.startswith("exists"):
        print("ERR: a profile with this email already exists")
        sys.exit(255)
    if not stdin.strip() and not args.password:
        print("ERR: empty password")
        sys.exit(255)
    print(f"Created: {email} / {uuid.uuid4()}")
elif email.startswith("missing"):
    print(f"No profile found with email {email}")
elif args.cmd == "update-profile":
    print("Updated")
else:
    print("Deleted")
