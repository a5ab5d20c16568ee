"""The reminder planner: which reminders and escalations are due at an instant. A pure function
of a snapshot (storage/reminders.py loads it) and the instant: no clock, no database.

- A focal point is reminded when their office has an assigned action of the period, with
  measures in it, not yet handed in; the reminder names each such action and what it misses.
- A pemda's coordinators get the list of their offices still missing; the Kanwil of a province
  gets one line per pemda of the province (the province's own offices included).
- Each goes out at the current slot of the period in the recipient's own zone (schedule.py), and
  never in quiet hours. The key names the slot, so each slot is written once (the ticker checks).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from scheduler.reminders.schedule import (
    Slot,
    current_slot,
    escalation_slots,
    in_quiet_hours,
    may_matter,
    reminder_slots,
)
from storage.models import Role, SubmissionStatus
from storage.reminder_policy import ReminderPolicy
from storage.reminders import (
    ActionRow,
    OfficeRow,
    PeriodRow,
    Recipient,
    RegionRow,
    ReminderSnapshot,
)


class GapState(StrEnum):
    not_started = "not_started"
    in_progress = "in_progress"
    complete = "complete"  # everything is there; only "kirim" is missing
    returned = "returned"  # the reviewer sent it back


@dataclass(frozen=True)
class ActionGap:
    action: ActionRow
    state: GapState
    missing_answers: int = 0
    missing_evidence: tuple[tuple[str, int], ...] = ()  # (requirement label, files short)


@dataclass(frozen=True)
class OfficeGaps:
    office: OfficeRow
    gaps: tuple[ActionGap, ...]


@dataclass(frozen=True)
class RegionGaps:
    region: RegionRow
    offices: tuple[OfficeGaps, ...]

    @property
    def actions_missing(self) -> int:
        return sum(len(office.gaps) for office in self.offices)


@dataclass(frozen=True)
class PlannedMessage:
    key: str  # the outbox idempotency key
    purpose: str  # "reminder" or "escalation"
    recipient: Recipient
    period: PeriodRow
    slot: Slot
    timezone: str
    office: OfficeGaps | None = None  # a focal point's reminder
    region: RegionRow | None = None  # the coordinator's pemda, the Kanwil's province
    regions: tuple[RegionGaps, ...] = ()  # escalation: one pemda, or each of a province


def active_periods(periods: list[PeriodRow], now: datetime) -> list[PeriodRow]:
    """The periods that could have a reminder due around `now` (nothing else is loaded)."""
    result = []
    for period in periods:
        policy = ReminderPolicy.from_stored(period.policy)
        if policy.enabled and may_matter(
            opens_on=period.opens_on, due_on=period.due_on, policy=policy, now=now
        ):
            result.append(period)
    return result


def plan(snapshot: ReminderSnapshot, now: datetime) -> list[PlannedMessage]:
    planned: list[PlannedMessage] = []
    zones = sorted({region.timezone for region in snapshot.regions.values()})
    for period in snapshot.periods:
        policy = ReminderPolicy.from_stored(period.policy)
        if not policy.enabled:
            continue
        live = _live_zones(period, policy, zones, now)
        if not live.reminders and not live.escalations:
            continue  # the usual minute: nothing of this period is due anywhere
        # An escalation sums up whole pemda (a Kanwil's province may span zones): then every
        # office counts; otherwise only the offices of zones where a reminder is due.
        only = None if live.escalations else set(live.reminders)
        gaps = office_gaps(snapshot, period, zones=only)
        if not gaps:
            continue
        planned += _reminders(snapshot, period, live.reminders, gaps)
        planned += _escalations(snapshot, period, live.escalations, gaps)
    return planned


def plan_unreachable(snapshot: ReminderSnapshot, now: datetime) -> list[PlannedMessage]:
    """What `plan` would give, at `now`, the contacts nobody can reach (never wrote to the
    bot, and no WhatsApp to their number): the operator's count, never written."""
    return plan(replace(snapshot, recipients=snapshot.unreachable), now)


@dataclass(frozen=True)
class LiveSlots:
    """Per time zone, the slot due now (zones in quiet hours or with no current slot left out)."""

    reminders: dict[str, Slot]
    escalations: dict[str, Slot]


def _live_zones(
    period: PeriodRow, policy: ReminderPolicy, zones: list[str], now: datetime
) -> LiveSlots:
    reminders, escalations = {}, {}
    for zone in zones:
        if in_quiet_hours(now, zone, policy.quiet_hours):
            continue
        window = {"opens_on": period.opens_on, "due_on": period.due_on}
        slot = current_slot(reminder_slots(**window, policy=policy, timezone=zone), now)
        if slot is not None:
            reminders[zone] = slot
        slot = current_slot(escalation_slots(**window, policy=policy, timezone=zone), now)
        if slot is not None:
            escalations[zone] = slot
    return LiveSlots(reminders, escalations)


def office_gaps(
    snapshot: ReminderSnapshot, period: PeriodRow, *, zones: set[str] | None = None
) -> dict[int, OfficeGaps]:
    """Per office (of these zones, or all), its assigned actions of this period not handed
    in, in catalogue order."""
    result: dict[int, OfficeGaps] = {}
    offices, regions = snapshot.offices, snapshot.regions
    for office_id, action_ids in snapshot.assigned.items():
        office = offices.get(office_id)
        if office is None:
            continue
        if zones is not None:
            region = regions.get(office.region_id)
            if region is None or region.timezone not in zones:
                continue
        gaps = [
            gap
            for action_id in action_ids
            if (gap := _action_gap(snapshot, period, office_id, action_id)) is not None
        ]
        if gaps:
            gaps.sort(key=lambda gap: (gap.action.position, gap.action.id))
            result[office_id] = OfficeGaps(office, tuple(gaps))
    return result


def _action_gap(
    snapshot: ReminderSnapshot, period: PeriodRow, office_id: int, action_id: int
) -> ActionGap | None:
    work = snapshot.work.get((action_id, period.id))
    action = snapshot.actions.get(action_id)
    if work is None or action is None:  # no measure in this period: nothing to report
        return None
    submission = snapshot.submissions.get((action_id, office_id, period.id))
    if submission is None:
        return ActionGap(action, GapState.not_started)
    status = submission.status
    if status is SubmissionStatus.submitted or status is SubmissionStatus.approved:
        return None
    if status is SubmissionStatus.returned:
        return ActionGap(action, GapState.returned)
    answered = snapshot.answered.get(submission.id, 0)
    files = snapshot.evidence
    missing_files = tuple(
        (requirement.label, short)
        for requirement in work.requirements
        if (short := requirement.min_count - files.get((submission.id, requirement.id), 0)) > 0
    )
    missing_answers = max(0, work.required_questions - answered)
    if not missing_answers and not missing_files:
        return ActionGap(action, GapState.complete)
    return ActionGap(action, GapState.in_progress, missing_answers, missing_files)


def _reminders(
    snapshot: ReminderSnapshot,
    period: PeriodRow,
    live: dict[str, Slot],
    gaps: dict[int, OfficeGaps],
) -> list[PlannedMessage]:
    planned = []
    for recipient in snapshot.recipients:
        if recipient.role is not Role.focal_point or recipient.office_id not in gaps:
            continue
        office = gaps[recipient.office_id]
        region = snapshot.regions.get(office.office.region_id)
        slot = live.get(region.timezone) if region else None
        if region is None or slot is None:
            continue
        key = (
            f"reminder:{period.id}:{office.office.id}:{recipient.contact_id}:"
            f"{slot.offset}:{slot.day.isoformat()}"
        )
        planned.append(
            PlannedMessage(
                key, "reminder", recipient, period, slot, region.timezone, office, region
            )
        )
    return planned


def _escalations(
    snapshot: ReminderSnapshot,
    period: PeriodRow,
    live: dict[str, Slot],
    gaps: dict[int, OfficeGaps],
) -> list[PlannedMessage]:
    by_region: dict[int, list[OfficeGaps]] = defaultdict(list)
    for office in gaps.values():
        by_region[office.office.region_id].append(office)
    children: dict[int, list[int]] = defaultdict(list)
    for region in snapshot.regions.values():
        if region.parent_id is not None:
            children[region.parent_id].append(region.id)

    def region_gaps(region_id: int) -> RegionGaps | None:
        offices = by_region.get(region_id)
        region = snapshot.regions.get(region_id)
        if not offices or region is None:
            return None
        ordered = sorted(offices, key=lambda office: (-len(office.gaps), office.office.name))
        return RegionGaps(region, tuple(ordered))

    planned = []
    for recipient in snapshot.recipients:
        regions: tuple[RegionGaps, ...]
        if recipient.role is Role.coordinator and recipient.region_id is not None:
            found = region_gaps(recipient.region_id)
            regions = (found,) if found else ()
        elif recipient.role is Role.kanwil and recipient.region_id is not None:
            pemda = [recipient.region_id, *children.get(recipient.region_id, [])]
            listed = [found for region_id in pemda if (found := region_gaps(region_id))]
            listed.sort(key=lambda item: (-item.actions_missing, item.region.name))
            regions = tuple(listed)
        else:
            continue
        home = snapshot.regions.get(recipient.region_id)
        slot = live.get(home.timezone) if home else None
        if not regions or home is None or slot is None:
            continue
        key = (
            f"escalation:{period.id}:{home.id}:{recipient.contact_id}:"
            f"{slot.offset}:{slot.day.isoformat()}"
        )
        planned.append(
            PlannedMessage(
                key, "escalation", recipient, period, slot, home.timezone, None, home, regions
            )
        )
    return planned
