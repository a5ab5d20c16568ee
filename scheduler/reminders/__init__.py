"""Reminders and escalation (docs/reminders.md): a pure planner over a snapshot of the data
(`planner.py`, `schedule.py`), the words (`messages.py`), and the ticker that writes what is due
into the outbox (`ticker.py`)."""

from scheduler.reminders.ticker import Plan, ReminderTicker, phone_channel, plan_at

__all__ = ["Plan", "ReminderTicker", "phone_channel", "plan_at"]
