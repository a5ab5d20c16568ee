"""The words of a planned reminder or escalation, in the recipient's language, as the message
the outbox carries: the full text (sent inside WhatsApp's 24-hour window and on Telegram) and the
approved WhatsApp template with its parameters for outside the window
(bot/channels/whatsapp/templates.py: `laporham_periode_dibuka` for an opening,
`laporham_pengingat` for the others; an escalation goes in the generic template).

Catalogue and contact names are escaped by `t`; lines are joined as ready markup.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.engine.events import OutText
from bot.engine.texts import t
from scheduler.reminders.planner import ActionGap, GapState, OfficeGaps, PlannedMessage
from scheduler.reminders.schedule import OPEN
from storage.models import Role
from storage.periods import days_left, deadline, zone_abbreviation

# At most this many lines per list: a message must fit a phone screen and Telegram's 4,096
# characters, and WhatsApp's template parameter (900 characters) is cut anyway.
MAX_LINES = 15
TITLE_CHARS = 70
PENGINGAT = "laporham_pengingat"
PERIODE_DIBUKA = "laporham_periode_dibuka"
MONTHS = {
    "id": ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
           "September", "Oktober", "November", "Desember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}  # fmt: skip


def compose(planned: PlannedMessage, now: datetime) -> OutText:
    """The message, carrying its recipient's language: outside WhatsApp's window the template
    goes out in it."""
    if planned.office is not None:
        message = _reminder(planned, planned.office, now)
    else:
        message = _escalation(planned, now)
    return replace(message, language=planned.recipient.language)


def period_label(planned: PlannedMessage) -> str:
    return f"{planned.period.code} {planned.period.programme_year}"


def long_date(language: str, day: date) -> str:
    return f"{day.day} {MONTHS.get(language, MONTHS['id'])[day.month - 1]} {day.year}"


def _deadline_line(planned: PlannedMessage, now: datetime) -> str:
    """'Batas: 25 Agustus 2025 pukul 23.59 WIB (3 hari lagi)', as the report flow says it."""
    language, timezone = planned.recipient.language, planned.timezone
    left = days_left(planned.period.due_on, now, timezone)
    if left < 0:
        key, days = "deadline.overdue", -left
    else:
        key, days = ("deadline.today" if left == 0 else "deadline.days_left"), left
    due = long_date(language, planned.period.due_on)
    return t(language, key, date=due, zone=zone_abbreviation(timezone), days=days)


def _gap_text(language: str, gap: ActionGap) -> str:
    if gap.state is not GapState.in_progress:
        return t(language, f"reminder.{gap.state.value}")
    parts = [
        t(language, "reminder.missing_file", label=label)
        if short == 1
        else t(language, "reminder.missing_files", label=label, count=short)
        for label, short in gap.missing_evidence
    ]
    if gap.missing_answers:
        parts.append(t(language, "reminder.missing_answers", count=gap.missing_answers))
    return "; ".join(parts)


def _shorten(text: str, limit: int = TITLE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _capped(language: str, lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    rest = len(lines) - MAX_LINES
    return [*lines[:MAX_LINES], t(language, "reminder.more", count=rest)]


def _reminder(planned: PlannedMessage, office: OfficeGaps, now: datetime) -> OutText:
    language = planned.recipient.language
    region_name = planned.region.name if planned.region else ""
    office_name = f"{office.office.name} {region_name}".strip()
    slot = planned.slot
    head_key = (
        "reminder.opened" if slot.offset == OPEN
        else "reminder.after" if slot.after_due
        else "reminder.before"
    )  # fmt: skip
    deadline_line = _deadline_line(planned, now)
    lines = [
        t(
            language,
            "reminder.line",
            code=gap.action.code,
            title=_shorten(gap.action.title),
            state=_gap_text(language, gap),
        )
        for gap in office.gaps
    ]
    footer = t(language, "reminder.footer_late" if slot.after_due else "reminder.footer")
    text = "\n".join(
        [
            t(language, head_key, period=period_label(planned), office=office_name,
              deadline=deadline_line),
            *_capped(language, lines),
            footer,
        ]
    )  # fmt: skip
    if slot.offset == OPEN:
        opening: tuple[str, ...] = (
            period_label(planned),
            office_name,
            long_date(language, planned.period.due_on),
        )
        return OutText(text=text, template=PERIODE_DIBUKA, template_params=opening)
    last_minute = deadline(planned.period.due_on, planned.timezone) - timedelta(minutes=1)
    local = last_minute.astimezone(ZoneInfo(planned.timezone)).date()
    due_param = t(
        language,
        "reminder.deadline_param",
        date=long_date(language, local),
        zone=zone_abbreviation(planned.timezone),
    )
    params = (
        planned.recipient.name,
        period_label(planned),
        office_name,
        due_param,
        str(len(office.gaps)),
    )
    return OutText(text=text, template=PENGINGAT, template_params=params)


def _escalation(planned: PlannedMessage, now: datetime) -> OutText:
    language = planned.recipient.language
    deadline_line = _deadline_line(planned, now)
    home = planned.region.name if planned.region else ""
    footer = t(language, "escalation.footer")
    if planned.recipient.role is Role.coordinator:
        offices = planned.regions[0].offices
        lines = [
            t(
                language,
                "escalation.office_line",
                office=office.office.name,
                actions=", ".join(gap.action.code for gap in office.gaps),
            )
            for office in offices
        ]
        head = t(language, "escalation.coordinator", period=period_label(planned), region=home,
                 count=len(offices), deadline=deadline_line)  # fmt: skip
    else:
        lines = [
            t(
                language,
                "escalation.region_line",
                region=item.region.name,
                offices=len(item.offices),
                actions=item.actions_missing,
            )
            for item in planned.regions
        ]
        head = t(language, "escalation.kanwil", period=period_label(planned), province=home,
                 count=len(planned.regions), deadline=deadline_line)  # fmt: skip
    return OutText(text="\n".join([head, *_capped(language, lines), footer]))
