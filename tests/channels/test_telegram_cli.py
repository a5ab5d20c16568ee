"""`laporham run` as an operator starts it: a separate process, configured only through the
environment, against the standalone fake Bot API in a third process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.telegram_api import DEFAULT_TOKEN, command_update

REPO = Path(__file__).resolve().parents[2]
LAPORHAM = Path(sys.executable).parent / "laporham"
CLI_MISSING = not (REPO / "bot" / "cli.py").exists()


def laporham_command() -> list[str]:
    if LAPORHAM.exists():
        return [str(LAPORHAM), "run"]
    return [sys.executable, "-m", "bot.cli", "run"]


@contextlib.asynccontextmanager
async def process(
    args: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does: a clean shutdown
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def recorded(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    response = await client.get(f"{url}/_fake/requests")
    return list(response.json()["result"])


@pytest.mark.skipif(CLI_MISSING, reason="bot/cli.py (the `laporham` CLI) is not written yet")
async def test_laporham_run_answers_on_telegram(tmp_path: Path) -> None:
    fake = [sys.executable, "-m", "tests.fakes.telegram_api", "--port", "0"]
    async with process(fake, cwd=REPO) as api_proc:
        assert api_proc.stdout is not None
        url = (await asyncio.wait_for(api_proc.stdout.readline(), 10)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("LAPORHAM_")  # nothing of the developer's own set-up
        }
        env |= {
            "LAPORHAM_TELEGRAM_TOKEN": DEFAULT_TOKEN,
            "LAPORHAM_TELEGRAM_API_URL": url,
            "LAPORHAM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'laporham.db'}",
            "LAPORHAM_DATA_DIR": str(tmp_path / "data"),
            "LAPORHAM_HTTP_PORT": "0",
        }
        async with (
            process(laporham_command(), cwd=tmp_path, env=env) as bot_proc,
            httpx.AsyncClient(timeout=5) as client,
        ):
            start = command_update(730001, "start")
            pushed = await client.post(f"{url}/_fake/updates", content=json.dumps(start))
            assert pushed.status_code == 200
            reply = None
            # A hang guard, not a speed requirement: on a loaded machine two Python processes
            # starting and migrating a database can take far longer than usual.
            async with asyncio.timeout(90):
                while reply is None:
                    if bot_proc.returncode is not None:
                        assert bot_proc.stderr is not None
                        errors = (await bot_proc.stderr.read()).decode()
                        pytest.fail(f"laporham run exited early:\n{errors[-3000:]}")
                    reply = next(
                        (
                            r
                            for r in await recorded(client, url)
                            if r["method"] == "sendMessage" and r["status"] == 200
                        ),
                        None,
                    )
                    await asyncio.sleep(0.2)
            assert reply["params"]["chat_id"] == 730001
            assert "Bagikan nomor saya" in reply["params"]["text"]
        assert bot_proc.returncode is not None
        assert bot_proc.stderr is not None
        log = (await bot_proc.stderr.read()).decode()
        assert DEFAULT_TOKEN not in log  # Bot API URLs carry the token: never logged
