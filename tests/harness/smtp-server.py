#!/usr/bin/python3
"""A real SMTP server for the pre-flight checks (started by relations.sh; Debian's aiosmtpd).

One listener speaks plain SMTP and requires STARTTLS before anything but EHLO/NOOP/QUIT, so
AUTH before STARTTLS is refused (530); another (--smtps-port) speaks implicit TLS. Both offer
AUTH PLAIN and LOGIN for exactly one login, --user with the password from $SMTP_PASSWORD (not
argv, so it stays out of `ps`); wrong credentials get 535. Mail is accepted and discarded.

Logging stays at INFO: aiosmtpd masks AUTH arguments there, and logs the client's AUTH LOGIN
answers (the credentials) only at DEBUG.
"""

import argparse
import hmac
import logging
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Authenticator:
    def __init__(self, user: str, password: str):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        # handled=False: aiosmtpd answers "535 5.7.8 Authentication credentials invalid".
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self.user) & hmac.compare_digest(
            auth_data.password, self.password
        )
        logging.info("AUTH %s for %r: %s", mechanism, auth_data.login, "ok" if ok else "refused")
        return AuthResult(success=ok, handled=False)


class Discard:
    async def handle_DATA(self, server, session, envelope):
        logging.info("discarded a message from %s to %s", envelope.mail_from, envelope.rcpt_tos)
        return "250 OK (discarded)"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True, help="plain SMTP with STARTTLS")
    p.add_argument("--smtps-port", type=int, help="implicit TLS (SMTPS)")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    common = dict(
        hostname="127.0.0.1",
        authenticator=Authenticator(args.user, os.environ["SMTP_PASSWORD"]),
        auth_required=True,  # MAIL without AUTH: 530
        server_hostname="localhost",
    )
    controllers = [
        # AUTH only after STARTTLS: auth_require_tls (aiosmtpd's default, said out loud).
        Controller(
            Discard(),
            port=args.port,
            tls_context=tls,
            require_starttls=True,
            auth_require_tls=True,
            **common,
        )
    ]
    if args.smtps_port:
        # TLS from the first byte. aiosmtpd's auth_require_tls only knows STARTTLS and would
        # refuse AUTH here (538), so it is off; aiosmtpd logs a warning about that at start.
        controllers.append(
            Controller(
                Discard(), port=args.smtps_port, ssl_context=tls, auth_require_tls=False, **common
            )
        )
    for c in controllers:
        c.start()  # returns once the listener answers

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.info("listening: starttls %d, smtps %s", args.port, args.smtps_port)
    stop.wait()
    for c in controllers:
        c.stop()


if __name__ == "__main__":
    main()
