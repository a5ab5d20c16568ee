"""/lapor: a focal point reports one action of the open period, measure by measure.

```mermaid
stateDiagram-v2
    [*] --> ChoosePeriod: /lapor (skipped when only one period is open)
    ChoosePeriod --> ChooseAction
    ChooseAction --> ConfirmReopen: report submitted, no revision open
    ConfirmReopen --> Answer: yes (the submitted version still counts until the revision is sent)
    ChooseAction --> Answer: revision open: resume it
    ChooseAction --> Answer: draft or returned: resume at the first missing item
    ChooseAction --> ConfirmReopen: approved: revising it sends it back to review
    ChooseAction --> Summary: nothing missing
    [*] --> Answer: "open for revision" on a reviewer's return notice (own office, that version)
    Answer --> Answer: valid answer -> next question (bad input: explained, asked again)
    Answer --> Answer: a date far from the programme's year: "yakin?" first (yes saves it)
    Answer --> Evidence: questions of the measure done
    Evidence --> Evidence: file accepted / already there (counted once) / refused with the reason
    Evidence --> Evidence: /hapus or the receipt's button: a file taken back (audited)
    Evidence --> Answer: /selesai -> next measure
    Evidence --> Summary: /selesai on the last requirement
    Answer --> Answer: /kembali (one step back)
    Summary --> Answer: complete it / change answers
    Summary --> Summary: a file: for the missing requirement it fits (asked when several fit)
    Summary --> Summary: /hapus or the button: a file taken back
    Summary --> ConfirmSubmit: submit (only when complete)
    ConfirmSubmit --> [*]: yes -> submitted
    Summary --> [*]: later (draft kept)
    Answer --> [*]: the period closed meanwhile: said (with the deadline and whom to contact)
```
Every step keeps what was given in the database at once, so /batal, a lost connection or a
restart never loses an answer; /lapor resumes at the first thing still missing. Once the
period's deadline passes, the next message of an open report (any step after choosing) ends the
flow and says so; /lapor then names the closed period.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from enum import StrEnum

from bot.engine.events import (
    Choice,
    ChoiceMade,
    CommandReceived,
    FileReceived,
    TextReceived,
)
from bot.engine.texts import human_size
from bot.engine.turn import Turn
from handlers import report_views as views
from handlers.answers import Invalid, parse_answer
from storage import reports
from storage.evidence import StoredEvidence
from storage.models import (
    Action,
    EvidenceFile,
    Period,
    QuestionKind,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.periods import window
from storage.reports import Completeness, WalkItem

FLOW = "report"
FlowAction = Callable[[Turn], Awaitable[None]]


class Step(StrEnum):
    choose_period = "choose_period"
    choose_action = "choose_action"
    confirm_reopen = "confirm_reopen"
    answer = "answer"
    evidence = "evidence"
    summary = "summary"
    confirm_submit = "confirm_submit"


def wants_file(step: str | None) -> bool:
    # The summary takes a file too: for the requirement it is missing (or the one picked).
    return step in {Step.evidence, Step.summary}


# --- entry ----------------------------------------------------------------------------------


async def start(turn: Turn) -> None:
    contact = turn.contact
    if contact is None or contact.role is not Role.focal_point or contact.office_id is None:
        turn.say("report.focal_point_only")
        return
    region = await reports.get_region(session=turn.session, region_id=contact.region_id or 0)
    timezone = region.timezone if region else "Asia/Jakarta"
    periods = await reports.open_periods_for_office(
        session=turn.session, office_id=contact.office_id, timezone=timezone, now=turn.now
    )
    if not periods:
        turn.leave_flow()
        await _say_no_open_period(turn, contact.office_id, timezone)
        return
    if len(periods) == 1:
        await _choose_action(turn, periods[0][1])
        return
    turn.goto(FLOW, Step.choose_period)
    turn.ask(
        turn.text("report.choose_period"),
        [
            Choice(f"p:{period.id}", f"{programme.title} — {period.title}")
            for programme, period in periods
        ],
    )


async def _say_no_open_period(turn: Turn, office_id: int, timezone: str) -> None:
    """No period is open: name the one that closed last, with what to do about it."""
    closed = await reports.last_closed_period_for_office(
        session=turn.session, office_id=office_id, timezone=timezone, now=turn.now
    )
    if closed is None:
        turn.say("report.no_open_period")
        return
    deadline = await views.deadline_text(turn, closed)
    turn.say("report.closed_at_start", period=closed.title, deadline=deadline)


async def handle(turn: Turn) -> None:
    step = Step.__members__.get(turn.step or "")
    if step is None:
        await start(turn)
        return
    if step in AFTER_CHOOSING:
        # The deadline may have passed since the last message: collect nothing more then.
        period = await _period(turn)
        if period is not None and not await _period_open(turn, period):
            return
    await STEP_HANDLERS[step](turn)


# --- choosing -------------------------------------------------------------------------------


async def _on_choose_period(turn: Turn) -> None:
    period_id = _chosen_id(turn, "p:")
    if period_id is None:
        _not_understood(turn)
        return
    period = await reports.get_period(session=turn.session, period_id=period_id)
    if period is None:
        _not_understood(turn)
        return
    await _choose_action(turn, period)


async def _choose_action(turn: Turn, period: Period) -> None:
    office_id = turn.contact.office_id if turn.contact else None
    rows = await reports.office_actions_for_period(
        session=turn.session, office_id=office_id or 0, period=period
    )
    if not rows:
        turn.leave_flow()
        turn.say("report.no_actions", period=period.title)
        return
    turn.goto(FLOW, Step.choose_action, period_id=period.id)
    deadline = await views.deadline_text(turn, period)
    turn.ask(
        turn.text("report.choose_action", period=period.title) + "\n" + deadline,
        [
            Choice(f"a:{action.id}", f"{action.title} — {_state_label(turn, sub)}")
            for action, sub in rows
        ],
    )


def _state_label(turn: Turn, submission: Submission | None) -> str:
    return turn.text(views.state_key(submission))


async def _on_choose_action(turn: Turn) -> None:
    office_id = turn.contact.office_id if turn.contact else None
    action = await _own_action(turn, office_id)
    if action is None or office_id is None:
        _not_understood(turn)
        return
    period = await _period(turn)
    if period is None or not await _period_open(turn, period):
        return
    submission, created = await reports.get_or_create_submission(
        session=turn.session,
        action_id=action.id or 0,
        office_id=office_id,
        period_id=period.id or 0,
    )
    if created:
        views.progress(turn, submission).created()
    turn.goto(FLOW, Step.choose_action, submission_id=submission.id)
    await _open_submission(turn, submission)


async def _own_action(turn: Turn, office_id: int | None) -> Action | None:
    """The chosen action. Hostile ids: only an action assigned to the user's own office."""
    action_id = _chosen_id(turn, "a:")
    if action_id is None or office_id is None:
        return None
    return await reports.assigned_action(
        session=turn.session, office_id=office_id, action_id=action_id
    )


async def _open_submission(turn: Turn, submission: Submission) -> None:
    action = await reports.get_action(session=turn.session, action_id=submission.action_id)
    title = action.title if action else ""
    counted = {SubmissionStatus.submitted, SubmissionStatus.approved}
    if submission.status in counted and not submission.revision_open:
        # An approved report may be revised too: its resubmission goes back to review.
        approved = submission.status is SubmissionStatus.approved
        turn.goto(FLOW, Step.confirm_reopen)
        turn.ask(
            turn.text(
                "report.already_approved" if approved else "report.already_submitted",
                action=title,
                version=submission.version,
            ),
            [
                Choice("reopen", turn.text("button.reopen")),
                Choice("view", turn.text("button.view")),
                Choice("later", turn.text("button.later")),
            ],
        )
        return
    if submission.status is SubmissionStatus.returned:
        note = await reports.latest_return_note(
            session=turn.session, submission_id=submission.id or 0
        )
        turn.say("report.returned_note", action=title, note=note or "-")
    items = await _items(turn, submission)
    progress = views.progress(turn, submission)
    answers = await progress.answers()
    check = await progress.check(items)
    if submission.revision_open:
        turn.say("report.revision_resuming", action=title, version=submission.version)
    elif answers or check.complete:
        turn.say("report.resuming", action=title)
    else:
        turn.say("report.starting", action=title, count=len({i.measure.id for i in items}))
    first = check.first_missing_key()
    if first is None:
        await _show_summary(turn, submission)
    else:
        await _go_to_item(turn, submission, items, first)


async def open_for_revision(turn: Turn, submission_id: int, version: int) -> None:
    """The standing button of a reviewer's return notice: the returned report, opened where
    its revision stands. Only the focal point's own office's report, and only while it is
    still returned at that version (a resubmitted or newer return makes the button stale)."""
    contact = turn.contact
    submission = await reports.get_submission(session=turn.session, submission_id=submission_id)
    if (
        contact is None
        or contact.role is not Role.focal_point
        or submission is None
        or submission.office_id != contact.office_id
        or submission.status is not SubmissionStatus.returned
        or submission.version != version
    ):
        turn.say("choice.stale_idle")
        if turn.flow:
            turn.repeat_prompt()
        return
    turn.leave_flow()  # whatever the user was doing: nothing of it carries into this report
    turn.goto(FLOW, Step.choose_action, period_id=submission.period_id, submission_id=submission.id)
    period = await _period(turn)
    if period is None or not await _period_open(turn, period):
        return
    await _open_submission(turn, submission)


async def _on_confirm_reopen(turn: Turn) -> None:
    submission = await _submission(turn)
    choice = _choice(turn)
    if submission is None:
        await start(turn)
        return
    if choice == "reopen" and submission.revision_open:  # a second tap: already reopened
        await _open_submission(turn, submission)
    elif choice == "reopen":
        period = await _period(turn)
        if period is None or not await _period_open(turn, period):
            return
        await reports.reopen(
            session=turn.session, submission=submission, contact_id=_contact_id(turn), now=turn.now
        )
        turn.say("report.reopened", version=submission.version)
        items = await _items(turn, submission)
        await _go_to_item(turn, submission, items, items[0].key)
    elif choice == "view":
        await _show_summary(turn, submission, read_only=True)
    elif choice == "later":
        turn.leave_flow()
        turn.say("report.later")
    else:
        _not_understood(turn)


# --- walking the items ----------------------------------------------------------------------


async def _go_to_item(turn: Turn, submission: Submission, items: list[WalkItem], key: str) -> None:
    item = next((i for i in items if i.key == key), None)
    if item is None:
        await _show_summary(turn, submission)
        return
    step = Step.answer if item.question else Step.evidence
    turn.goto(FLOW, step, item=key, submission_id=submission.id)
    await views.ask_item(turn, submission, items, item)


async def _next_item(turn: Turn, submission: Submission, items: list[WalkItem], key: str) -> None:
    keys = [item.key for item in items]
    index = keys.index(key) if key in keys else len(keys) - 1
    if index + 1 < len(keys):
        await _go_to_item(turn, submission, items, keys[index + 1])
    else:
        await _show_summary(turn, submission)


async def _on_answer(turn: Turn) -> None:
    submission, items, item = await _current(turn)
    if submission is None or item is None or item.question is None:
        await start(turn)
        return
    event, question = turn.event, item.question
    choice = _choice(turn)
    pending = turn.get("pending_date")
    if pending:  # whatever comes now settles the "yakin?" of a far date
        turn.goto(FLOW, Step.answer, pending_date=None)
    if pending and choice == "date_ok":
        await _save_and_next(turn, submission, items, item, pending)
        return
    if pending and choice == "date_change":
        await _go_to_item(turn, submission, items, item.key)
        return
    if choice == "keep" or (choice == "skip" and not question.required):
        await _next_item(turn, submission, items, item.key)
        return
    if isinstance(event, ChoiceMade) and choice is not None:
        raw = _choice_to_text(question.kind, choice, question.choices or [])
    elif isinstance(event, TextReceived):
        raw = event.text
    elif isinstance(event, FileReceived):
        turn.say("report.file_while_question")
        turn.repeat_prompt()
        return
    else:
        _not_understood(turn)
        return
    if raw is None:
        _not_understood(turn)
        return
    parsed = parse_answer(question, raw, turn.language)
    if isinstance(parsed, Invalid):
        turn.say(parsed.key, **parsed.values)
        turn.repeat_prompt()
        return
    if question.kind is QuestionKind.date and await _confirm_far_date(turn, submission, parsed):
        return
    await _save_and_next(turn, submission, items, item, parsed)


async def _confirm_far_date(turn: Turn, submission: Submission, iso: str) -> bool:
    """Ask "yakin?" for a date far from the programme's year (a typo of the year, most often);
    True when asked. Dates from the programme's year to the period's deadline are plausible."""
    period = await reports.get_period(session=turn.session, period_id=submission.period_id)
    programme = (
        await reports.get_programme(session=turn.session, programme_id=period.programme_id)
        if period
        else None
    )
    if period is None or programme is None:
        return False
    day = date.fromisoformat(iso)
    latest = max(date(programme.year, 12, 31), period.due_on or date.min)
    if date(programme.year, 1, 1) <= day <= latest:
        return False
    turn.goto(FLOW, Step.answer, pending_date=iso)
    turn.ask(
        turn.text("answer.date_far", date=views.long_date(turn, day), year=programme.year),
        [
            Choice("date_ok", turn.text("button.date_ok")),
            Choice("date_change", turn.text("button.date_change")),
        ],
    )
    return True


async def _save_and_next(
    turn: Turn, submission: Submission, items: list[WalkItem], item: WalkItem, value: str
) -> None:
    question = item.question
    assert question is not None
    await reports.save_answer(
        session=turn.session,
        submission=submission,
        question_id=question.id or 0,
        value=value,
        contact_id=_contact_id(turn),
        now=turn.now,
        # The next question shows its current answer: read them all once, now.
        answers=await views.progress(turn, submission).answers(),
    )
    await _next_item(turn, submission, items, item.key)


def _choice_to_text(kind: QuestionKind, choice: str, options: list[str]) -> str | None:
    if kind is QuestionKind.yes_no and choice in {"yes", "no"}:
        return "ya" if choice == "yes" else "tidak"
    if kind is QuestionKind.choice and choice.startswith("c:") and choice[2:].isdigit():
        index = int(choice[2:])
        return options[index] if index < len(options) else None
    return None


async def _on_evidence(turn: Turn) -> None:
    submission, _, item = await _current(turn)
    if submission is None or item is None or item.requirement is None:
        await start(turn)
        return
    event, choice = turn.event, _choice(turn)
    if choice == "done":
        await done(turn)
    elif choice is not None and choice.startswith("rm:"):
        await _on_remove_choice(turn, submission, choice)
    elif isinstance(event, FileReceived):
        await _receive_file(turn, submission, item, event)
    elif isinstance(event, TextReceived):
        accepted = views.accepted_text(turn, item.requirement.kinds)
        turn.say("report.text_while_evidence", label=item.requirement.label, accepted=accepted)
    else:
        _not_understood(turn)


async def _receive_file(
    turn: Turn, submission: Submission, item: WalkItem, event: FileReceived
) -> None:
    requirement = item.requirement
    assert requirement is not None
    stored = _stored_file(turn, event)
    if stored is None:
        return
    if stored.detected.kind.value not in requirement.kinds:
        turn.say(
            "evidence.wrong_kind",
            name=_file_name(turn, event),
            label=requirement.label,
            accepted=views.kinds_label(turn, requirement.kinds),
        )
        return
    row = await _evidence_row(turn, submission, stored, event)
    receipt, file_id = await _attach(turn, submission, item, row)
    if file_id is None:
        turn.say_markup(receipt)
        return
    # The receipt carries its own undo: a wrong file is taken back with one tap.
    turn.ask(
        receipt,
        [
            Choice(f"rm:{file_id}", turn.text("button.remove_file")),
            Choice("done", turn.text("button.done")),
        ],
    )


def _file_name(turn: Turn, event: FileReceived) -> str:
    return event.claimed_name or turn.text("report.unnamed_file")


def _stored_file(turn: Turn, event: FileReceived) -> StoredEvidence | None:
    """The file as downloaded and checked; None (the reason said) when it was refused."""
    prepared = turn.prepared_file
    if prepared is None or prepared.stored is None:
        reason = prepared.rejection if prepared else "fetch_failed"
        turn.say(
            f"evidence.rejected.{reason}",
            name=_file_name(turn, event),
            max_mb=turn.max_upload_bytes // (1024 * 1024),
        )
        return None
    return prepared.stored


async def _evidence_row(
    turn: Turn, submission: Submission, stored: StoredEvidence, event: FileReceived
) -> EvidenceFile:
    """The file's row, not yet attached to a requirement (requirement_id 0)."""
    region = (
        await reports.get_region(session=turn.session, region_id=turn.contact.region_id or 0)
        if turn.contact
        else None
    )
    return EvidenceFile(
        submission_id=submission.id or 0,
        requirement_id=0,
        sha256=stored.sha256,
        original_name=(event.claimed_name or "")[:255] or None,
        claimed_mime=(event.claimed_mime or "")[:120] or None,
        detected_mime=stored.detected.mime,
        kind=stored.detected.kind.value,
        size=stored.size,
        storage_key=stored.storage_key,
        display_key=stored.display_key,
        thumbnail_key=stored.thumbnail_key,
        width=stored.width,
        height=stored.height,
        taken_at=views.local_to_utc(stored.taken_at_local, region.timezone if region else None),
        gps_lat=stored.gps_lat,
        gps_lon=stored.gps_lon,
        channel=event.channel,
        channel_file_id=event.file_ref[:255],
        uploaded_by_id=_contact_id(turn),
        received_at=turn.now,
    )


async def _attach(
    turn: Turn, submission: Submission, item: WalkItem, row: EvidenceFile
) -> tuple[str, int | None]:
    """Attach the file to the item's requirement: the receipt, and the new file's id, or None
    when the same bytes are there already (a resend counts once)."""
    requirement = item.requirement
    assert requirement is not None
    name = row.original_name or turn.text("report.unnamed_file")
    progress = views.progress(turn, submission)
    already = await reports.attached_file(
        session=turn.session,
        submission_id=submission.id or 0,
        requirement_id=requirement.id or 0,
        sha256=row.sha256,
    )
    if already is None:
        row.requirement_id = requirement.id or 0
        await reports.add_evidence(session=turn.session, submission=submission, file=row)
        progress.files_changed()
    counts = await progress.counts()
    receipt = turn.text(
        "evidence.duplicate" if already else "evidence.accepted",
        name=name,
        size=human_size(row.size),
        label=requirement.label,
        count=counts[requirement.id or 0],
    )
    return receipt, None if already else row.id


# --- taking a file back ---------------------------------------------------------------------


async def remove(turn: Turn) -> None:
    """/hapus [n]: take a file off the report: the current requirement's files at an evidence
    step, all of them at the summary. With a number, that file of the list at once."""
    if turn.flow != FLOW or turn.step not in {Step.evidence, Step.summary}:
        turn.say("evidence.remove_none")
        if turn.flow:
            turn.repeat_prompt()
        return
    submission, _, item = await _current(turn)
    if submission is None:
        await start(turn)
        return
    files = await reports.evidence_files(session=turn.session, submission_id=submission.id or 0)
    if turn.step == Step.evidence and item is not None and item.requirement is not None:
        files = [f for f in files if f.requirement_id == item.requirement.id]
    event = turn.event
    args = event.args.strip() if isinstance(event, CommandReceived) else ""
    if args.isdigit() and 1 <= int(args) <= len(files):
        await _remove_file(turn, submission, files[int(args) - 1].id or 0)
        return
    if not files:
        turn.say("evidence.remove_none")
        turn.repeat_prompt()
        return
    turn.ask(
        turn.text("evidence.remove_which"),
        [
            Choice(f"rm:{f.id}", f"{(f.original_name or f.kind)[:40]} ({human_size(f.size)})")
            for f in files
        ]
        + [Choice("rm:none", turn.text("button.remove_cancel"))],
    )


async def _on_remove_choice(turn: Turn, submission: Submission, choice: str) -> None:
    if choice[3:].isdigit():
        await _remove_file(turn, submission, int(choice[3:]))
    else:
        await _ask_again(turn)


async def _remove_file(turn: Turn, submission: Submission, file_id: int) -> None:
    removed = await reports.remove_evidence(
        session=turn.session,
        submission=submission,
        file_id=file_id,
        contact_id=_contact_id(turn),
        now=turn.now,
    )
    if removed is None:
        turn.say("evidence.remove_gone")
    else:
        progress = views.progress(turn, submission)
        progress.files_changed()
        counts = await progress.counts()
        items = await _items(turn, submission)
        label = next(
            (
                i.requirement.label
                for i in items
                if i.requirement and i.key == f"e{removed.requirement_id}"
            ),
            "",
        )
        turn.say(
            "evidence.removed",
            name=removed.original_name or removed.kind,
            label=label,
            count=counts[removed.requirement_id],
        )
    await _ask_again(turn)


async def _ask_again(turn: Turn) -> None:
    """Back to where the user was: the requirement's prompt, or the summary."""
    submission, items, item = await _current(turn)
    if submission is not None and turn.step == Step.evidence and item is not None:
        await views.ask_item(turn, submission, items, item)
    elif submission is not None:
        await _show_summary(turn, submission)
    else:
        await start(turn)


async def done(turn: Turn) -> None:
    """/selesai: finish the current evidence requirement and move on."""
    if turn.flow != FLOW or turn.step != Step.evidence:
        turn.say("report.done_nothing")
        if turn.flow:
            turn.repeat_prompt()
        return
    submission, items, item = await _current(turn)
    if submission is None or item is None or item.requirement is None:
        await start(turn)
        return
    counts = await views.progress(turn, submission).counts()
    short = item.requirement.min_count - counts[item.requirement.id or 0]
    if short > 0:
        turn.say("evidence.still_missing", label=item.requirement.label, count=short)
    await _next_item(turn, submission, items, item.key)


async def back(turn: Turn) -> None:
    """/kembali: one step back."""
    if turn.step in {Step.answer, Step.evidence, Step.summary, Step.confirm_submit}:
        submission, items, item = await _current(turn)
        if submission is None or not items:
            await start(turn)
            return
        keys = [i.key for i in items]
        if turn.step in {Step.summary, Step.confirm_submit}:
            await _go_to_item(turn, submission, items, keys[-1])
            return
        index = keys.index(item.key) if item else 0
        if index > 0:
            await _go_to_item(turn, submission, items, keys[index - 1])
            return
    period = await _period(turn)
    if period is not None and turn.step != Step.choose_action:
        await _choose_action(turn, period)
    else:
        await start(turn)


# --- summary and submit ---------------------------------------------------------------------


async def _show_summary(turn: Turn, submission: Submission, *, read_only: bool = False) -> None:
    items = await _items(turn, submission)
    check = await views.progress(turn, submission).check(items)
    turn.say_markup(await views.summary_text(turn, submission, items))
    if read_only:
        turn.leave_flow()
        return
    turn.goto(FLOW, Step.summary, submission_id=submission.id, item=None, pending_files=[])
    has_files = sum((await views.progress(turn, submission).counts()).values()) > 0
    remove = [Choice("remove", turn.text("button.remove"))] if has_files else []
    if check.complete:
        turn.ask(
            turn.text("report.summary_complete"),
            [
                Choice("submit", turn.text("button.submit")),
                Choice("edit", turn.text("button.edit")),
                *remove,
                Choice("later", turn.text("button.later")),
            ],
        )
    else:
        turn.ask(
            views.missing_text(turn, check),
            [
                Choice("fix", turn.text("button.fix")),
                *remove,
                Choice("later", turn.text("button.later")),
            ],
        )


async def _on_summary(turn: Turn) -> None:
    submission = await _submission(turn)
    if submission is None:
        await start(turn)
        return
    choice = _choice(turn)
    items = await _items(turn, submission)
    check = await views.progress(turn, submission).check(items)
    if choice == "submit" and check.complete:
        period = await _period(turn)
        turn.goto(FLOW, Step.confirm_submit)
        deadline = await views.deadline_text(turn, period) if period else ""
        turn.ask(
            turn.text("report.confirm_submit") + "\n" + deadline,
            [
                Choice("yes", turn.text("button.yes_submit")),
                Choice("no", turn.text("button.not_yet")),
            ],
        )
    elif choice == "fix" and check.first_missing_key():
        await _go_to_item(turn, submission, items, check.first_missing_key() or "")
    elif choice == "edit" and items:
        await _go_to_item(turn, submission, items, items[0].key)
    elif choice == "later":
        turn.leave_flow()
        turn.say("report.later")
    else:
        await _on_summary_evidence(turn, submission, items, check)


async def _on_summary_evidence(
    turn: Turn, submission: Submission, items: list[WalkItem], check: Completeness
) -> None:
    """At the summary: a file sent for what is missing, which one it is for, or a removal."""
    choice, event = _choice(turn), turn.event
    if choice == "remove":
        await remove(turn)
    elif choice is not None and choice.startswith("rm:"):
        await _on_remove_choice(turn, submission, choice)
    elif choice is not None and choice.startswith("for:"):
        await _attach_pending(turn, submission, items, choice[4:])
    elif isinstance(event, FileReceived):
        await _file_at_summary(turn, submission, items, check, event)
    else:
        _not_understood(turn)


async def _file_at_summary(
    turn: Turn,
    submission: Submission,
    items: list[WalkItem],
    check: Completeness,
    event: FileReceived,
) -> None:
    """Take the file for the missing requirement it fits; ask when several fit."""
    stored = _stored_file(turn, event)
    if stored is None:
        turn.repeat_prompt()
        return
    pool = [item for item, _ in check.missing_evidence] or [i for i in items if i.requirement]
    kind = stored.detected.kind.value
    fits = [i for i in pool if i.requirement and kind in i.requirement.kinds]
    row = await _evidence_row(turn, submission, stored, event)
    if len(fits) == 1:
        receipt, _ = await _attach(turn, submission, fits[0], row)
        turn.say_markup(receipt)
        await _show_summary(turn, submission)
    elif not fits:
        kinds = [k for i in pool if i.requirement for k in i.requirement.kinds]
        accepted = views.kinds_label(turn, list(dict.fromkeys(kinds)))
        turn.say("evidence.not_needed", name=_file_name(turn, event), accepted=accepted)
        turn.repeat_prompt()
    else:
        # Kept in the state until the user says which requirement: no second upload.
        pending = [*turn.get("pending_files", []), row.model_dump(mode="json", exclude={"id"})]
        turn.goto(FLOW, Step.summary, pending_files=pending)
        turn.ask(
            turn.text("evidence.which_requirement", name=_file_name(turn, event)),
            [Choice(f"for:{i.requirement.id}", i.requirement.label) for i in fits if i.requirement]
            + [Choice("later", turn.text("button.later"))],
        )


async def _attach_pending(
    turn: Turn, submission: Submission, items: list[WalkItem], requirement_id: str
) -> None:
    item = next((i for i in items if i.key == f"e{requirement_id}"), None)
    if item is None or item.requirement is None:
        _not_understood(turn)
        return
    for data in turn.get("pending_files", []):
        row = EvidenceFile.model_validate(data)
        if row.kind in item.requirement.kinds:
            receipt, _ = await _attach(turn, submission, item, row)
            turn.say_markup(receipt)
        else:  # an earlier file of the same wait that this requirement does not take
            turn.say(
                "evidence.wrong_kind",
                name=row.original_name or turn.text("report.unnamed_file"),
                label=item.requirement.label,
                accepted=views.kinds_label(turn, item.requirement.kinds),
            )
    await _show_summary(turn, submission)


async def _on_confirm_submit(turn: Turn) -> None:
    submission = await _submission(turn)
    if submission is None:
        await start(turn)
        return
    choice = _choice(turn)
    if choice == "no":
        await _show_summary(turn, submission)
        return
    if choice != "yes":
        _not_understood(turn)
        return
    period = await _period(turn)
    if period is None or not await _period_open(turn, period):
        return
    items = await _items(turn, submission)
    check = await views.progress(turn, submission).check(items)
    if not check.complete:  # something changed since the summary (another device, a reviewer)
        await _show_summary(turn, submission)
        return
    await reports.submit(
        session=turn.session, submission=submission, contact_id=_contact_id(turn), now=turn.now
    )
    action = await reports.get_action(session=turn.session, action_id=submission.action_id)
    turn.leave_flow()
    turn.say(
        "report.submitted",
        action=action.title if action else "",
        period=period.title,
        version=submission.version,
    )


# --- helpers --------------------------------------------------------------------------------


def _choice(turn: Turn) -> str | None:
    """The id of an offered choice the user picked; stale or forged ids count as nothing."""
    event = turn.event
    if isinstance(event, ChoiceMade) and event.choice_id in turn.offered:
        return event.choice_id
    if isinstance(event, CommandReceived) and event.name == "selesai":
        return "done"
    return None


def _chosen_id(turn: Turn, prefix: str) -> int | None:
    choice = _choice(turn)
    if choice is None or not choice.startswith(prefix) or not choice[len(prefix) :].isdigit():
        return None
    return int(choice[len(prefix) :])


def _not_understood(turn: Turn) -> None:
    event = turn.event
    if isinstance(event, ChoiceMade):
        turn.say("choice.stale")
    elif isinstance(event, FileReceived):
        turn.say("report.file_not_expected")
    elif isinstance(event, TextReceived) and event.text.strip().isdigit() and turn.offered:
        turn.say("choice.out_of_range", count=len(turn.offered))
    else:
        turn.say("choice.not_understood")
    turn.repeat_prompt()


def _contact_id(turn: Turn) -> int | None:
    return turn.contact.id if turn.contact else None


async def _submission(turn: Turn) -> Submission | None:
    submission_id = turn.get("submission_id")
    if not submission_id:
        return None
    submission = await reports.get_submission(
        session=turn.session, submission_id=int(submission_id)
    )
    # The state is ours, but a contact may have moved office since: check scope again.
    if submission is None or turn.contact is None or submission.office_id != turn.contact.office_id:
        return None
    return submission


async def _period(turn: Turn) -> Period | None:
    period_id = turn.get("period_id")
    return (
        await reports.get_period(session=turn.session, period_id=int(period_id))
        if period_id
        else None
    )


async def _period_open(turn: Turn, period: Period) -> bool:
    region = (
        await reports.get_region(session=turn.session, region_id=turn.contact.region_id or 0)
        if turn.contact
        else None
    )
    timezone = region.timezone if region else "Asia/Jakarta"
    if (
        period.opens_on
        and period.due_on
        and window(period.opens_on, period.due_on, timezone).is_open(turn.now)
    ):
        return True
    turn.leave_flow()
    deadline = await views.deadline_text(turn, period)
    turn.say("report.period_closed", period=period.title, deadline=deadline)
    return False


async def _items(turn: Turn, submission: Submission) -> list[WalkItem]:
    return await reports.walk(
        session=turn.session, action_id=submission.action_id, period_id=submission.period_id
    )


async def _current(turn: Turn) -> tuple[Submission | None, list[WalkItem], WalkItem | None]:
    submission = await _submission(turn)
    if submission is None:
        return None, [], None
    items = await _items(turn, submission)
    key = turn.get("item")
    return submission, items, next((i for i in items if i.key == key), None)


# Steps inside a chosen report: each message there first checks that its period is still open.
AFTER_CHOOSING = {
    Step.confirm_reopen,
    Step.answer,
    Step.evidence,
    Step.summary,
    Step.confirm_submit,
}

STEP_HANDLERS: dict[Step, Callable[[Turn], Awaitable[None]]] = {
    Step.choose_period: _on_choose_period,
    Step.choose_action: _on_choose_action,
    Step.confirm_reopen: _on_confirm_reopen,
    Step.answer: _on_answer,
    Step.evidence: _on_evidence,
    Step.summary: _on_summary,
    Step.confirm_submit: _on_confirm_submit,
}
