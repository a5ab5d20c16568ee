"""The catalogue's optional `reminders:` block: stored on the programme, defaults when absent,
refused with its location when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from storage.importers import ImportFileError
from storage.models import Programme
from storage.reminder_policy import DEFAULT_POLICY, ReminderPolicy
from tests.storage.test_catalogue import import_file, small_catalogue

POLICY_YAML = """
reminders:
  send_at: "09:00"
  days_before_due: [5, 2]
  days_after_due: []
  escalate_days_before_due: [2]
"""


async def test_a_catalogue_policy_is_stored_and_read_over_the_defaults(
    session, tmp_path: Path
) -> None:
    path = tmp_path / "with-policy.yaml"
    path.write_text(yaml.safe_dump(small_catalogue()) + POLICY_YAML, encoding="utf-8")
    await import_file(session, path)
    programme = (await session.exec(select(Programme))).one()
    policy = ReminderPolicy.from_stored(programme.reminder_policy)
    assert policy.send_at == "09:00" and policy.days_before_due == [5, 2]
    assert policy.days_after_due == [] and policy.escalate_days_before_due == [2]
    assert policy.on_open is True and policy.escalate_days_after_due == [1]  # defaults

    # The same file without the block: the programme goes back to the defaults.
    path.write_text(yaml.safe_dump(small_catalogue()), encoding="utf-8")
    await import_file(session, path)
    programme = (await session.exec(select(Programme))).one()
    assert programme.reminder_policy is None
    assert ReminderPolicy.from_stored(programme.reminder_policy) == DEFAULT_POLICY


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ('reminders: {send_at: "22:00"}', "jam tenang"),
        ("reminders: {days_before_due: [3, 3]}", "dua kali"),
        ("reminders: {days_before: [3]}", "days_before"),
    ],
)
async def test_a_wrong_policy_is_refused_with_its_location(
    session, tmp_path: Path, block: str, message: str
) -> None:
    path = tmp_path / "bad-policy.yaml"
    path.write_text(yaml.safe_dump(small_catalogue()) + block + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as caught:
        await import_file(session, path)
    assert "reminders" in str(caught.value) and message in str(caught.value)
    assert (await session.exec(select(Programme))).first() is None


def test_a_stored_policy_that_no_longer_validates_falls_back_to_the_defaults() -> None:
    assert ReminderPolicy.from_stored({"send_at": "23:00"}) == DEFAULT_POLICY
