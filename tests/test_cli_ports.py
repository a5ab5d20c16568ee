"""`laporham run`/`demo` and the HTTP port (#12 item 24): the console channel needs no port,
and a port that cannot be bound gives one clear line and a non-zero exit, not a traceback."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import LAPORHAM, TIMEOUT, cli_database, cli_env

__all__ = ["cli_database", "cli_env"]  # fixtures, imported for this module's tests


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def _run(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LAPORHAM), *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("command", ["run", "demo"])
def test_the_console_channel_leaves_the_http_port_alone(
    command: str, cli_env: dict[str, str], tmp_path: Path, busy_port: int
) -> None:
    env = {**cli_env, "LAPORHAM_HTTP_PORT": str(busy_port)}
    result = _run([command], env, tmp_path, stdin="/bantuan\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "/daftar" in result.stdout  # it answered: the console ran beside the busy port


def test_a_busy_port_is_one_clear_line(
    cli_env: dict[str, str], tmp_path: Path, busy_port: int
) -> None:
    env = {
        **cli_env,
        "LAPORHAM_HTTP_PORT": str(busy_port),
        # A channel that needs the HTTP server (its webhook); nothing is contacted before.
        "LAPORHAM_WHATSAPP_TOKEN": "test-token-not-used-here",
        "LAPORHAM_WHATSAPP_PHONE_NUMBER_ID": "1234567890",
        "LAPORHAM_WHATSAPP_API_URL": "http://127.0.0.1:9/v21.0",
    }
    result = _run(["run"], env, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if "Gagal" in line]
    assert len(lines) == 1
    assert f"127.0.0.1:{busy_port}" in lines[0]
    assert "sudah dipakai" in lines[0] and "LAPORHAM_HTTP_PORT" in lines[0]
