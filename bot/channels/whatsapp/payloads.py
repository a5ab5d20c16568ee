"""The few WhatsApp Cloud API shapes we read: webhook notifications and Graph API answers.

Only the fields the channel uses are declared; everything else Meta sends is ignored, so a new
field on Meta's side never breaks parsing. Inbound messages are kept as plain dicts in the
inbox (see `StoredMessage`) and parsed again from there, so a stored payload stays readable
when these models change.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# --- webhook notifications -------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Metadata(_Model):
    phone_number_id: str
    display_phone_number: str | None = None


class Profile(_Model):
    name: str | None = None


class WaContact(_Model):
    """`value.contacts[]`: who wrote (their profile name and wa_id)."""

    wa_id: str
    profile: Profile = Field(default_factory=Profile)


class StatusError(_Model):
    code: int
    title: str | None = None
    message: str | None = None


class Status(_Model):
    """`value.statuses[]`: what happened to a message we sent."""

    id: str
    status: str  # sent, delivered, read, failed (and "deleted", "warning": ignored)
    recipient_id: str | None = None
    timestamp: str | None = None
    errors: list[StatusError] = Field(default_factory=list)


class ChangeValue(_Model):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    contacts: list[WaContact] = Field(default_factory=list)
    # Kept raw: each message is stored in the inbox as Meta sent it.
    messages: list[dict[str, Any]] = Field(default_factory=list)
    statuses: list[Status] = Field(default_factory=list)
    errors: list[StatusError] = Field(default_factory=list)


class Change(_Model):
    field: str
    value: ChangeValue


class Entry(_Model):
    id: str | None = None
    changes: list[Change] = Field(default_factory=list)


class Notification(_Model):
    object: str
    entry: list[Entry] = Field(default_factory=list)


# --- one inbound message (parsed from the stored dict) ---------------------------------------


class Text(_Model):
    body: str = ""


class Reply(_Model):
    id: str
    title: str | None = None
    description: str | None = None


class Interactive(_Model):
    type: str
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class TemplateButton(_Model):
    """A tap on a template's quick-reply button."""

    text: str | None = None
    payload: str | None = None


class Media(_Model):
    id: str
    mime_type: str | None = None
    filename: str | None = None
    caption: str | None = None
    voice: bool | None = None


class SharedPhone(_Model):
    phone: str | None = None
    wa_id: str | None = None


class SharedContact(_Model):
    phones: list[SharedPhone] = Field(default_factory=list)


class Location(_Model):
    latitude: float
    longitude: float


class Message(_Model):
    sender: str = Field(alias="from")
    id: str
    timestamp: str | None = None
    type: str
    text: Text | None = None
    interactive: Interactive | None = None
    button: TemplateButton | None = None
    image: Media | None = None
    document: Media | None = None
    audio: Media | None = None
    contacts: list[SharedContact] = Field(default_factory=list)
    location: Location | None = None


class StoredMessage(_Model):
    """What the inbox keeps for one message: enough to handle it after a restart."""

    message: dict[str, Any]
    name: str | None = None  # the sender's WhatsApp profile name
    phone_number_id: str | None = None


# --- Graph API answers -------------------------------------------------------------------------


class SentMessage(_Model):
    id: str
    message_status: str | None = None


class SendResponse(_Model):
    messages: list[SentMessage] = Field(default_factory=list)


class MediaInfo(_Model):
    url: str
    mime_type: str | None = None
    file_size: int | None = None


class Uploaded(_Model):
    id: str


class GraphErrorData(_Model):
    details: str | None = None


class GraphError(_Model):
    code: int = 0
    message: str = ""
    error_subcode: int | None = None
    error_user_title: str | None = None
    error_data: GraphErrorData | None = None


class GraphErrorEnvelope(_Model):
    error: GraphError
