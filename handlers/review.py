"""/periksa: coordinators, the Kanwil and admins review submitted reports in their scope
(storage/review.py says whose), and approve them or return them with a note.

```mermaid
stateDiagram-v2
    [*] --> Queue: /periksa (a focal point is refused)
    Queue --> Queue: next / previous page
    Queue --> Decide: open a report: answers, changes since the previous version, then its files
    Decide --> Queue: approve (review event + audit; the focal points are told)
    Decide --> Note: return
    Note --> Decide: cancel
    Note --> Queue: note typed: returned (review event + audit)
    Queue --> [*]: the focal points get the note and an "open for revision" button
    Decide --> Queue: changed meanwhile (resubmitted, decided by another reviewer): nothing saved
    Queue --> [*]: close, or nothing waiting
```
Every id a button carries is checked again against the reviewer's scope when pressed, and a
decision only applies to the version that was shown: a report that changed since is refused.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.engine.events import (
    Choice,
    ChoiceMade,
    OutFile,
    OutText,
    TextReceived,
    outgoing_to_payload,
)
from bot.engine.text_input import clean_name
from bot.engine.texts import t
from bot.engine.turn import STANDING, Turn
from handlers import report_views as views
from handlers.answers import display_value
from storage import identities, outbox, reports, review
from storage.models import Contact, ReviewDecision, Submission
from storage.periods import window
from storage.review import Changes, Content, FileRef

FLOW = "review"
PAGE_SIZE = 5  # reports per page: with the page buttons, within Telegram's 8 buttons we show
# The approved WhatsApp template a return notice travels in outside the 24-hour window
# (bot/channels/whatsapp/templates.py, docs/whatsapp.md): action, period, the note.
RETURNED_TEMPLATE = "laporham_dikembalikan"
REVISION_BUTTON = f"{STANDING}rev:"  # the focal point's "open for revision": "!rev:<id>.<version>"
EXTENSIONS = {"pdf": "pdf", "docx": "docx", "xlsx": "xlsx", "photo": "jpg"}
_UNSAFE_IN_NAME = re.compile(r"[^\w .()-]")


class Step(StrEnum):
    queue = "queue"
    decide = "decide"
    note = "note"


async def start(turn: Turn) -> None:
    contact = turn.contact
    if contact is None or contact.role not in review.REVIEWER_ROLES:
        turn.say("command.not_for_role", command="periksa")
        if turn.flow:
            turn.repeat_prompt()
        return
    await _show_queue(turn, page=0)


async def handle(turn: Turn) -> None:
    if turn.contact is None or turn.contact.role not in review.REVIEWER_ROLES:
        turn.leave_flow()  # a contact whose role changed mid-review
        turn.say("command.not_for_role", command="periksa")
        return
    step = Step.__members__.get(turn.step or "")
    if step is None:
        await _show_queue(turn, page=0)
        return
    await STEP_HANDLERS[step](turn)


# --- the queue ------------------------------------------------------------------------------


async def _show_queue(turn: Turn, page: int) -> None:
    contact = turn.contact
    assert contact is not None
    found = await review.queue(
        session=turn.session, contact=contact, page=page, page_size=PAGE_SIZE
    )
    if not found.entries:
        turn.leave_flow()
        turn.say("review.queue_empty")
        return
    timezone = await views.region_timezone(turn)
    lines = [turn.text("review.queue_header", total=found.total, page=found.page + 1,
                       pages=found.pages)]  # fmt: skip
    choices = []
    # Numbered per page, as the buttons are: a typed "2" picks the second line shown.
    for n, entry in enumerate(found.entries, start=1):
        lines.append(
            turn.text(
                "review.queue_line",
                n=n,
                region=entry.region_name,
                office=entry.office_name,
                action=f"{entry.action_code} {entry.action_title}",
                period=entry.period_title,
                version=entry.version,
                submitted=_when(turn, entry.submitted_at, timezone),
            )
            + (turn.text("review.queue_revised") if entry.version > 1 else "")
        )
        label = f"{entry.action_code} · {entry.office_name}"
        choices.append(Choice(f"o:{entry.submission_id}", label))
    if found.page > 0:
        choices.append(Choice(f"pg:{found.page - 1}", turn.text("button.review_prev")))
    if found.page + 1 < found.pages:
        choices.append(Choice(f"pg:{found.page + 1}", turn.text("button.review_next")))
    choices.append(Choice("close", turn.text("button.review_close")))
    turn.goto(FLOW, Step.queue, page=found.page, submission_id=None, version=None)
    turn.ask("\n".join(lines), choices)


async def _on_queue(turn: Turn) -> None:
    choice = _choice(turn)
    if choice is not None and choice.startswith("o:") and choice[2:].isdigit():
        await _open(turn, int(choice[2:]))
    elif choice is not None and choice.startswith("pg:") and choice[3:].isdigit():
        await _show_queue(turn, int(choice[3:]))
    elif choice == "close":
        turn.leave_flow()
        turn.say("review.closed")
    else:
        _not_understood(turn)


# --- one report -----------------------------------------------------------------------------


async def _open(turn: Turn, submission_id: int) -> None:
    """The report's answers and changes as text, its files into the chat, then the decision."""
    contact = turn.contact
    assert contact is not None
    submission = await review.reviewable(
        session=turn.session, contact=contact, submission_id=submission_id
    )
    if submission is None:
        turn.say("review.gone")
        await _show_queue(turn, int(turn.get("page", 0) or 0))
        return
    version = review.reviewed_version(submission)
    content = await review.content(session=turn.session, submission=submission, version=version)
    changes = await review.changes(
        session=turn.session, submission=submission, version=version, current=content
    )
    items = await reports.walk(
        session=turn.session, action_id=submission.action_id, period_id=submission.period_id
    )
    labels = {i.requirement.id or 0: i.requirement.label for i in items if i.requirement}
    turn.say_markup(await _header(turn, submission, version))
    turn.say_markup(_answers_text(turn, items, content, changes))
    if changes is not None:
        turn.say_markup(_changes_text(turn, items, changes, labels))
    _send_files(turn, content.files, labels)
    turn.goto(FLOW, Step.decide, submission_id=submission.id, version=version)
    _ask_decision(turn)


def _ask_decision(turn: Turn) -> None:
    turn.ask(
        turn.text("review.decide"),
        [
            Choice("approve", turn.text("button.review_approve")),
            Choice("return", turn.text("button.review_return")),
            Choice("list", turn.text("button.review_list")),
        ],
    )


async def _header(turn: Turn, submission: Submission, version: int) -> str:
    action = await reports.get_action(session=turn.session, action_id=submission.action_id)
    period = await reports.get_period(session=turn.session, period_id=submission.period_id)
    office = await reports.get_office(session=turn.session, office_id=submission.office_id)
    region = (
        await reports.get_region(session=turn.session, region_id=office.region_id)
        if office
        else None
    )
    sender = (
        await identities.get_contact(session=turn.session, contact_id=submission.submitted_by_id)
        if submission.submitted_by_id
        else None
    )
    timezone = await views.region_timezone(turn)
    return turn.text(
        "review.header",
        action=f"{action.code} {action.title}" if action else "",
        region=region.name if region else "",
        office=office.name if office else "",
        period=period.title if period else "",
        version=version,
        submitted=_when(turn, submission.submitted_at, timezone),
        sender=sender.name if sender else "-",
    )


def _answers_text(
    turn: Turn, items: list[reports.WalkItem], content: Content, changes: Changes | None
) -> str:
    changed = set(changes.answers) if changes else set()
    counts: dict[int, int] = {}
    for file in content.files:
        counts[file.requirement_id] = counts.get(file.requirement_id, 0) + 1
    lines: list[str] = []
    current_measure = None
    for item in items:
        if item.measure.id != current_measure:
            current_measure = item.measure.id
            lines.append(turn.text("summary.measure", title=item.measure.title))
        if item.question:
            value = content.answers.get(item.question.id or 0)
            shown = (
                display_value(item.question, value, turn.language)
                if value is not None
                else turn.text("summary.no_answer")
            )
            key = "review.answer_changed" if item.question.id in changed else "summary.answer"
            lines.append(turn.text(key, question=item.question.text, answer=shown))
        elif item.requirement:
            lines.append(
                turn.text(
                    "summary.evidence",
                    label=item.requirement.label,
                    count=counts.get(item.requirement.id or 0, 0),
                    min=item.requirement.min_count,
                )
            )
    return "\n".join(lines)


def _changes_text(
    turn: Turn, items: list[reports.WalkItem], changes: Changes, labels: dict[int, str]
) -> str:
    if changes.none:
        return turn.text("review.no_changes", previous=changes.previous_version)
    questions = {i.question.id: i.question.text for i in items if i.question}
    lines = [turn.text("review.changes_header", previous=changes.previous_version)]
    lines += [
        turn.text("review.change_answer", question=questions.get(qid, "?"))
        for qid in changes.answers
    ]
    for key, files in (("review.change_added", changes.added),
                       ("review.change_removed", changes.removed)):  # fmt: skip
        lines += [
            turn.text(key, name=_shown_name(turn, f), label=labels.get(f.requirement_id, ""))
            for f in files
        ]
    return "\n".join(lines)


def _send_files(turn: Turn, files: list[FileRef], labels: dict[int, str]) -> None:
    """Each file into the chat through the outbox: a photo as its thumbnail (a small JPEG
    re-encoded without any metadata: the original's EXIF and GPS never go back into a chat),
    a document as itself, under a name made from safe characters only."""
    if not files:
        return
    turn.say("review.files_follow", count=len(files))
    for n, file in enumerate(files, start=1):
        caption = turn.text(
            "review.file_caption",
            label=labels.get(file.requirement_id, ""),
            name=_shown_name(turn, file),
        )
        if file.kind == "photo":
            if file.thumbnail_key is None:  # never the original: say it is there instead
                turn.say_markup(caption)
                continue
            turn.send(
                OutFile(
                    storage_key=file.thumbnail_key,
                    filename=f"foto-{n}.jpg",
                    caption=caption,
                    as_photo=True,
                )
            )
        else:
            turn.send(
                OutFile(storage_key=file.storage_key, filename=_file_name(file, n), caption=caption)
            )


def _shown_name(turn: Turn, file: FileRef) -> str:
    return clean_name(file.name) or turn.text("report.unnamed_file")


def _file_name(file: FileRef, n: int) -> str:
    """The name a document is sent under: the client's name is hostile, so only plain
    characters of it, and the extension of what the bytes are."""
    stem = (clean_name(file.name) or "").rsplit(".", 1)[0]
    stem = _UNSAFE_IN_NAME.sub("_", stem).strip(" ._")[:60] or f"berkas-{n}"
    return f"{stem}.{EXTENSIONS.get(file.kind, 'bin')}"


def _when(turn: Turn, moment: datetime | None, timezone: str) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{views.long_date(turn, local.date())} {local:%H.%M}"


# --- deciding -------------------------------------------------------------------------------


async def _on_decide(turn: Turn) -> None:
    choice = _choice(turn)
    if choice == "approve":
        await _decide(turn, ReviewDecision.approved, note=None)
    elif choice == "return":
        submission = await _shown_submission(turn)
        if submission is None:
            return
        if not await _period_open_for(turn, submission):
            _ask_decision(turn)
            return
        turn.goto(FLOW, Step.note)
        turn.ask(
            turn.text("review.ask_note", max=review.NOTE_MAX),
            [Choice("cancel", turn.text("button.review_note_cancel"))],
            free_text=True,
        )
    elif choice == "list":
        await _show_queue(turn, int(turn.get("page", 0) or 0))
    else:
        _not_understood(turn)


async def _on_note(turn: Turn) -> None:
    event = turn.event
    if _choice(turn) == "cancel":
        turn.goto(FLOW, Step.decide)
        _ask_decision(turn)
        return
    if not isinstance(event, TextReceived):
        turn.say("review.note_expected")
        turn.repeat_prompt()
        return
    note = event.text.strip()
    if not note:
        turn.say("review.note_empty")
        turn.repeat_prompt()
    elif len(note) > review.NOTE_MAX:
        turn.say("review.note_too_long", length=len(note), max=review.NOTE_MAX)
        turn.repeat_prompt()
    else:
        await _decide(turn, ReviewDecision.returned, note=note)


async def _shown_submission(turn: Turn, *, lock: bool = False) -> Submission | None:
    """The report opened in this conversation, if it still waits for review in the reviewer's
    scope at the version that was shown; otherwise says so and shows the queue again."""
    contact = turn.contact
    assert contact is not None
    submission = await review.reviewable(
        session=turn.session,
        contact=contact,
        submission_id=int(turn.get("submission_id") or 0),
        lock=lock,
    )
    if submission is None or review.reviewed_version(submission) != turn.get("version"):
        turn.say("review.changed")
        await _show_queue(turn, int(turn.get("page", 0) or 0))
        return None
    return submission


async def _period_open_for(turn: Turn, submission: Submission) -> bool:
    """A return only helps while the focal point can still revise: the period's window, in the
    report's own region's time zone."""
    period = await reports.get_period(session=turn.session, period_id=submission.period_id)
    office = await reports.get_office(session=turn.session, office_id=submission.office_id)
    region = (
        await reports.get_region(session=turn.session, region_id=office.region_id)
        if office
        else None
    )
    if period is None or region is None:
        return False
    if (
        period.opens_on
        and period.due_on
        and window(period.opens_on, period.due_on, region.timezone).is_open(turn.now)
    ):
        return True
    turn.say("review.return_closed", period=period.title, region=region.name)
    return False


async def _decide(turn: Turn, decision: ReviewDecision, *, note: str | None) -> None:
    reviewer = turn.contact
    assert reviewer is not None
    submission = await _shown_submission(turn, lock=True)
    if submission is None:
        return
    if decision is ReviewDecision.returned and not await _period_open_for(turn, submission):
        turn.goto(FLOW, Step.decide)
        _ask_decision(turn)
        return
    version = await review.decide(
        session=turn.session,
        submission=submission,
        reviewer=reviewer,
        decision=decision,
        note=note,
        now=turn.now,
    )
    action = await reports.get_action(session=turn.session, action_id=submission.action_id)
    office = await reports.get_office(session=turn.session, office_id=submission.office_id)
    told = await _tell_focal_points(turn, submission, decision, note)
    values = {
        "action": action.title if action else "",
        "office": office.name if office else "",
        "version": version,
        "count": told,
    }
    if decision is ReviewDecision.approved:
        turn.say("review.approved", **values)
    else:
        turn.say("review.returned" if told else "review.returned_nobody", **values)
    await _show_queue(turn, int(turn.get("page", 0) or 0))


async def _tell_focal_points(
    turn: Turn, submission: Submission, decision: ReviewDecision, note: str | None
) -> int:
    """The decision reaches the office's focal points at once, in their own chats and
    languages, through the outbox (written in this transaction). A return carries the note
    and a standing button that opens the report for revision; it is good for this version
    only. Returns how many people were told."""
    reviewer = turn.contact
    assert reviewer is not None
    action = await reports.get_action(session=turn.session, action_id=submission.action_id)
    period = await reports.get_period(session=turn.session, period_id=submission.period_id)
    people = await review.office_focal_points(session=turn.session, office_id=submission.office_id)
    event = turn.event
    for contact, identity in people:
        titles = (action.title if action else "", period.title if period else "")
        message = _notice(contact, reviewer, decision, note, submission, *titles)
        outbox.enqueue(
            session=turn.session,
            idempotency_key=f"{event.channel}:{event.message_id}:review:{identity.id}",
            channel=identity.channel,
            recipient=identity.external_id,
            contact_id=contact.id,
            payload=outgoing_to_payload(message),
        )
    return len({contact.id for contact, _ in people})


def _notice(
    contact: Contact,
    reviewer: Contact,
    decision: ReviewDecision,
    note: str | None,
    submission: Submission,
    action: str,
    period: str,
) -> OutText:
    language = contact.language
    values = {
        "action": action,
        "period": period,
        "reviewer": reviewer.name,
        "role": t(language, f"role.{reviewer.role.value}"),
    }
    if decision is ReviewDecision.approved:
        return OutText(text=t(language, "review.approved_notice", **values))
    button = Choice(
        f"{REVISION_BUTTON}{submission.id}.{submission.version}", t(language, "button.reopen")
    )
    return OutText(
        text=t(language, "review.returned_notice", note=note or "-", **values),
        choices=(button,),
        choose_label=t(language, "button.choose"),
        template=RETURNED_TEMPLATE,
        template_params=(action, period, note or "-"),
    )


def revision_ref(choice_id: str) -> tuple[int, int] | None:
    """(submission id, version) of a standing "open for revision" button; None if malformed."""
    if not choice_id.startswith(REVISION_BUTTON):
        return None
    submission_id, _, version = choice_id.removeprefix(REVISION_BUTTON).partition(".")
    if not submission_id.isdigit() or not version.isdigit():
        return None
    return int(submission_id), int(version)


# --- helpers --------------------------------------------------------------------------------


def _choice(turn: Turn) -> str | None:
    """The id of an offered choice the user picked; stale or forged ids count as nothing."""
    event = turn.event
    if isinstance(event, ChoiceMade) and event.choice_id in turn.offered:
        return event.choice_id
    return None


def _not_understood(turn: Turn) -> None:
    event = turn.event
    if isinstance(event, ChoiceMade):
        turn.say("choice.stale")
    elif isinstance(event, TextReceived) and event.text.strip().isdigit() and turn.offered:
        turn.say("choice.out_of_range", count=len(turn.offered))
    else:
        turn.say("choice.not_understood")
    turn.repeat_prompt()


STEP_HANDLERS: dict[Step, Callable[[Turn], Awaitable[None]]] = {
    Step.queue: _on_queue,
    Step.decide: _on_decide,
    Step.note: _on_note,
}
