"""Signs requests with botocore's SigV4Auth, for spec/sigv4_botocore_spec.lua.

Usage: botocore_sign.py FILE

FILE holds one JSON object per line:
  {"id": 1, "method": "POST", "url": "https://host:port/",
   "headers": [[name, value], ...], "body_hex": "...",
   "region": "...", "service": "...", "access_key_id": "...",
   "secret_access_key": "...", "session_token": "..." (optional),
   "timestamp": "YYYYMMDDTHHMMSSZ", "sign_body": false}
For each, prints one JSON line:
  {"id", "canonical_request", "string_to_sign", "signature", "authorization"}

The request goes through SigV4Auth.add_auth unchanged; only the clock is
pinned to "timestamp". sign_body is modelled by adding an
X-Amz-Content-Sha256 header (the body's SHA-256) before signing, which
botocore signs like any other header.
"""
import datetime
import hashlib
import json
import sys

import botocore.auth
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


class Clock:
    now = None

    @classmethod
    def get_current_datetime(cls, *args, **kwargs):
        return cls.now


class RecordingSigV4Auth(SigV4Auth):
    """SigV4Auth that remembers the canonical request and string to sign."""

    def string_to_sign(self, request, canonical_request):
        self.canonical = canonical_request
        self.sts = super().string_to_sign(request, canonical_request)
        return self.sts


def sign(r):
    body = bytes.fromhex(r["body_hex"])
    req = AWSRequest(method=r["method"], url=r["url"], data=body)
    for name, value in r["headers"]:
        req.headers[name] = value  # appends: repeated names are kept
    if r.get("sign_body"):
        req.headers["X-Amz-Content-Sha256"] = hashlib.sha256(body).hexdigest()
    Clock.now = datetime.datetime.strptime(r["timestamp"], SIGV4_TIMESTAMP)
    creds = Credentials(r["access_key_id"], r["secret_access_key"], r.get("session_token") or None)
    auth = RecordingSigV4Auth(creds, r["service"], r["region"])
    auth.add_auth(req)
    authorization = req.headers["Authorization"]
    return {
        "id": r["id"],
        "canonical_request": auth.canonical,
        "string_to_sign": auth.sts,
        "signature": authorization.rsplit("Signature=", 1)[1],
        "authorization": authorization,
    }


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: botocore_sign.py FILE\n")
        return 2
    botocore.auth.get_current_datetime = Clock.get_current_datetime
    with open(argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                sys.stdout.write(json.dumps(sign(json.loads(line))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
