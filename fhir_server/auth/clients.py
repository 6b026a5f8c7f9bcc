"""Registered system clients: their public keys (JWKS or PEM), and the server's own signing key."""

from __future__ import annotations

import uuid

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk

# Algorithms a client assertion may use (SMART Backend Services asks for RS384 and ES384 at least).
ASSERTION_ALGORITHMS = ("RS384", "ES384", "RS256", "ES256", "RS512", "ES512")


def parse_public_key(text: str) -> str | dict:
    """A client's public key as python-jose takes it: a JWKS/JWK dict, or PEM text; ValueError if neither."""
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        keys = doc.get("keys") if isinstance(doc, dict) and "keys" in doc else [doc]
        if not isinstance(keys, list) or not keys:
            raise ValueError("a JWKS needs at least one key")
        for key in keys:
            jwk.construct(key, key.get("alg") or ("ES384" if key.get("kty") == "EC" else "RS384"))
        return {"keys": keys}
    if "-----BEGIN PUBLIC KEY-----" not in text:
        raise ValueError("expected a JWKS (JSON) or a PEM public key")
    serialization.load_pem_public_key(text.encode())
    return text


def generate_signing_key() -> tuple[str, str, str]:
    """A new server signing key: (kid, alg, private PEM); EC P-384 for ES384."""
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return uuid.uuid4().hex, "ES384", pem


def signing_key_from_pem(pem: str) -> tuple[str, str, str]:
    """A configured private key: (kid, alg, pem); RSA keys sign RS384, EC keys ES384."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        alg = "RS384"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        alg = "ES384"
    else:
        raise ValueError("the signing key must be RSA or EC")
    return "configured", alg, pem


def public_pem(private_pem: str) -> str:
    """The public half of a private PEM key."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_jwk(private_pem: str, kid: str, alg: str) -> dict:
    """The public JWK of the signing key (published at /auth/jwks)."""
    out = jwk.construct(public_pem(private_pem), alg).to_dict()
    return {
        **{k: (v.decode() if isinstance(v, bytes) else v) for k, v in out.items()},
        "kid": kid,
        "use": "sig",
    }
