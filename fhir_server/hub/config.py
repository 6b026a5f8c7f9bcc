"""Hub configuration: the nodes (name, FHIR base URL, credentials, timeout) and the hub's own mode.

A YAML (or JSON) file, for example:

    mode: federated            # or central: keep a copy of every node's data (see docs/scaling.md)
    store: postgresql://hub@db/hub   # central mode only
    pull_interval: 5           # central mode: seconds between outbox pulls
    default_timeout: 5
    nodes:
      - name: bv-cho-ray
        base_url: https://fhir.choray.vn/fhir
        timeout: 3
        auth: {type: bearer, token_env: CHORAY_TOKEN}
      - name: bv-bach-mai
        base_url: https://lienthong.bachmai.vn/fhir
        auth: {type: smart-backend, token_url: https://lienthong.bachmai.vn/auth/token,
               client_id: hub-so-y-te, key_file: /etc/lienthong/hub-key.pem}   # SMART Backend Services
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fhir_server.hub.auth import TokenSource, token_source

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class NodeConfig:
    """One hospital node as the hub reaches it."""

    name: str
    base_url: str
    timeout: float = 5.0
    auth: TokenSource = field(default_factory=lambda: token_source(None), compare=False, repr=False)

    def url(self, path: str) -> str:
        """Absolute URL of a path under the node's FHIR base."""
        return f"{self.base_url}/{path.lstrip('/')}"


@dataclass(frozen=True)
class HubConfig:
    """Everything `lienthong hub` needs."""

    nodes: tuple[NodeConfig, ...]
    mode: str = "federated"  # federated | central
    store: str | None = None
    pull_interval: float = 5.0
    pull_batch: int = 500


def parse_config(data: dict) -> HubConfig:
    """Validate a config mapping (as loaded from YAML/JSON); ValueError names the bad entry."""
    if not isinstance(data, dict):
        raise ValueError("hub config must be a mapping with a 'nodes' list")
    default_timeout = float(data.get("default_timeout", 5.0))
    nodes = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("nodes") or []):
        name = str(raw.get("name", ""))
        if not _NAME.match(name):
            raise ValueError(f"nodes[{i}].name {name!r}: use lowercase letters, digits, '.', '_' or '-'")
        if name in seen:
            raise ValueError(f"nodes[{i}].name {name!r} is used twice")
        seen.add(name)
        base = str(raw.get("base_url", "")).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"nodes[{i}].base_url must be an http(s) URL")
        timeout = float(raw.get("timeout", default_timeout))
        if timeout <= 0:
            raise ValueError(f"nodes[{i}].timeout must be positive")
        nodes.append(NodeConfig(name, base, timeout, token_source(raw.get("auth"))))
    if not nodes:
        raise ValueError("hub config lists no nodes")
    mode = str(data.get("mode", "federated"))
    if mode not in ("federated", "central"):
        raise ValueError("mode must be 'federated' or 'central'")
    store = data.get("store")
    if mode == "central" and not store:
        raise ValueError("central mode needs 'store' (the hub's database URL)")
    return HubConfig(
        tuple(nodes),
        mode,
        store,
        float(data.get("pull_interval", 5.0)),
        int(data.get("pull_batch", 500)),
    )


def load_config(path: str | Path) -> HubConfig:
    """Read and validate a hub config file (YAML or JSON)."""
    return parse_config(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
