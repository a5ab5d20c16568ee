"""The operator's view of reminders (`laporham reminders plan|history`): plain lines of text,
in Indonesian like the rest of the command line. Contacts are named, accounts shown only by a
short key (no phone numbers on a screen or in a terminal log)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from scheduler.reminders.planner import PlannedMessage
from scheduler.reminders.schedule import escalation_slots, reminder_slots
from scheduler.reminders.ticker import Plan
from storage.periods import zone_abbreviation
from storage.reminder_policy import ReminderPolicy
from storage.reminders import HistoryRow, PeriodRow, Reach

STATUS_WORDS = {"pending": "menunggu", "sending": "diproses", "sent": "terkirim", "failed": "gagal"}
# Why a contact who never wrote to the bot cannot be reached, in the operator's words.
UNREACHABLE_WORDS = {
    Reach.no_number: "tanpa nomor HP",
    Reach.no_phone_channel: "WhatsApp belum dipasang",
    Reach.not_on_whatsapp: "nomornya tidak terdaftar di WhatsApp",
}
NOT_ON_WHATSAPP = "131026"  # WhatsApp: the number cannot receive messages (not on WhatsApp)


def short_key(chat_id: str) -> str:
    """The last four characters of an account id: enough to tell two apart, not to dial."""
    return "…" + chat_id[-4:] if len(chat_id) > 4 else chat_id


def local_time(instant: datetime, timezone: str) -> str:
    local = instant.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} {zone_abbreviation(timezone)}"


def _account(message: PlannedMessage) -> str:
    recipient = message.recipient
    imported = ", nomor impor" if recipient.reach is Reach.number else ""
    return f"{recipient.channel} {short_key(recipient.chat_id)}{imported}"


def _what(message: PlannedMessage) -> str:
    if message.office is not None:
        actions = ", ".join(gap.action.code for gap in message.office.gaps)
        region = message.region.name if message.region else ""
        return f"{message.office.office.name} {region}: {actions}"
    pemda = ", ".join(f"{item.region.name} ({item.actions_missing})" for item in message.regions)
    return f"belum lengkap: {pemda}"


def plan_lines(plan: Plan) -> list[str]:
    """What the ticker would write at `plan.at`, one line each, and what was written already."""
    lines = [
        f"Pengingat yang jatuh tempo pada {plan.at:%Y-%m-%d %H:%M} UTC (uji coba, tanpa menulis):"
    ]
    for message in sorted(plan.due, key=lambda m: (m.slot.at, m.purpose, m.recipient.name)):
        state = "sudah ditulis" if message.key in plan.written else "AKAN DIKIRIM"
        lines.append(
            f"  {local_time(message.slot.at, message.timezone)}  {state:<13} "
            f"{message.purpose} {message.slot.offset} {message.period.code} → "
            f"{message.recipient.name} ({_account(message)}) — {_what(message)}"
        )
    unsent = len(plan.unsent)
    lines.append(f"{unsent} akan dikirim, {len(plan.due) - unsent} sudah ditulis sebelumnya.")
    return lines + unreachable_lines(plan.unreachable)


def unreachable_lines(planned: Sequence[PlannedMessage]) -> list[str]:
    """The contacts who would be due a reminder now but cannot be reached: never wrote to the
    bot (Telegram cannot start a chat with a number) and no WhatsApp to their number."""
    if not planned:
        return []
    contacts = {message.recipient.contact_id: message.recipient for message in planned}
    lines = [
        f"{len(contacts)} kontak tidak dapat dijangkau: belum pernah menulis ke bot, "
        f"tanpa WhatsApp:"
    ]
    for recipient in sorted(contacts.values(), key=lambda r: (r.name, r.contact_id)):
        lines.append(f"  {recipient.name}: {UNREACHABLE_WORDS.get(recipient.reach, '?')}")
    return lines


def upcoming_lines(
    periods: Sequence[PeriodRow], timezones: Sequence[str], after: datetime
) -> list[str]:
    """The slots still to come of each period, per time zone in use."""
    lines = []
    for period in periods:
        policy = ReminderPolicy.from_stored(period.policy)
        if not policy.enabled:
            lines.append(f"{period.code} {period.programme_year}: pengingat dimatikan di katalog.")
            continue
        for timezone in timezones:
            slots = [
                ("pengingat", slot)
                for slot in reminder_slots(
                    opens_on=period.opens_on,
                    due_on=period.due_on,
                    policy=policy,
                    timezone=timezone,
                )
            ]
            slots += [
                ("eskalasi", slot)
                for slot in escalation_slots(
                    opens_on=period.opens_on, due_on=period.due_on, policy=policy,
                    timezone=timezone,
                )
            ]  # fmt: skip
            coming = sorted((slot.at, kind, slot.offset) for kind, slot in slots if slot.at > after)
            if coming:
                listed = "; ".join(
                    f"{kind} {offset} {local_time(at, timezone)}" for at, kind, offset in coming
                )
                lines.append(
                    f"{period.code} {period.programme_year} ({period.programme_code}), "
                    f"{zone_abbreviation(timezone)}: {listed}"
                )
    return lines or ["Tidak ada pengingat terjadwal sesudahnya."]


def _outcome(row: HistoryRow) -> str:
    """The reason a row was not sent, in the operator's words where it is one of ours."""
    error = row.last_error or ""
    if row.status != "failed" or not error:
        return ""
    if error.startswith(NOT_ON_WHATSAPP):
        return " — nomor tidak terdaftar di WhatsApp (131026): tidak dicoba lagi"
    if error.startswith("not sent: quiet hours"):
        return " — dibatalkan: jam tenang berakhir sesudah batas waktunya"
    if error.startswith("not sent: expired"):
        return " — dibatalkan: sudah lewat waktunya ketika akan dikirim"
    return f" — {error[:80]}"


def history_lines(rows: Sequence[HistoryRow], *, not_on_whatsapp: int = 0) -> list[str]:
    footer = (
        [f"{not_on_whatsapp} nomor impor tidak terdaftar di WhatsApp: tidak dikirimi pengingat."]
        if not_on_whatsapp
        else []
    )
    if not rows:
        return ["Belum ada pengingat atau eskalasi yang ditulis.", *footer]
    lines = []
    for row in rows:
        offset = row.idempotency_key.split(":")[4] if row.idempotency_key.count(":") >= 4 else ""
        when = row.sent_at or row.created_at
        status = STATUS_WORDS.get(row.status, row.status)
        imported = "" if row.has_account else ", nomor impor"
        lines.append(
            f"{when:%Y-%m-%d %H:%M} UTC  {status:<9} {row.purpose} {offset} → "
            f"{row.contact_name or '?'} ({row.channel} {short_key(row.recipient)}{imported})"
            f"{_outcome(row)}"
        )
    return lines + footer
