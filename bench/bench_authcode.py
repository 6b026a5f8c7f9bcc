"""Cost of SMART App Launch (issue 13): the consent POST (argon2 password check + code), the code
exchange at /auth/token (PKCE, code spent in the DB, access + id + refresh token signed), and, as the
yardstick, a Backend Services client_credentials token (private_key_jwt verified, jti stored).

In-process ASGI (httpx) over --db; interleaved rounds so load drifts hit every kind alike.

    python bench/bench_authcode.py --db sqlite:////tmp/bench_authcode.db --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import re
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from jose import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from fhir_server.settings import Settings  # noqa: E402
from fhir_server.storage.sql.auth import ClientRecord  # noqa: E402
from fhir_server.storage.sql.authcode import authcode_repository  # noqa: E402
from fhir_server.storage.sql.users import user_repository  # noqa: E402
from fhir_server.ui.accounts import add_user  # noqa: E402
from lienthong.app import create_app  # noqa: E402
from lienthong.runtime import open_runtime  # noqa: E402

CALLBACK = "http://127.0.0.1:8765/callback"
PASSWORD = "Mat-khau-do-dai-du-2026"


async def run(db: str, rounds: int) -> None:
    """Set up users and clients, then time the three kinds in interleaved rounds."""
    settings = Settings(database_url=db, auth_mode="smart", audit="off")
    store = open_runtime(settings).store
    tag = uuid.uuid4().hex[:6]
    user, app_id, sys_id = f"bs.bench{tag}", f"app-bench-{tag}", f"his-bench-{tag}"
    add_user(user_repository(store), user, "BS. Bench", PASSWORD, admin=False)
    store.auth.add_client(
        ClientRecord(app_id, "Bench app", "", "offline_access openid user/*.rs", None, None, True)
    )
    authcode_repository(store).set_app(app_id, (CALLBACK,), True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    store.auth.add_client(ClientRecord(sys_id, "Bench HIS", public, "system/*.rs", None, None, True))
    app = create_app(settings, store=store)
    times: dict[str, list[float]] = {"consent": [], "code_exchange": [], "client_credentials": []}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
        for _ in range(rounds):
            verifier = secrets.token_urlsafe(48)
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            params = {
                "response_type": "code",
                "client_id": app_id,
                "redirect_uri": CALLBACK,
                "scope": "openid offline_access user/*.rs",
                "state": "s",
                "aud": "http://bench/fhir",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            page = await c.get("/auth/authorize", params=params)
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            form = {**params, "csrf_token": csrf, "username": user, "password": PASSWORD, "action": "allow"}
            t0 = time.perf_counter()
            done = await c.post("/auth/authorize", data=form)
            times["consent"].append(time.perf_counter() - t0)
            code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
            body = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "client_id": app_id,
                "code_verifier": verifier,
            }
            t0 = time.perf_counter()
            r = await c.post("/auth/token", data=body)
            times["code_exchange"].append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            claims = {
                "iss": sys_id,
                "sub": sys_id,
                "aud": "http://bench/auth/token",
                "exp": int(time.time()) + 120,
                "jti": uuid.uuid4().hex,
            }
            form2 = {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": jwt.encode(claims, private, algorithm="ES384"),
                "scope": "system/*.rs",
            }
            t0 = time.perf_counter()
            r = await c.post("/auth/token", data=form2)
            times["client_credentials"].append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    base = statistics.median(times["client_credentials"])
    for name, values in times.items():
        med = statistics.median(values)
        print(
            f"{name:20s} median {med * 1000:7.1f} ms  p90 {sorted(values)[int(0.9 * len(values))] * 1000:7.1f} ms"
            f"  x{med / base:4.1f} of client_credentials"
        )


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="sqlite:////tmp/bench_authcode.db")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.db, args.rounds))


if __name__ == "__main__":
    main()
