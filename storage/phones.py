"""Phone numbers, normalised to E.164 with Google's libphonenumber port.

Indonesians write numbers as 0812..., 62812..., +62 812-..., so everything is parsed with ID as
the default region and stored as +62812...; WhatsApp ids are the same digits without the plus.
"""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    pass


def normalise_phone(raw: str) -> str:
    """Return the E.164 form of an Indonesian (or international) number, or raise InvalidPhone."""
    text = (raw or "").strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        raise InvalidPhone(f"no digits in {raw!r}")
    # "62812..." without a plus is common in Excel sheets (the plus gets lost) and in WhatsApp ids.
    if not text.startswith(("+", "0")) and digits.startswith("62"):
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, "ID")
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"{raw!r} has the wrong length for a phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def whatsapp_id_to_phone(wa_id: str) -> str:
    return normalise_phone("+" + wa_id.lstrip("+"))


def phone_to_whatsapp_id(phone: str) -> str:
    """A stored (E.164) number as WhatsApp names the account: the digits without the plus."""
    return phone.strip().lstrip("+")
