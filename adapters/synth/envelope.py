"""Build and take apart GIAMDINHHS envelopes (for generators, tests and tools; trusted input only)."""

from __future__ import annotations

import base64

from adapters.qd130.xmlsafe import parse_xml


def build_envelope(
    facility: str,
    hosos: list[list[tuple[str, bytes]]],
    created: str = "20240101",
    root: str = "GIAMDINHHS",
    declared: int | None = None,
) -> bytes:
    """Envelope with one HOSO per list of (LOAIHOSO, inner XML bytes)."""
    parts = []
    for files in hosos:
        fh = "".join(
            f"<FILEHOSO><LOAIHOSO>{loai}</LOAIHOSO><NOIDUNGFILE>{base64.b64encode(b).decode()}"
            f"</NOIDUNGFILE></FILEHOSO>"
            for loai, b in files
        )
        parts.append(f"<HOSO>{fh}</HOSO>")
    count = len(hosos) if declared is None else declared
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<{root}><THONGTINDONVI><MACSKCB>{facility}</MACSKCB>'
        f"</THONGTINDONVI><THONGTINHOSO><NGAYLAP>{created}</NGAYLAP><SOLUONGHOSO>{count}</SOLUONGHOSO>"
        f"<DANHSACHHOSO>{''.join(parts)}</DANHSACHHOSO></THONGTINHOSO><CHUKYDONVI/></{root}>"
    ).encode()


def read_files(envelope: bytes) -> list[list[tuple[str, bytes]]]:
    """Decoded (LOAIHOSO, inner XML bytes) per HOSO of an envelope."""
    root = parse_xml(envelope)
    return [
        [
            (
                (f.findtext("LOAIHOSO") or "").strip(),
                base64.b64decode("".join((f.findtext("NOIDUNGFILE") or "").split())),
            )
            for f in hoso.iter("FILEHOSO")
        ]
        for hoso in root.iter("HOSO")
    ]
