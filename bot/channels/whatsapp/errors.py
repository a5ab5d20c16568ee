"""Graph API refusals as the engine's send errors, and how long each cause asks us to wait.

Codes: developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes. A refusal a
resend can fix is a TransientSendError with `retry_after`; anything else is permanent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from bot.channels.whatsapp.payloads import GraphErrorEnvelope
from bot.engine.channel import PermanentSendError, RecipientUnreachable, TransientSendError

log = logging.getLogger(__name__)

OUTSIDE_WINDOW = 131047
TOO_FAST = 130429
PAIR_RATE = 131056
SPAM_RATE = 131048
UNDELIVERABLE = 131026
ACCESS_TOKEN = 190
SERVER_CODES = frozenset({131000, 131016})
TRANSIENT_CODES = frozenset({1, 2, 4, 80007, 133004} | SERVER_CODES)


class OutsideWindow(PermanentSendError):
    """131047: free-form messages are refused; the same message goes out as a template."""


class TooFast(TransientSendError):
    """130429: the number is past Meta's throughput: every send of the number waits, not only
    the refused one (bot.channels.whatsapp.outbound.Pacing.too_fast)."""


@dataclass
class RetryDelays:
    """Seconds to wait before a resend, by cause. Mutable so tests can shorten them."""

    throughput: float = 3.0  # 130429: the number's ~80 msg/s
    pair_rate: float = 60.0  # 131056: too many to one user; Meta asks for a real pause
    spam: float = 900.0  # 131048: the number is restricted for a while
    token: float = 300.0  # 190: the operator must renew the token; keep the messages meanwhile
    server: float = 30.0  # 131000 and friends in a failed receipt

    def after_refusal(self, code: int) -> float | None:
        """The wait a refused send asks for, when its code names one."""
        return {
            TOO_FAST: self.throughput,
            PAIR_RATE: self.pair_rate,
            SPAM_RATE: self.spam,
            ACCESS_TOKEN: self.token,
        }.get(code)

    def after_failed_receipt(self, code: int) -> float | None:
        """A failed receipt a resend can fix: 131047 goes again at once, as a template."""
        if code in SERVER_CODES:
            return self.server
        return {
            OUTSIDE_WINDOW: 0.0,
            TOO_FAST: self.throughput,
            PAIR_RATE: self.pair_rate,
        }.get(code)


def graph_error(response: httpx.Response) -> tuple[int, str]:
    """(code, "code: title") from a Graph error envelope, or from the HTTP status."""
    try:
        error = GraphErrorEnvelope.model_validate_json(response.content).error
    except ValidationError:
        return 0, f"HTTP {response.status_code}: {response.text[:200]}"
    title = error.message
    prefix = f"(#{error.code}) "
    if title.startswith(prefix):
        title = title[len(prefix) :]
    details = error.error_data.details if error.error_data else None
    reason = f"{error.code}: {title}"
    if details and details not in title:
        reason += f" ({details})"
    return error.code, reason


def short_key(user_key: str | None) -> str:
    """How a log line names a user: never their whole phone number."""
    return f"…{user_key[-4:]}" if user_key else "-"


def raise_for_error(response: httpx.Response, delays: RetryDelays) -> None:
    """Nothing for a success; else the SendError the refusal means."""
    if response.status_code < 400:
        return
    code, reason = graph_error(response)
    if code == OUTSIDE_WINDOW:
        raise OutsideWindow(reason)
    if code == UNDELIVERABLE:  # not on WhatsApp (or can't receive): stop sending there
        raise RecipientUnreachable(reason)
    retry_after = delays.after_refusal(code)
    if code == TOO_FAST:
        raise TooFast(reason, retry_after=retry_after)
    if retry_after is not None:
        raise TransientSendError(reason, retry_after=retry_after)
    if code in TRANSIENT_CODES or response.status_code >= 500 or response.status_code == 429:
        raise TransientSendError(reason)
    raise PermanentSendError(reason)


def log_send_failure(recipient: str, error: Exception) -> None:
    """The one log line of a failed send (the caller logs nothing else): channel, short user
    key, reason. A refused token is an error: only the operator can renew it."""
    reason = str(error)
    level = logging.ERROR if reason.startswith(f"{ACCESS_TOKEN}:") else logging.WARNING
    hint = " (renew the access token)" if level == logging.ERROR else ""
    log.log(level, "whatsapp %s: send failed: %s%s", short_key(recipient), reason, hint)
