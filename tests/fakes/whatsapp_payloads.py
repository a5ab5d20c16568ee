"""Builders for WhatsApp Cloud API webhook notifications, plus webhook signing.

Every builder returns the exact body Meta POSTs for the ``messages`` webhook field:
``{"object": "whatsapp_business_account", "entry": [{"id", "changes": [{"value", "field"}]}]}``.
Use :func:`encode` to get the bytes to POST and :func:`sign` for ``X-Hub-Signature-256``;
the signature covers those exact bytes, so never re-serialise a payload after signing it.

The error catalogue (:data:`ERRORS`) is shared with the fake Graph API so a webhook
``statuses[].errors[]`` entry and a synchronous send error describe a code identically.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DISPLAY_PHONE_NUMBER",
    "ERRORS",
    "ERROR_CODES_HREF",
    "PHONE_NUMBER_ID",
    "WABA_ID",
    "ErrorInfo",
    "button_reply",
    "contacts_message",
    "document_message",
    "encode",
    "error_info",
    "image_message",
    "list_reply",
    "location_message",
    "make_wamid",
    "retarget",
    "sign",
    "signed_headers",
    "status_error",
    "status_update",
    "text_message",
    "unsupported_message",
]

Payload = dict[str, Any]
Timestamp = int | str | None

# Defaults match FakeGraphAPI's defaults so a webhook and a reply agree on the number.
WABA_ID = "102938475610293"
PHONE_NUMBER_ID = "1234567890"
DISPLAY_PHONE_NUMBER = "6281100002024"
DEFAULT_NAME = "Siti"
ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


@dataclass(frozen=True)
class ErrorInfo:
    """One Cloud API error code: title (as in ``(#code) title``), details, HTTP status."""

    code: int
    title: str
    details: str
    http_status: int


# Titles/details follow Meta's error-code reference. The throttling codes answer 429 because
# that is what the Cloud API is observed to return for them; clients must branch on `code`.
ERRORS: dict[int, ErrorInfo] = {
    info.code: info
    for info in (
        ErrorInfo(
            100,
            "Invalid parameter",
            "The request included one or more unsupported or misspelled parameters.",
            400,
        ),
        ErrorInfo(
            131000, "Something went wrong", "Message failed to send due to an unknown error.", 500
        ),
        ErrorInfo(131008, "Required parameter is missing", "A required parameter is missing.", 400),
        ErrorInfo(
            131009, "Parameter value is not valid", "One or more parameter values are invalid.", 400
        ),
        ErrorInfo(
            131026,
            "Message Undeliverable",
            "Message Undeliverable.",
            400,
        ),
        ErrorInfo(
            131047,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer "
            "last replied to this number.",
            400,
        ),
        ErrorInfo(
            130429,
            "Rate limit hit",
            "Message failed to send because there were too many messages sent from this phone "
            "number in a short period of time.",
            429,
        ),
        ErrorInfo(
            131048,
            "Spam rate limit hit",
            "Message failed to send because there are restrictions on how many messages can be "
            "sent from this phone number.",
            400,
        ),
        ErrorInfo(
            131051,
            "Message type unknown",
            "Message type is currently not supported.",
            400,
        ),
        ErrorInfo(
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Message failed to send because there were too many messages sent from this phone "
            "number to the same phone number in a short period of time.",
            429,
        ),
    )
}


def error_info(code: int) -> ErrorInfo:
    """Catalogue entry for ``code``; ``500`` is shorthand for 131000 (internal error)."""
    if code == 500:
        return ERRORS[131000]
    return ERRORS.get(code) or ErrorInfo(code, f"Error {code}", f"Simulated error {code}.", 400)


# --- identifiers ---------------------------------------------------------------------------

_wamid_counter = itertools.count(1)
_KEY_OFFSET = secrets.randbelow(16**20)


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def _message_key(width: int) -> str:
    # An odd multiplier is a bijection modulo 16**width, so keys never repeat within a
    # process, yet they look as random as Meta's.
    n = (next(_wamid_counter) * 0xD1B54A32D192ED03AB + _KEY_OFFSET) % 16**width
    return f"{n:0{width}X}"


def make_wamid(wa_id: str, *, outbound: bool = False) -> str:
    """A wamid shaped like Meta's: base64 of (length-prefixed wa_id, message key).

    For a 13-digit number such as 6281234567890 this starts with ``wamid.HBgN``; the third
    base64 character encodes the number's length, exactly as in real ids. Unique per call.
    """
    digits = _digits(wa_id).encode()
    if outbound:  # business-sent keys are 18 hex chars, tagged 0x11
        key, tag = _message_key(18), b"\x11\x18\x12"
    else:  # user-sent keys are 20 chars starting "3A", tagged 0x12
        key, tag = "3A" + _message_key(18), b"\x12\x18\x14"
    raw = b"\x1c\x18" + bytes([len(digits)]) + digits + b"\x15\x02\x00" + tag + key.encode()
    return "wamid." + base64.b64encode(raw + b"\x00").decode()


def _media_sha256(seed: str) -> str:
    # Webhooks carry the media hash base64-encoded (the media URL endpoint uses hex).
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()).decode()


def _media_id() -> str:
    return str(10**15 + secrets.randbelow(9 * 10**15))


def _ts(timestamp: Timestamp) -> str:
    # Meta sends unix seconds as a *string*.
    return str(int(time.time()) if timestamp is None else int(timestamp))


# --- envelope ------------------------------------------------------------------------------


def _notification(value: Payload) -> Payload:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_PHONE_NUMBER,
                                "phone_number_id": PHONE_NUMBER_ID,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def _inbound(
    wa_id: str,
    fields: Payload,
    *,
    wamid: str | None,
    name: str,
    timestamp: Timestamp,
) -> Payload:
    message = {
        "from": wa_id,
        "id": wamid or make_wamid(wa_id),
        "timestamp": _ts(timestamp),
        **fields,
    }
    return _notification(
        {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [message]}
    )


def retarget(
    payload: Payload,
    *,
    phone_number_id: str | None = None,
    display_phone_number: str | None = None,
    waba_id: str | None = None,
) -> Payload:
    """Copy of ``payload`` addressed to another business number / WABA."""
    result = copy.deepcopy(payload)
    for entry in result["entry"]:
        if waba_id is not None:
            entry["id"] = waba_id
        for change in entry["changes"]:
            metadata = change["value"]["metadata"]
            if phone_number_id is not None:
                metadata["phone_number_id"] = phone_number_id
            if display_phone_number is not None:
                metadata["display_phone_number"] = display_phone_number
    return result


# --- inbound messages ----------------------------------------------------------------------


def text_message(
    wa_id: str,
    text: str,
    *,
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    fields = {"type": "text", "text": {"body": text}}
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


def _reply_context(context_wamid: str | None, wa_id: str) -> Payload:
    # Replies to interactive messages always carry the business message they answer.
    return {"from": DISPLAY_PHONE_NUMBER, "id": context_wamid or make_wamid(wa_id, outbound=True)}


def button_reply(
    wa_id: str,
    reply_id: str,
    title: str,
    *,
    context_wamid: str | None = None,
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    fields = {
        "context": _reply_context(context_wamid, wa_id),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}},
    }
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


def list_reply(
    wa_id: str,
    reply_id: str,
    title: str,
    description: str | None = None,
    *,
    context_wamid: str | None = None,
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    reply: Payload = {"id": reply_id, "title": title}
    if description is not None:
        reply["description"] = description
    fields = {
        "context": _reply_context(context_wamid, wa_id),
        "type": "interactive",
        "interactive": {"type": "list_reply", "list_reply": reply},
    }
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


def image_message(
    wa_id: str,
    media_id: str,
    *,
    mime_type: str = "image/jpeg",
    sha256: str | None = None,
    caption: str | None = None,
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    image: Payload = {}
    if caption is not None:  # Meta omits the key when there is no caption
        image["caption"] = caption
    image |= {"mime_type": mime_type, "sha256": sha256 or _media_sha256(media_id), "id": media_id}
    fields = {"type": "image", "image": image}
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


def document_message(
    wa_id: str,
    media_id: str,
    *,
    filename: str,
    mime_type: str,
    sha256: str | None = None,
    caption: str | None = None,
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    document: Payload = {}
    if caption is not None:
        document["caption"] = caption
    document |= {
        "filename": filename,
        "mime_type": mime_type,
        "sha256": sha256 or _media_sha256(media_id),
        "id": media_id,
    }
    fields = {"type": "document", "document": document}
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


def _pretty_phone(digits: str) -> str:
    # WhatsApp shares contacts with the phone formatted as on the sender's handset.
    if digits.startswith("62") and len(digits) >= 11:
        return f"+62 {digits[2:5]}-{digits[5:9]}-{digits[9:]}"
    return "+" + digits


def contacts_message(
    wa_id: str,
    phone: str,
    *,
    contact_name: str = "Budi Santoso",
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    digits = _digits(phone)
    first, _, last = contact_name.partition(" ")
    contact_name_obj: Payload = {"first_name": first, "formatted_name": contact_name}
    if last:
        contact_name_obj["last_name"] = last
    contact = {
        "name": contact_name_obj,
        "phones": [{"phone": _pretty_phone(digits), "wa_id": digits, "type": "CELL"}],
    }
    fields = {"type": "contacts", "contacts": [contact]}
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


def location_message(
    wa_id: str,
    lat: float,
    lon: float,
    *,
    place_name: str | None = None,
    address: str | None = None,
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    location: Payload = {"latitude": lat, "longitude": lon}
    if place_name is not None:  # only present for a chosen place, not a dropped pin
        location["name"] = place_name
    if address is not None:
        location["address"] = address
    fields = {"type": "location", "location": location}
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


def _unsupported_fields(wa_id: str, kind: str) -> Payload:
    media_id = _media_id()
    if kind == "sticker":
        sticker = {
            "mime_type": "image/webp",
            "sha256": _media_sha256(media_id),
            "id": media_id,
            "animated": False,
        }
        return {"type": "sticker", "sticker": sticker}
    if kind == "audio":  # a push-to-talk voice note
        audio = {
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": _media_sha256(media_id),
            "id": media_id,
            "voice": True,
        }
        return {"type": "audio", "audio": audio}
    if kind == "video":
        video = {"mime_type": "video/mp4", "sha256": _media_sha256(media_id), "id": media_id}
        return {"type": "video", "video": video}
    if kind == "reaction":  # reacts to a message the business sent
        reaction = {"message_id": make_wamid(wa_id, outbound=True), "emoji": "\U0001f44d"}
        return {"type": "reaction", "reaction": reaction}
    if kind == "unsupported":  # what Meta sends for e.g. polls or view-once media
        return {"type": "unsupported", "errors": [status_error(131051)]}
    raise ValueError(f"unknown message kind: {kind!r}")


def unsupported_message(
    wa_id: str,
    kind: str,
    *,
    wamid: str | None = None,
    name: str = DEFAULT_NAME,
    timestamp: Timestamp = None,
) -> Payload:
    """A message the bot does not handle: sticker, audio, video, reaction or unsupported."""
    fields = _unsupported_fields(wa_id, kind)
    return _inbound(wa_id, fields, wamid=wamid, name=name, timestamp=timestamp)


# --- delivery statuses ---------------------------------------------------------------------


def status_error(code: int, details: str | None = None) -> Payload:
    """An ``errors[]`` item as found in webhook statuses (title and message are equal)."""
    info = error_info(code)
    return {
        "code": info.code,
        "title": info.title,
        "message": info.title,
        "error_data": {"details": details or info.details},
        "href": ERROR_CODES_HREF,
    }


def _billing(status: str, timestamp: str) -> Payload:
    conversation: Payload = {"id": secrets.token_hex(16)}
    if status == "sent":  # only the first status of a conversation carries its expiry
        conversation["expiration_timestamp"] = str(int(timestamp) + 86_400)
    conversation["origin"] = {"type": "service"}
    pricing = {
        "billable": False,
        "pricing_model": "PMP",
        "category": "service",
        "type": "free_customer_service",
    }
    return {"conversation": conversation, "pricing": pricing}


def status_update(
    wamid: str,
    status: str,
    recipient_id: str,
    *,
    errors: Sequence[int | Payload] | None = None,
    timestamp: Timestamp = None,
) -> Payload:
    """A ``statuses[]`` notification: sent, delivered, read or failed.

    ``errors`` takes error codes (expanded from :data:`ERRORS`) or ready ``errors[]`` items;
    a failed status without errors gets 131026 (undeliverable), as Meta never omits them.
    """
    ts = _ts(timestamp)
    entry: Payload = {"id": wamid, "status": status, "timestamp": ts, "recipient_id": recipient_id}
    if status in ("sent", "delivered"):
        entry |= _billing(status, ts)
    if status == "failed" and not errors:
        errors = [131026]
    if errors:
        entry["errors"] = [status_error(e) if isinstance(e, int) else e for e in errors]
    return _notification({"statuses": [entry]})


# --- wire format ---------------------------------------------------------------------------


def encode(payload: Payload) -> bytes:
    """Compact JSON with non-ASCII escaped, like Meta's bodies; these bytes are what get signed."""
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


def sign(body: bytes, app_secret: str) -> str:
    """Value for ``X-Hub-Signature-256``: HMAC-SHA256 of the raw body keyed by the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, app_secret: str) -> dict[str, str]:
    """Headers Meta sends with a webhook POST carrying ``body``."""
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(body, app_secret),
        "User-Agent": "facebookexternalua",
    }
