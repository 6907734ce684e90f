"""A real SMTP server for the SMTP provider test (aiosmtpd), started by smtp.rs.

usage: smtp_server.py <port> <out.jsonl> <open|auth>

Each accepted message is parsed with Python's email package and appended to <out.jsonl> as one JSON
line; "READY" is printed once the server accepts connections. In "auth" mode AUTH is required
(herald / s3cret) and allowed without TLS. The server exits when stdin closes.
"""
import email
import email.policy
import json
import logging
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, out_path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# AUTH without TLS is deliberate here; keep the expected warnings out of the test output.
warnings.simplefilter("ignore")
logging.getLogger("mail.log").setLevel(logging.ERROR)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = [
            {"type": part.get_content_type(), "body": part.get_content()}
            for part in msg.walk()
            if not part.is_multipart()
        ]
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {name.lower(): str(value) for name, value in msg.items()},
            "content_type": msg.get_content_type(),
            "parts": parts,
            "login": login,
        }
        with open(out_path, "a") as out:
            out.write(json.dumps(record) + "\n")
        return "250 OK queued as fake-1"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"herald" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


auth = mode == "auth"
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=port,
    authenticator=authenticator if auth else None,
    auth_required=auth,
    auth_require_tls=False,
)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
