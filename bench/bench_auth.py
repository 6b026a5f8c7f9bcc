"""Cost of the access gate (issue 13): read and search latency with LIENTHONG_AUTH off vs jwt, and the
token endpoint (client_credentials + private_key_jwt) round trip.

Serves the real app with uvicorn on a loopback port over --db (schema created, data written first),
then times sequential keep-alive requests from one httpx client.

    python bench/bench_auth.py --db postgresql://postgres@127.0.0.1:5432/bench_auth --reads 2000
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
from jose import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from fhir_server.settings import Settings  # noqa: E402
from fhir_server.storage.sql.auth import ClientRecord  # noqa: E402
from lienthong.app import create_app  # noqa: E402
from lienthong.runtime import open_runtime  # noqa: E402

SECRET = "bench-secret-khong-dung-trong-san-xuat-32b"
AUD = "https://lienthong.bench/fhir"


def serve(app):
    """Run the app on a free loopback port in a thread; return (server, thread, root url)."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


def timed(client: httpx.Client, n: int, method: str, url: str, **kw) -> list[float]:
    """Latencies (ms) of n sequential requests; every answer must be 2xx."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.request(method, url, **kw)
        out.append((time.perf_counter() - t) * 1000)
        assert r.status_code < 300, r.text[:200]
    return out


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[int(len(ms) * 0.99) - 1]
    return f"{name:42s} n={len(ms):5d}  p50={statistics.median(ms):6.2f} ms  p99={p99:6.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--reads", type=int, default=2000)
    args = ap.parse_args()
    base = Settings(database_url=args.db)
    store = open_runtime(base).store
    patient = {
        "resourceType": "Patient",
        "id": "bench-an",
        "name": [{"text": "NGUYỄN VĂN AN"}],
        "gender": "male",
    }
    store_app = create_app(base, store=store)
    server, thread, root = serve(store_app)
    with httpx.Client(base_url=root, headers={"Content-Type": "application/fhir+json"}) as c:
        c.put("/fhir/Patient/bench-an", json=patient)
        for i in range(20):
            obs = {
                "resourceType": "Observation",
                "id": f"bench-obs-{i}",
                "status": "final",
                "code": {"text": "Đường huyết"},
                "subject": {"reference": "Patient/bench-an"},
            }
            c.put(f"/fhir/Observation/bench-obs-{i}", json=obs)
        timed(c, 200, "GET", "/fhir/Patient/bench-an")  # warm up
        off_read = timed(c, args.reads, "GET", "/fhir/Patient/bench-an")
        off_search = timed(c, args.reads // 4, "GET", "/fhir/Observation?subject=Patient/bench-an")
    server.should_exit = True
    thread.join()

    secured = create_app(base.with_(auth_mode="smart", jwt_secret=SECRET, jwt_audience=AUD), store=store)
    server, thread, root = serve(secured)
    system = jwt.encode(
        {"sub": "bench", "scope": "system/*.rs", "exp": int(time.time()) + 3600, "aud": AUD}, SECRET
    )
    patient_ctx = jwt.encode(
        {
            "sub": "app",
            "scope": "patient/*.rs",
            "patient": "bench-an",
            "exp": int(time.time()) + 3600,
            "aud": AUD,
        },
        SECRET,
    )
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client_id = f"bench-{uuid.uuid4().hex[:8]}"
    store.auth.add_client(ClientRecord(client_id, "bench", public.decode(), "system/*.rs", None, None, True))
    with httpx.Client(base_url=root) as c:
        hdr = {"Authorization": f"Bearer {system}"}
        timed(c, 200, "GET", "/fhir/Patient/bench-an", headers=hdr)
        on_read = timed(c, args.reads, "GET", "/fhir/Patient/bench-an", headers=hdr)
        on_search = timed(
            c, args.reads // 4, "GET", "/fhir/Observation?subject=Patient/bench-an", headers=hdr
        )
        phdr = {"Authorization": f"Bearer {patient_ctx}"}
        ctx_read = timed(c, args.reads // 4, "GET", "/fhir/Observation/bench-obs-1", headers=phdr)
        ctx_search = timed(c, args.reads // 4, "GET", "/fhir/Observation", headers=phdr)
        token_ms = []
        for _ in range(200):
            claims = {
                "iss": client_id,
                "sub": client_id,
                "aud": f"{root}/auth/token",
                "exp": int(time.time()) + 120,
                "jti": uuid.uuid4().hex,
            }
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": jwt.encode(claims, pem.decode(), algorithm="ES384"),
            }
            t = time.perf_counter()
            r = c.post("/auth/token", data=form)
            token_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    server.should_exit = True
    thread.join()
    print(f"database: {args.db.split('@')[-1]}")
    for name, ms in (
        ("read Patient/id, auth off", off_read),
        ("read Patient/id, system/*.rs token", on_read),
        ("search Observation?subject, auth off", off_search),
        ("search Observation?subject, system token", on_search),
        ("read Observation/id, patient/*.rs (compartment)", ctx_read),
        ("search Observation, patient/*.rs (narrowed)", ctx_search),
        ("POST /auth/token (ES384 assertion)", token_ms),
    ):
        print(summary(name, ms))


if __name__ == "__main__":
    main()
