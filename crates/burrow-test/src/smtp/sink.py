"""A real SMTP server for tests (aiosmtpd): stores every message it accepts as a JSON
file in a directory, with its envelope, whether TLS was on and who authenticated, and
its subject and text and HTML parts decoded (RFC 2047 words, quoted-printable, base64).

usage: sink.py DIR PORT MODE [CERT KEY [USER PASSWORD]]
MODE is none, starttls (STARTTLS required before MAIL) or tls (implicit TLS). With USER
and PASSWORD, AUTH is required, and only offered over TLS. Prints "ready" once listening.
"""
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
            "auth": session.auth_data.login.decode() if session.authenticated else None,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        record.update(decoded(envelope.content))
        path = os.path.join(self.directory, "%04d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 OK"


def decoded(content):
    """The subject and the text and HTML bodies as a reader sees them."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    parts = {}
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        # Line ends as the text was written (SMTP sends CRLF).
        parts[kind] = part.get_content().replace("\r\n", "\n") if part is not None else ""
    return {"subject": str(message["subject"] or ""), "text": parts["plain"], "html": parts["html"]}


def main():
    # aiosmtpd warns about its own use of a deprecated attribute on every AUTH.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    directory, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cert, key, user, password = (sys.argv[4:] + [None] * 4)[:4]
    context = None
    if cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    kwargs = {}
    if user:
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode(), auth_data.password.decode()) == (user, password)
            return AuthResult(success=ok, handled=False, auth_data=auth_data)
        kwargs.update(authenticator=authenticate, auth_require_tls=True, auth_required=True)
    if mode == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif mode == "tls":
        kwargs.update(ssl_context=context)
    controller = Controller(Store(directory), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


main()
