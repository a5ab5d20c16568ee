"""Upkeep of the message tables: the replay reads a partial index, old processed inbox rows and
finished outbox rows are pruned in batches, and SQLite keeps its planner statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot.engine.channel import Channel
from scheduler import jobs
from scheduler.jobs import prune_old_messages, refresh_statistics
from storage import inbox, retention
from storage.models import InboxMessage, InboxStatus, OutboxMessage, OutboxStatus
from tests.support.jobs import IdleEngine

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=120)
RECENT = NOW - timedelta(days=10)


def _inbox(message_id: str, status: InboxStatus, at: datetime) -> InboxMessage:
    processed = at if status is InboxStatus.processed else None
    return InboxMessage(
        channel=Channel.telegram,
        message_id=message_id,
        status=status,
        received_at=at,
        processed_at=processed,
    )


def _outbox(key: str, status: OutboxStatus, at: datetime) -> OutboxMessage:
    return OutboxMessage(
        idempotency_key=key,
        channel=Channel.telegram,
        recipient="1001",
        payload={"type": "text", "text": key},
        status=status,
        created_at=at,
        next_attempt_at=at,
    )


async def _fill(sessions) -> None:
    async with sessions() as session:
        for n in range(5):
            session.add(_inbox(f"old-{n}", InboxStatus.processed, OLD))
        session.add(_inbox("recent", InboxStatus.processed, RECENT))
        session.add(_inbox("old-unhandled", InboxStatus.received, OLD))
        for n in range(3):
            session.add(_outbox(f"sent-{n}", OutboxStatus.sent, OLD))
        session.add(_outbox("failed", OutboxStatus.failed, OLD))
        session.add(_outbox("pending", OutboxStatus.pending, OLD))
        session.add(_outbox("sending", OutboxStatus.sending, OLD))
        session.add(_outbox("sent-recent", OutboxStatus.sent, RECENT))
        await session.commit()


async def test_prune_deletes_only_old_finished_rows_in_batches(
    sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fill(sessions)
    batches: list[tuple[str, int]] = []
    for name in ("delete_inbox_rows", "delete_outbox_rows"):
        real = getattr(retention, name)

        async def recording(*, real: Any = real, name: str = name, **kwargs: Any) -> int:
            batches.append((name, len(kwargs["ids"])))
            return int(await real(**kwargs))

        monkeypatch.setattr(retention, name, recording)

    deleted = await prune_old_messages(
        sessions=sessions, older_than=timedelta(days=90), now=NOW, batch_size=2
    )
    assert deleted == 5 + 4
    # Each batch its own transaction, so the bot's turns get the write lock in between.
    assert batches == [
        ("delete_inbox_rows", 2),
        ("delete_inbox_rows", 2),
        ("delete_inbox_rows", 1),
        ("delete_outbox_rows", 2),
        ("delete_outbox_rows", 2),
    ]
    async with sessions() as session:
        left_in = (await session.exec(select(InboxMessage.message_id))).all()
        left_out = (await session.exec(select(OutboxMessage.idempotency_key))).all()
    assert sorted(left_in) == ["old-unhandled", "recent"]  # unhandled is kept for the replay
    assert sorted(left_out) == ["pending", "sending", "sent-recent"]

    # Run twice: nothing more to do.
    assert await prune_old_messages(sessions=sessions, older_than=timedelta(days=90), now=NOW) == 0


async def test_a_row_requeued_between_the_read_and_the_delete_is_kept(sessions) -> None:
    await _fill(sessions)
    async with sessions() as session:
        before = NOW - timedelta(days=90)
        ids = await retention.prunable_outbox_ids(session=session, before=before, limit=100)
        assert len(ids) == 4  # three sent, one failed
        failed = (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == "failed")
            )
        ).one()
        failed.status = OutboxStatus.pending  # an operator requeued it meanwhile
        session.add(failed)
        await session.commit()
    async with sessions() as session:
        assert await retention.delete_outbox_rows(session=session, ids=ids, before=before) == 3
        await session.commit()
        assert (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == "failed")
            )
        ).one()


async def test_the_replay_reads_the_partial_index(sessions) -> None:
    await _fill(sessions)
    async with sessions() as session:
        connection = await session.connection()
        assert connection.dialect.name in {"sqlite", "postgresql"}
        # The query the replay runs, compiled with its literal condition.
        rows = await inbox.unprocessed_inbound(session=session, channel=Channel.telegram)
        assert [row.message_id for row in rows] == ["old-unhandled"]
        statement = (
            select(InboxMessage)
            .where(InboxMessage.channel == Channel.telegram.value, retention_condition())
            .order_by(col(InboxMessage.id))
            .limit(500)
        )
        compiled = statement.compile(
            connection.sync_connection, compile_kwargs={"literal_binds": True}
        )
        if connection.dialect.name == "sqlite":
            plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            details = " ".join(str(row[-1]) for row in plan.all())
        else:
            # A tiny table is cheaper to scan: forbid that, to see that the index applies.
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = await connection.exec_driver_sql(f"EXPLAIN {compiled}")
            details = " ".join(str(row[0]) for row in plan.all())
        assert "ix_inbox_unprocessed" in details


def retention_condition() -> Any:
    from storage.models.messaging import UNPROCESSED_INBOX

    return UNPROCESSED_INBOX


async def test_the_partial_index_holds_only_unprocessed_rows(sessions) -> None:
    async with sessions() as session:
        connection = await session.connection()
        if connection.dialect.name == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE name = 'ix_inbox_unprocessed'"
        else:
            sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_inbox_unprocessed'"
        definition = (await connection.exec_driver_sql(sql)).scalar_one()
    assert "WHERE" in definition.upper() and "received" in definition


async def test_sqlite_keeps_its_statistics(sessions) -> None:
    await _fill(sessions)
    ran = await refresh_statistics(sessions=sessions)
    async with sessions() as session:
        connection = await session.connection()
        if connection.dialect.name != "sqlite":
            assert ran is False  # PostgreSQL's autovacuum analyzes on its own
            return
        assert ran is True
        tables = (
            (await connection.exec_driver_sql("SELECT DISTINCT tbl FROM sqlite_stat1"))
            .scalars()
            .all()
        )
    assert {"inbox_message", "outbox_message"} <= set(tables)
    assert await refresh_statistics(sessions=sessions) is True  # and again: PRAGMA optimize


async def test_the_upkeep_jobs_are_listed_daily(sessions, tmp_path) -> None:
    from storage.evidence import LocalEvidenceStore

    listed = jobs.scheduled_jobs(
        engine=IdleEngine(),  # type: ignore[arg-type]
        sessions=sessions,
        store=LocalEvidenceStore(tmp_path),
        retention_age=timedelta(days=30),
    )
    by_id = {job.id: job for job in listed}
    assert by_id["retention-prune"].daily_at is not None
    assert by_id["sqlite-optimize"].daily_at is not None
    scheduled = {job.id for job in jobs.build_scheduler(listed).get_jobs()}
    assert {"retention-prune", "sqlite-optimize"} <= scheduled


async def test_prune_job_uses_the_configured_age(sessions, tmp_path) -> None:
    from storage.evidence import LocalEvidenceStore

    async with sessions() as session:
        session.add(
            _inbox("a-while-ago", InboxStatus.processed, datetime.now(UTC) - timedelta(days=40))
        )
        await session.commit()
    for age, expected in ((timedelta(days=60), 0), (timedelta(days=30), 1)):
        listed = jobs.scheduled_jobs(
            engine=IdleEngine(),  # type: ignore[arg-type]
            sessions=sessions,
            store=LocalEvidenceStore(tmp_path),
            retention_age=age,
        )
        prune = next(job for job in listed if job.id == "retention-prune")
        assert await prune.run() == expected
