"""A registry token server for tests (Docker's token auth: the registry
answers 401 with a Bearer challenge naming this realm; clients fetch a JWT
here with basic auth and present it to the registry).

    python3 token_server.py PORT KEY.pem CERT.pem SERVICE ISSUER USER PASSWORD

Tokens are RS256 JWTs carrying the certificate in `x5c`; the registry trusts
them through its `rootcertbundle` (the same certificate). The right user and
password get every action asked for; no credentials get a token with no
access (the registry then refuses); wrong ones get 401. Listens on 127.0.0.1.
"""
import base64
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

port, key_path, cert_path, service, issuer, user, password = sys.argv[1:8]
key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
cert_der = x509.load_pem_x509_certificate(open(cert_path, "rb").read()).public_bytes(serialization.Encoding.DER)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(subject, access):
    header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(cert_der).decode()]}
    now = int(time.time())
    claims = {"iss": issuer, "sub": subject, "aud": service, "exp": now + 600, "nbf": now - 30,
              "iat": now, "jti": uuid.uuid4().hex, "access": access}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64url(signature)}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/token":
            self.send_error(404)
            return
        query = parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        subject = ""
        if auth.startswith("Basic "):
            given = base64.b64decode(auth[6:]).decode(errors="replace")
            if given != f"{user}:{password}":
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"details":"invalid username or password"}')
                return
            subject = user
        access = []
        if subject:
            for scope in query.get("scope", []):
                for one in scope.split(" "):
                    parts = one.split(":")
                    if len(parts) >= 3:
                        access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
        t = token(subject, access)
        body = json.dumps({"token": t, "access_token": t, "expires_in": 600,
                           "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("token-server: " + (fmt % args) + "\n")


ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
