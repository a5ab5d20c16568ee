"""What the report flow shows: item prompts, the summary, the deadline line. Texts come from
bot/engine/locales; every catalogue or user string is escaped by texts.t()."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.events import Choice
from bot.engine.text_input import clean_name
from bot.engine.texts import escape, human_size
from bot.engine.turn import Turn
from handlers.answers import answer_hint, display_value
from storage import reports
from storage.models import Answer, Period, QuestionKind, Submission
from storage.periods import days_left, deadline, zone_abbreviation
from storage.reports import Completeness, WalkItem

KIND_KEYS = {"photo": "kind.photo", "pdf": "kind.pdf", "docx": "kind.docx", "xlsx": "kind.xlsx"}
MONTHS_ID = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
             "September", "Oktober", "November", "Desember")  # fmt: skip
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")  # fmt: skip


@dataclass
class Progress:
    """A report's answers and evidence counts, each read at most once per message: resuming,
    the completeness check and the next prompt all need them while handling one message, and
    every read is a statement. Kept current by this message's own changes: save an answer with
    `answers=await progress.answers()`, and call `files_changed` after adding a file."""

    session: AsyncSession
    submission_id: int
    _answers: dict[int, Answer] | None = None
    _counts: Counter[int] | None = None

    async def answers(self) -> dict[int, Answer]:
        if self._answers is None:
            self._answers = await reports.answers_by_question(
                session=self.session, submission_id=self.submission_id
            )
        return self._answers

    async def counts(self) -> Counter[int]:
        if self._counts is None:
            self._counts = await reports.evidence_counts(
                session=self.session, submission_id=self.submission_id
            )
        return self._counts

    async def check(self, items: list[WalkItem]) -> Completeness:
        answers, counts = await self.answers(), await self.counts()
        return reports.completeness_of(items, answers=answers, counts=counts)

    def created(self) -> None:
        """The report was created by this message: it has no answers or files to read."""
        self._answers, self._counts = {}, Counter()

    def files_changed(self) -> None:
        """A file was added: count again (after the autoflush) when next asked."""
        self._counts = None


def progress(turn: Turn, submission: Submission) -> Progress:
    """The report's progress, shared by everything that handles this message."""
    key = (Progress, submission.id)
    found = turn.memo.get(key)
    if found is None:
        found = turn.memo[key] = Progress(turn.session, submission.id or 0)
    return found


def state_key(submission: Submission | None) -> str:
    """The locale key of a report's state; a revision in progress shows beside the submitted
    version, which is the one that counts."""
    if submission is None:
        return "status.none"
    if submission.revision_open:
        return "status.revision"
    return f"status.{submission.status.value}"


def kinds_label(turn: Turn, kinds: list[str]) -> str:
    return ", ".join(turn.text(KIND_KEYS[kind]) for kind in kinds if kind in KIND_KEYS)


def accepted_text(turn: Turn, kinds: list[str]) -> str:
    """What to send, as said to a person: "foto atau dokumen PDF", "dokumen PDF atau Word"."""
    documents = [turn.text(f"accept.{kind}") for kind in kinds if kind in {"pdf", "docx", "xlsx"}]
    parts = [turn.text("accept.photo")] if "photo" in kinds else []
    if documents:
        parts.append(turn.text("accept.documents", names=_either(turn, documents)))
    return _either(turn, parts)


def _either(turn: Turn, words: list[str]) -> str:
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + f" {turn.text('accept.or')} " + words[-1]


def long_date(turn: Turn, day: date) -> str:
    months = MONTHS_ID if turn.language == "id" else MONTHS_EN
    return f"{day.day} {months[day.month - 1]} {day.year}"


async def region_timezone(turn: Turn) -> str:
    if turn.contact and turn.contact.region_id:
        region = await reports.get_region(session=turn.session, region_id=turn.contact.region_id)
        if region:
            return region.timezone
    return "Asia/Jakarta"


async def deadline_text(turn: Turn, period: Period) -> str:
    """'Batas: 25 Agustus 2025 pukul 23.59 WIB (3 hari lagi)' in the user's own zone; '(lewat
    2 hari)' once it has passed."""
    if period.due_on is None:
        return ""
    timezone = await region_timezone(turn)
    last_minute = (deadline(period.due_on, timezone) - timedelta(minutes=1)).astimezone(
        ZoneInfo(timezone)
    )
    left = days_left(period.due_on, turn.now, timezone)
    if left < 0:  # "lewat 1 hari", never "(-1 hari lagi)"
        key, days = "deadline.overdue", -left
    else:
        key, days = ("deadline.today" if left == 0 else "deadline.days_left"), left
    return turn.text(
        key,
        date=long_date(turn, last_minute),
        zone=zone_abbreviation(timezone),
        days=days,
    )


async def ask_item(
    turn: Turn, submission: Submission, items: list[WalkItem], item: WalkItem
) -> None:
    measures = list(dict.fromkeys(i.measure.id for i in items))
    header = turn.text(
        "item.measure_header",
        n=measures.index(item.measure.id) + 1,
        total=len(measures),
        title=item.measure.title,
    )
    if item.question:
        await _ask_question(turn, submission, items, item, header)
    elif item.requirement:
        await _ask_evidence(turn, submission, item, header)


async def _ask_question(
    turn: Turn, submission: Submission, items: list[WalkItem], item: WalkItem, header: str
) -> None:
    question = item.question
    assert question is not None
    in_measure = [i for i in items if i.measure.id == item.measure.id and i.question]
    lines = [
        header,
        turn.text(
            "item.question",
            n=in_measure.index(item) + 1,
            total=len(in_measure),
            text=question.text,
        ),
    ]
    if question.help_text:
        lines.append(turn.text("item.help", text=question.help_text))
    lines.append(answer_hint(question, turn.language))
    answers = await progress(turn, submission).answers()
    choices = _question_choices(turn, question.kind, question.choices or [])
    current = answers.get(question.id or 0)
    if current is not None:
        shown = display_value(question, current.value, turn.language)
        lines.append(turn.text("item.current_answer", value=shown))
        choices.append(Choice("keep", turn.text("button.keep")))
    if not question.required:
        choices.append(Choice("skip", turn.text("button.skip")))
    # A note may start with a command's word ("daftar hadir sudah ..."): the text is the answer.
    turn.ask("\n".join(lines), choices, free_text=question.kind is QuestionKind.text)


def _question_choices(turn: Turn, kind: QuestionKind, options: list[str]) -> list[Choice]:
    if kind is QuestionKind.yes_no:
        return [Choice("yes", turn.text("button.yes")), Choice("no", turn.text("button.no"))]
    if kind is QuestionKind.choice:
        return [Choice(f"c:{index}", option) for index, option in enumerate(options)]
    return []


async def _ask_evidence(turn: Turn, submission: Submission, item: WalkItem, header: str) -> None:
    requirement = item.requirement
    assert requirement is not None
    counts = await progress(turn, submission).counts()
    lines = [
        header,
        turn.text(
            "item.evidence",
            label=requirement.label,
            kinds=kinds_label(turn, requirement.kinds),
            min=requirement.min_count,
            have=counts[requirement.id or 0],
        ),
    ]
    if requirement.help_text:
        lines.append(turn.text("item.help", text=requirement.help_text))
    lines.append(
        turn.text(
            "item.evidence_how",
            label=requirement.label,
            accepted=accepted_text(turn, requirement.kinds),
        )
    )
    turn.ask("\n".join(lines), [Choice("done", turn.text("button.done"))])


async def summary_text(turn: Turn, submission: Submission, items: list[WalkItem]) -> str:
    action = await reports.get_action(session=turn.session, action_id=submission.action_id)
    period = await reports.get_period(session=turn.session, period_id=submission.period_id)
    answers = await progress(turn, submission).answers()
    files = await reports.evidence_files(session=turn.session, submission_id=submission.id or 0)
    lines = [
        turn.text(
            "summary.header",
            action=action.title if action else "",
            period=period.title if period else "",
            status=turn.text(state_key(submission)),
            version=submission.version,
        )
    ]
    current_measure = None
    for item in items:
        if item.measure.id != current_measure:
            current_measure = item.measure.id
            lines.append("\n" + turn.text("summary.measure", title=item.measure.title))
        if item.question:
            answer = answers.get(item.question.id or 0)
            shown = (
                display_value(item.question, answer.value, turn.language)
                if answer
                else turn.text("summary.no_answer")
            )
            lines.append(turn.text("summary.answer", question=item.question.text, answer=shown))
        elif item.requirement:
            mine = [f for f in files if f.requirement_id == item.requirement.id]
            names = ", ".join(
                f"{escape(clean_name(f.original_name) or f.kind)} ({human_size(f.size)})"
                for f in mine
            )
            lines.append(
                turn.text(
                    "summary.evidence",
                    label=item.requirement.label,
                    count=len(mine),
                    min=item.requirement.min_count,
                )
                + (f"\n    {names}" if names else "")
            )
    return "\n".join(lines)


def missing_text(turn: Turn, check: Completeness) -> str:
    lines = [turn.text("summary.missing_header")]
    for item in check.missing_answers:
        lines.append(
            turn.text(
                "summary.missing_answer", question=item.question.text if item.question else ""
            )
        )
    for item, count in check.missing_evidence:
        label = item.requirement.label if item.requirement else ""
        lines.append(turn.text("summary.missing_evidence", label=label, count=count))
    return "\n".join(lines)


def local_to_utc(taken_at_local: datetime | None, timezone: str | None) -> datetime | None:
    """EXIF times have no zone: read them in the region's zone."""
    if taken_at_local is None:
        return None
    if taken_at_local.tzinfo is not None:
        return taken_at_local.astimezone(UTC)
    return taken_at_local.replace(tzinfo=ZoneInfo(timezone or "Asia/Jakarta")).astimezone(UTC)
