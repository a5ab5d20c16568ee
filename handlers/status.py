"""/status: a focal point's own tasks for the open period(s), with states and the deadline in
their own time zone; coordinators, the Kanwil and admins get the paged oversight view of their
scope (handlers/oversight.py)."""

from __future__ import annotations

from bot.engine.turn import Turn
from handlers import oversight
from handlers import report_views as views
from storage import reports
from storage.models import Role


async def show(turn: Turn) -> None:
    contact = turn.contact
    if contact is None:
        return
    if contact.role is not Role.focal_point:
        await oversight.show_status(turn)
        return
    await _focal_point(turn)
    if turn.flow:
        turn.repeat_prompt()


async def _focal_point(turn: Turn) -> None:
    contact = turn.contact
    assert contact is not None
    timezone = await views.region_timezone(turn)
    periods = await reports.open_periods_for_office(
        session=turn.session, office_id=contact.office_id or 0, timezone=timezone, now=turn.now
    )
    if not periods:
        turn.say("status.no_open_period")
        return
    for _programme, period in periods:
        rows = await reports.office_actions_for_period(
            session=turn.session, office_id=contact.office_id or 0, period=period
        )
        lines = [
            turn.text("status.header", period=period.title),
            await views.deadline_text(turn, period),
        ]
        for n, (action, submission) in enumerate(rows, start=1):
            state = turn.text(views.state_key(submission))
            lines.append(turn.text("report.action_line", n=n, title=action.title, state=state))
        # A report with a revision open is still submitted: its submitted version counts.
        done = sum(1 for _, s in rows if s and s.status.value in {"submitted", "approved"})
        lines.append(turn.text("status.footer", done=done, total=len(rows)))
        turn.say_markup("\n".join(lines))
