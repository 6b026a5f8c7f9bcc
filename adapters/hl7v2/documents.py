"""MDM^T01-T11: TXA + OBX content -> DocumentReference (segment maps TXA/OBX[DocumentReference]).

VN use: discharge papers, transfer summaries and reports a HIS publishes as documents ("giấy ra viện",
"tóm tắt hồ sơ bệnh án").
"""

from __future__ import annotations

import base64
import binascii

from adapters.hl7v2.bundle import BundleBuilder
from adapters.hl7v2.datatypes import codeable_concept, entity_identifier, tables
from adapters.hl7v2.encounter import add_practitioner
from adapters.hl7v2.er7 import Message, Segment, split_components, unescape
from adapters.hl7v2.errors import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, content_error
from adapters.hl7v2.orders import map_orders
from adapters.hl7v2.subjects import Subjects
from adapters.ids import deterministic_id
from fhir_server.text import nfc

V2_0270 = "http://terminology.hl7.org/CodeSystem/v2-0270"
V2_0272 = "http://terminology.hl7.org/CodeSystem/v2-0272"
_TEXT_TYPES = ("TX", "FT", "ST", "CE", "CWE", "NM", "SN", "DT", "DTM", "TS")


def map_documents(b: BundleBuilder, msg: Message, subjects: Subjects) -> list[str]:
    """The TXA of the message (with its OBX content and ORC/OBR order) -> one DocumentReference."""
    txa = msg.first("TXA")
    if txa is None:
        raise content_error(
            REQUIRED_FIELD_MISSING, "TXA", f"{msg.message_code}^{msg.trigger} without a TXA segment"
        )
    subject = subjects.patient_of(txa, "a document")
    ctx = b.ctx
    unique = entity_identifier(txa.comps(12), ctx, "document")
    key = _key(b, txa, subject.patient_key, unique)
    t = tables()
    status = t["document_trigger_status"].get(msg.trigger) or t["document_availability"].get(
        txa.get(19).upper(), "current"
    )
    res: dict = {}
    if unique:
        res["masterIdentifier"] = unique
    if txa.get(16):
        res["identifier"] = [{"system": ctx.local_system("document-file"), "value": txa.get(16)}]
    res["status"] = status
    doc_status = t["document_completion"].get(txa.get(17).upper())
    if doc_status:
        res["docStatus"] = doc_status
    kind = txa.comps(2)
    if kind and kind[0]:
        res["type"] = codeable_concept(kind if len(kind) > 2 and kind[2] else (kind + [""])[:2] + ["HL70270"])
    res["subject"] = {"reference": subject.patient_ref}
    created = b.datetime(txa.get(6), "TXA-6") or b.datetime(txa.get(4), "TXA-4")
    if created and "T" in created:
        res["date"] = created
    authors = [
        r
        for n in (9, 5)
        for i in range(len(txa.reps(n)))
        for r in [add_practitioner(b, txa.comps(n, i))]
        if r
    ]
    if authors:
        res["author"] = [{"reference": r} for r in dict.fromkeys(authors)]
    authenticator = add_practitioner(b, txa.comps(10)) if txa.get(10) else None
    if authenticator:
        res["authenticator"] = {"reference": authenticator}
    title = nfc(txa.get(25)) or (res.get("type") or {}).get("text")
    if title:
        res["description"] = title
    confidentiality = txa.get(18).upper()
    if confidentiality in t["document_confidentiality"]:
        res["securityLabel"] = [{"coding": [{"system": V2_0272, "code": confidentiality}]}]
    relation = t["document_relation"].get(msg.trigger)
    parent = entity_identifier(txa.comps(13), ctx, "document")
    if relation and parent:
        rid = deterministic_id("DocumentReference", ctx.facility, "txa", parent["value"])
        res["relatesTo"] = [{"code": relation, "target": {"reference": f"DocumentReference/{rid}"}}]
    res["content"] = _content(b, msg, title or "document")
    context: dict = {}
    if subject.encounter_ref:
        context["encounter"] = [{"reference": subject.encounter_ref}]
    if msg.first("ORC") or msg.first("OBR"):
        orders = map_orders(b, msg, subjects)
        if orders:
            context["related"] = [{"reference": r} for r in orders]
    if context:
        res["context"] = context
    ref = b.put("DocumentReference", key, res)
    b.use(txa, ref)
    return [ref]


def _key(b: BundleBuilder, txa: Segment, patient_key: str | None, unique: dict | None) -> tuple:
    if unique:
        return ("txa", unique["value"])
    if txa.get(16):
        return ("txa-file", txa.get(16))
    b.warn(
        REQUIRED_FIELD_MISSING,
        "TXA-12",
        "no unique document number (TXA-12/TXA-16): document identified by patient, type and time",
    )
    return ("txa-derived", patient_key, txa.get(2), txa.get(4) or txa.get(6))


def _content(b: BundleBuilder, msg: Message, title: str) -> list[dict]:
    """OBX-5 of the document: ED -> the file, RP -> its URL, text types -> one text/plain attachment."""
    enc = msg.encoding
    out = []
    texts = []
    for i, obx in enumerate(msg.all("OBX"), start=1):
        if obx.index in b.used:
            continue
        vtype = obx.get(2).upper()
        reps = [r for r in obx.reps(5) if r]
        if vtype == "ED":
            for rep in reps:
                attachment = _encapsulated(b, split_components(rep, enc), f"OBX[{i}]-5")
                if attachment:
                    out.append({"attachment": attachment})
        elif vtype == "RP":
            for rep in reps:
                url = split_components(rep, enc)[0]
                if url:
                    out.append({"attachment": {"url": url, "title": title}})
        elif vtype in _TEXT_TYPES or not vtype:
            texts.extend(nfc(unescape(rep, enc)) for rep in reps)
        else:
            texts.extend(" ".join(c for c in split_components(rep, enc) if c) for rep in reps)
        b.use(obx)
    if texts:
        data = base64.b64encode("\n".join(texts).encode("utf-8")).decode("ascii")
        out.insert(
            0, {"attachment": {"contentType": "text/plain; charset=utf-8", "data": data, "title": title}}
        )
    if not out:
        # A notification without content (T01, T03, ...): the reference still needs a content entry.
        out.append({"attachment": {"title": title}})
    return out


def _encapsulated(b: BundleBuilder, comps: list[str], where: str) -> dict | None:
    """ED: source ^ type ^ subtype ^ encoding ^ data -> Attachment (base64 data)."""
    comps = comps + [""] * 5
    media = f"{comps[1]}/{comps[2]}".lower() if comps[1] and comps[2] else "application/octet-stream"
    if media.startswith(("ap/", "ap\\")):
        media = "application/" + comps[2].lower()
    encoding, data = comps[3].upper(), comps[4]
    if not data:
        return None
    try:
        if encoding in ("BASE64", ""):
            raw = base64.b64decode(data, validate=True)
        elif encoding == "HEX":
            raw = binascii.unhexlify(data)
        else:  # "A": plain text
            raw = data.encode("utf-8")
    except (ValueError, binascii.Error):
        b.warn(DATA_TYPE_ERROR, where, f"encapsulated data is not valid {encoding or 'Base64'}: left out")
        return None
    return {"contentType": media, "data": base64.b64encode(raw).decode("ascii")}
