"""Oversight for coordinators, the Kanwil and admins: /status, /belum and /rekap.

Every view is of one period and one node of the region tree the asker may see: an admin
starts at the whole country (one line per province), a provincial coordinator or the Kanwil
at their province (one line per pemda), a kabupaten/kota coordinator at their pemda (one line
per action x office). Lines of provinces and pemda are buttons that open them; long lists are
paged with "berikutnya"/"sebelumnya". The buttons are the engine's tagged prompt buttons, so
a button of an earlier page is refused as stale. Every node, on entry and on each press, is
checked against the asker's scope: nothing outside it is ever read.

```mermaid
flowchart TD
    S[/status, overseer/] --> R{role}
    R -- admin --> N[country: a line per province]
    R -- Kanwil, provincial coordinator --> P[province: a line per pemda]
    R -- kab/kota coordinator --> G[pemda: a line per action x office]
    N -- press a province --> P
    P -- press a pemda --> G
    G -- kembali --> P
    P -- kembali, admin --> N
    N & P & G -- berikutnya / sebelumnya --> N & P & G
    B[/belum/] --> O[offices that still owe: focal point, what is missing; paged]
    K[/rekap, /rekap bukti/] --> RQ[recap request recorded, answered at once]
    RQ -. job recap-requests, outside the turn .-> C[chart + workbook, or evidence ZIP: outbox]
```
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.engine.events import Choice, ChoiceMade, CommandReceived, TextReceived
from bot.engine.turn import Turn
from handlers import report_views as views
from storage import oversight, recap_requests, reports
from storage.models import Contact, Period, RecapKind, Region, RegionKind, Role
from storage.oversight import Figures, Grouping, PeriodReports, RegionInfo, ReportRow, Scope
from storage.scoring import TARGET, ScoreEstimate

FLOW = "oversight"
OVERSIGHT_ROLES = frozenset({Role.coordinator, Role.kanwil, Role.admin})
LINES_PER_PAGE = 10  # a page of a list without buttons per line
MAX_PAGE_CHARS = 3000  # under both channels' 4,096, with the header and footer
NAV_BUTTONS = 2  # previous, next: kept free on every page, so pages do not shift
# "/rekap bukti": the evidence ZIP instead of the chart and the workbook.
EVIDENCE_WORDS = frozenset({"bukti", "evidence"})
RECAP_VIEW = "recap"  # the "being prepared" answer, with its evidence ZIP button
EVIDENCE_CHOICE = "bukti"


class Step(StrEnum):
    view = "view"


class View(StrEnum):
    status = "status"
    pending = "pending"


class Level(StrEnum):
    national = "national"
    province = "province"
    region = "region"


@dataclass(frozen=True)
class Node:
    level: Level
    region_id: int | None = None  # None for the country


@dataclass(frozen=True)
class Line:
    text: str
    drill: Choice | None = None
    numbered: bool = False  # numbered on its page: typing the number presses its button


# ------------------------------------------------------------------ entry points


async def show_status(turn: Turn) -> None:
    await _open(turn, View.status)


async def show_pending(turn: Turn) -> None:
    await _open(turn, View.pending)


async def handle(turn: Turn) -> bool:
    """A button of the view (or its number typed). False for anything else: the caller then
    treats the message as if no view were open."""
    event = turn.event
    contact = turn.contact
    if not isinstance(event, ChoiceMade) or contact is None:
        return False
    if turn.get("view") == RECAP_VIEW:
        if event.choice_id != EVIDENCE_CHOICE:
            return False
        await _evidence_button(turn, contact)
        return True
    view = View(turn.get("view", View.status))
    node = Node(Level(turn.get("level", Level.region)), turn.get("region_id"))
    page = int(turn.get("page", 1))
    period_id = turn.get("period_id")
    choice = event.choice_id
    if choice == "pg:next":
        page += 1
    elif choice == "pg:prev":
        page -= 1
    elif choice == "up":
        node, page = await _parent(turn, node), 1
    elif choice.startswith("in:"):
        node, page = await _child(turn, int(choice.removeprefix("in:"))), 1
    elif choice.startswith("per:"):
        period_id, page = int(choice.removeprefix("per:")), 1
    else:
        return False
    scope = await oversight.scope_of(session=turn.session, contact=contact)
    if not _allowed(scope, node):
        turn.say("oversight.not_in_scope")
        node, page = await _root(turn, contact), 1
    await _render(turn, scope, view, node, page, period_id)
    return True


async def send_recap(turn: Turn) -> None:
    """/rekap: the chart and the workbook of the asker's whole scope; /rekap bukti [KODE]: the
    evidence ZIP of one pemda. Only a request is recorded here, answered at once: the job
    `recap-requests` (scheduler/recaps.py) makes the files outside this turn and sends them."""
    contact = turn.contact
    if contact is None or contact.id is None or not await _may_oversee(turn):
        return
    period = await _period(turn, None)
    if period is None or period.id is None:
        turn.say("oversight.no_period")
        return
    words = _arguments(turn)
    if words and words[0].casefold() in EVIDENCE_WORDS:
        region = await _evidence_region(turn, contact, words[1:])
        if region is not None:
            await _record(turn, contact, period, RecapKind.evidence, region.id)
            turn.say("oversight.evidence_preparing", period=period.title)
        return
    await _record(turn, contact, period, RecapKind.recap, None)
    preparing = turn.text("oversight.recap_preparing", period=period.title)
    if turn.flow not in {None, FLOW} or await _own_pemda(turn, contact) is None:
        turn.say_markup(preparing)  # (another flow in hand keeps its place)
        return
    # A kabupaten/kota coordinator has one pemda: its evidence ZIP is one button away.
    turn.goto(FLOW, Step.view, view=RECAP_VIEW, period_id=period.id)
    turn.ask(preparing, [Choice(EVIDENCE_CHOICE, turn.text("oversight.button_evidence"))])


async def _evidence_button(turn: Turn, contact: Contact) -> None:
    """The button under "Rekap sedang disiapkan": the coordinator's own pemda's ZIP."""
    _close(turn)
    if contact.id is None or not await _may_oversee(turn):
        return
    period = await _period(turn, turn.get("period_id"))
    own = await _own_pemda(turn, contact)
    if period is None or own is None:
        turn.say("oversight.evidence_not_in_scope")
        return
    await _record(turn, contact, period, RecapKind.evidence, own.id)
    turn.say("oversight.evidence_preparing", period=period.title)


async def _record(
    turn: Turn, contact: Contact, period: Period, kind: RecapKind, region_id: int | None
) -> None:
    """The request, once per inbound message, for the job to make (scheduler/recaps.py)."""
    event = turn.event
    await recap_requests.add_request(
        session=turn.session,
        source_key=f"{event.channel}:{event.message_id}",
        kind=kind,
        contact_id=contact.id or 0,
        channel=str(event.channel),
        chat_id=event.chat_id,
        language=turn.language,
        period_id=period.id or 0,
        region_id=region_id,
        now=turn.now,
    )


async def _own_pemda(turn: Turn, contact: Contact) -> Region | None:
    """A kabupaten/kota coordinator's pemda; None for anyone else."""
    if contact.role is not Role.coordinator:
        return None
    own = await reports.get_region(session=turn.session, region_id=contact.region_id or 0)
    return own if own is not None and own.kind is RegionKind.kabkota else None


def _arguments(turn: Turn) -> list[str]:
    """The words after the command: "/rekap bukti 18.71", or typed bare by an overseer
    ("rekap bukti 18.71", handlers/router.py)."""
    event = turn.event
    if isinstance(event, CommandReceived):
        return event.args.split()
    if isinstance(event, TextReceived):
        return event.text.split()[1:]
    return []


async def _evidence_region(turn: Turn, contact: Contact, words: list[str]) -> Region | None:
    """The pemda of an evidence ZIP: the one named by its code, within the asker's scope; a
    kabupaten/kota coordinator's own without a code. Otherwise says what to type (None)."""
    scope = await oversight.scope_of(session=turn.session, contact=contact)
    if words:
        region = await oversight.region_by_code(session=turn.session, code=words[0])
        if region is None or region.id is None or not scope.covers(region.id):
            turn.say("oversight.evidence_not_in_scope")
            return None
        return region
    own = await _own_pemda(turn, contact)
    if own is not None:
        return own
    regions = (
        await oversight.regions_in(session=turn.session, scope=scope)
        if not scope.everywhere
        else {}
    )
    listed = "\n".join(f"{region.code} {region.name}" for region in regions.values())
    turn.say("oversight.evidence_choose", regions=listed or "—")
    return None


# ------------------------------------------------------------------ the views


async def _open(turn: Turn, view: View) -> None:
    contact = turn.contact
    if contact is None or not await _may_oversee(turn):
        return
    scope = await oversight.scope_of(session=turn.session, contact=contact)
    await _render(turn, scope, view, await _root(turn, contact), 1, None)


async def _may_oversee(turn: Turn) -> bool:
    contact = turn.contact
    if contact is not None and contact.role in OVERSIGHT_ROLES:
        return True
    turn.say("command.not_for_role", command=_command_word(turn))
    return False


def _command_word(turn: Turn) -> str:
    return str(getattr(turn.event, "name", "status"))


async def _render(
    turn: Turn, scope: Scope, view: View, node: Node, page: int, period_id: int | None
) -> None:
    period = await _period(turn, period_id)
    if period is None:
        turn.say("oversight.no_period")
        _close(turn)
        return
    node_scope = await _node_scope(turn, scope, node)
    scope_name = await _node_name(turn, node)
    if view is View.pending:
        found = await oversight.period_reports(
            session=turn.session, period=period, scope=node_scope, with_focal_points=True
        )
        header = turn.text("oversight.pending_header", period=period.title, scope=scope_name)
        lines = _pending_lines(turn, found)
        if not lines:
            turn.say("oversight.pending_none", period=period.title)
            _close(turn)
            return
        intro = [header, await views.deadline_text(turn, period)]
    else:
        total, lines = await _status(turn, period, node_scope, node)
        if not total.total:
            turn.say("oversight.empty")
            _close(turn)
            return
        intro = [
            turn.text("oversight.header", period=period.title, scope=scope_name),
            await views.deadline_text(turn, period),
            turn.text(
                "oversight.summary",
                sent=total.sent,
                total=total.total,
                completeness=total.completeness,
                missing=total.missing,
            ),
            *_score_lines(turn, total.score),
        ]
    parent = await _parent(turn, node)
    extra = (
        [Choice("up", turn.text("oversight.button_up"))]
        if parent != node and _allowed(scope, parent)
        else []
    )
    extra += [
        Choice(f"per:{other.id}", turn.text("oversight.button_period", period=other.code))
        for other in await _other_periods(turn, period)
    ]
    drill = any(line.drill for line in lines)
    pages = _pages(lines, drill=drill, reserved=NAV_BUTTONS + len(extra), turn=turn)
    page = max(1, min(page, len(pages)))
    shown = pages[page - 1]
    body = [*intro, ""]
    body += [f"{n}. {line.text}" if line.numbered else line.text for n, line in enumerate(shown, 1)]
    if len(pages) > 1:
        body.append(turn.text("oversight.page", page=page, pages=len(pages)))
    choices = [line.drill for line in shown if line.drill]
    if page > 1:
        choices.append(Choice("pg:prev", turn.text("oversight.button_previous")))
    if page < len(pages):
        choices.append(Choice("pg:next", turn.text("oversight.button_next")))
    choices += extra
    text = "\n".join(part for part in body if part is not None)
    if not choices:
        _close(turn)
        turn.say_markup(text)
        return
    turn.goto(
        FLOW,
        Step.view,
        view=view.value,
        level=node.level.value,
        region_id=node.region_id,
        page=page,
        period_id=period.id,
    )
    turn.ask(text, choices)


def _close(turn: Turn) -> None:
    if turn.flow == FLOW:
        turn.leave_flow()


def _score_lines(turn: Turn, score: ScoreEstimate) -> list[str]:
    lines = [turn.text("oversight.score", score=f"{score.points:.0f}", target=f"{TARGET:.0f}")]
    causes = score.main_shortfalls()[:3]
    if causes:
        reasons = ", ".join(
            f"{turn.text(f'score.reason.{cause.value}')} (−{score.lost[cause]:.0f})"
            for cause in causes
        )
        lines.append(turn.text("oversight.score_down", reasons=reasons))
    elif score.meets_target:
        lines.append(turn.text("oversight.score_ok"))
    return lines


async def _status(
    turn: Turn, period: Period, scope: Scope, node: Node
) -> tuple[Figures, list[Line]]:
    """The figures of the node and its lines. A pemda shows its reports, read one by one; a
    province or the country shows a line per pemda or province, whose figures the database
    adds up (storage.oversight.group_figures): the country's thousands of reports are never
    read into Python for a /status."""
    if node.level is Level.region:
        found = await oversight.period_reports(session=turn.session, period=period, scope=scope)
        total = oversight.figures(found, found.reports, turn.now)
        rows = _weakest_first(found, found.reports, turn.now)
        return total, [_report_line(turn, found, row) for row in rows]
    grouping = Grouping.province if node.level is Level.national else Grouping.region
    grouped = await oversight.group_figures(
        session=turn.session, period=period, scope=scope, grouping=grouping, now=turn.now
    )
    ranked = sorted(
        (
            (figures, grouped.regions[group_id])
            for group_id, figures in grouped.groups.items()
            if group_id in grouped.regions
        ),
        key=lambda pair: (pair[0].score.points, pair[1].code),
    )
    return grouped.total, [_group_line(turn, figures, region) for figures, region in ranked]


def _weakest_first(found: PeriodReports, rows: list[ReportRow], now: datetime) -> list[ReportRow]:
    return sorted(
        rows,
        key=lambda row: (found.estimate(row, now).points, row.office_name, row.action_code),
    )


def _group_line(turn: Turn, figures: Figures, region: RegionInfo) -> Line:
    text = turn.text(
        "oversight.group_line",
        name=region.name,
        sent=figures.sent,
        total=figures.total,
        completeness=figures.completeness,
        missing=figures.missing,
        score=f"{figures.score.points:.0f}",
    )
    return Line(text, Choice(f"in:{region.id}", region.name), numbered=True)


def _report_line(turn: Turn, found: PeriodReports, row: ReportRow) -> Line:
    region = found.regions[row.region_id]
    text = turn.text(
        "oversight.report_line",
        action=f"{row.action_code} {_short(row.action_title)}",
        office=row.office_name,
        state=turn.text(_state_key(row)),
        completeness=row.completeness,
        score=f"{found.estimate(row, turn.now).points:.0f}",
        activity=_when(turn, row.last_activity, region.timezone),
    )
    if not row.complete:
        text += "\n" + turn.text("oversight.report_missing", missing=_missing(turn, row))
    return Line(text, numbered=True)


def _pending_lines(turn: Turn, found: PeriodReports) -> list[Line]:
    """One entry per office that still owes a report, with whom to call and what is missing."""
    owed: dict[int, list[ReportRow]] = defaultdict(list)
    for row in found.reports:
        if not row.sent:
            owed[row.office_id].append(row)
    lines = []
    for office_rows in sorted(
        owed.values(),
        key=lambda rows: (found.regions[rows[0].region_id].code, rows[0].office_name),
    ):
        first = office_rows[0]
        names = found.focal_points.get(first.office_id) or [
            turn.text("oversight.pending_no_focal_point")
        ]
        parts = [
            turn.text(
                "oversight.pending_office",
                office=first.office_name,
                region=found.regions[first.region_id].name,
                names=", ".join(names),
            )
        ]
        for row in office_rows:
            action = f"{row.action_code} {_short(row.action_title)}"
            state = turn.text(_state_key(row))
            if row.complete:
                parts.append(
                    turn.text("oversight.pending_item_complete", action=action, state=state)
                )
            else:
                parts.append(
                    turn.text(
                        "oversight.pending_item",
                        action=action,
                        state=state,
                        missing=_missing(turn, row),
                    )
                )
        lines.append(Line("\n".join(parts)))
    return lines


def _missing(turn: Turn, row: ReportRow) -> str:
    parts = []
    if row.missing_answers:
        parts.append(turn.text("oversight.missing_answers", count=row.missing_answers))
    parts += list(row.missing_evidence)
    if row.nihil_answers:
        parts.append(turn.text("oversight.nihil", count=row.nihil_answers))
    return ", ".join(parts)


def _state_key(row: ReportRow) -> str:
    if row.revision_open:
        return "status.revision"
    return f"status.{row.status.value}" if row.status else "status.none"


def _short(title: str, limit: int = 50) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def _when(turn: Turn, moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return turn.text("oversight.activity_none")
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local:%d/%m %H.%M}"


def _pages(lines: list[Line], *, drill: bool, reserved: int, turn: Turn) -> list[list[Line]]:
    """Lines cut into pages: with buttons per line, as many as the channel shows as buttons
    beside the navigation; otherwise up to LINES_PER_PAGE; never over MAX_PAGE_CHARS."""
    capabilities = turn.capabilities
    per_page = LINES_PER_PAGE
    if drill and capabilities.inline_buttons:
        per_page = max(1, min(LINES_PER_PAGE, capabilities.max_choices - reserved))
    pages: list[list[Line]] = [[]]
    size = 0
    for line in lines:
        if pages[-1] and (len(pages[-1]) >= per_page or size + len(line.text) > MAX_PAGE_CHARS):
            pages.append([])
            size = 0
        pages[-1].append(line)
        size += len(line.text) + 1
    return pages


# ------------------------------------------------------------------ nodes and scope


async def _root(turn: Turn, contact: Contact) -> Node:
    if contact.role is Role.admin:
        return Node(Level.national)
    region = await reports.get_region(session=turn.session, region_id=contact.region_id or 0)
    if region is not None and region.kind is RegionKind.provinsi:
        return Node(Level.province, region.id)
    return Node(Level.region, contact.region_id)


async def _parent(turn: Turn, node: Node) -> Node:
    if node.level is Level.national or node.region_id is None:
        return Node(Level.national)
    if node.level is Level.province:
        return Node(Level.national)
    region = await reports.get_region(session=turn.session, region_id=node.region_id)
    if region is None or region.kind is RegionKind.provinsi or region.parent_id is None:
        return Node(Level.province, node.region_id)
    return Node(Level.province, region.parent_id)


async def _child(turn: Turn, region_id: int) -> Node:
    region = await reports.get_region(session=turn.session, region_id=region_id)
    level = Level.province
    current = Level(turn.get("level", Level.region))
    if region is None or region.kind is RegionKind.kabkota or current is Level.province:
        level = Level.region  # a province's own pemda line opens the province's own reports
    return Node(level, region_id)


def _allowed(scope: Scope, node: Node) -> bool:
    if node.level is Level.national or node.region_id is None:
        return scope.everywhere
    return scope.covers(node.region_id)


async def _node_scope(turn: Turn, scope: Scope, node: Node) -> Scope:
    if node.level is Level.national or node.region_id is None:
        return scope
    if node.level is Level.region:
        return scope.narrowed([node.region_id])
    region = await reports.get_region(session=turn.session, region_id=node.region_id)
    if region is None:
        return scope.narrowed([])
    return scope.narrowed(
        (await oversight.region_scope(session=turn.session, region=region)).region_ids or []
    )


async def _node_name(turn: Turn, node: Node) -> str:
    if node.region_id is None:
        return turn.text("oversight.everywhere")
    region = await reports.get_region(session=turn.session, region_id=node.region_id)
    return region.name if region else ""


async def _period(turn: Turn, period_id: int | None) -> Period | None:
    if period_id is not None:
        period = await reports.get_period(session=turn.session, period_id=period_id)
        if period is not None:
            return period
    timezone = await views.region_timezone(turn)
    current = await oversight.current_periods(session=turn.session, timezone=timezone, now=turn.now)
    return current[0] if current else None


async def _other_periods(turn: Turn, shown: Period) -> list[Period]:
    timezone = await views.region_timezone(turn)
    current = await oversight.current_periods(session=turn.session, timezone=timezone, now=turn.now)
    return [period for period in current if period.id != shown.id]
