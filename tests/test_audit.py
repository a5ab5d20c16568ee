"""`make audit` (issue #13 item 15): its outcomes, each from the real Makefile target running
the real pip-audit, against a fake of PyPI's vulnerability data reached over real HTTPS
through a proxy on 127.0.0.1 (tests/fakes/pypi.py): exit 0 when every package was checked and
none is vulnerable; otherwise make's own 2 (make turns any failing recipe into 2), with the
recipe's 1 "VULNERABLE" naming the package, or 2 "NOT AUDITED" when the data cannot be
reached, or not for every package. The audited file is two packages of requirements.lock,
with their hashes, so a run takes seconds."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("cryptography", reason="the fake PyPI's throwaway CA is made with cryptography")

from tests.fakes.pypi import FakePyPI, vulnerability  # after the skip above

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)  # the environment running the tests: the one `make` would have built
AUDITED = ("h11", "idna")
GUARD_SECONDS = 120.0  # only guards against a hang; nothing is asserted about time

pytestmark = [
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
    pytest.mark.skipif(
        not (VENV / "bin" / "pip-audit").exists(),
        reason=f"pip-audit is not installed in {VENV} (the dev extra of requirements.lock)",
    ),
]


@dataclass
class Audit:
    status: int  # make's: 0, or 2 for any failing recipe
    stdout: str
    stderr: str

    @property
    def verdict(self) -> list[str]:
        """The recipe's last word, and the recipe's own status as make reports it."""
        lines = self.stderr.splitlines()
        said = [line for line in lines if line.startswith("make audit:")]
        status = [line.rsplit("] ", 1)[1] for line in lines if line.startswith("make: ***")]
        return said + status


def locked_requirements(names: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Those packages' entries of requirements.lock, hashes included; and their versions."""
    lock = (ROOT / "requirements.lock").read_text()
    entries, versions = [], {}
    for name in names:
        found = re.search(rf"^{name}==(\S+)(?: \\\n\s+--hash=\S+)+", lock, re.MULTILINE)
        assert found, f"{name} is not in requirements.lock"
        entries.append(found.group(0))
        versions[name] = found.group(1)
    return "\n".join(entries) + "\n", versions


@pytest.fixture
def requirements(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    text, versions = locked_requirements(AUDITED)
    path = tmp_path / "requirements-audit.txt"
    path.write_text(text)
    return path, versions


async def make_audit(requirements: Path, *, proxy: str, ca_file: Path, home: Path) -> Audit:
    """`make audit` on `requirements`, through `proxy`, trusting only `ca_file`. The venv's
    stamp is taken as up to date (-o): the test must not reinstall anything."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in {"no_proxy", "http_proxy", "https_proxy", "all_proxy"}
        and key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}  # when run under `make test`
    }
    env |= {
        "HTTPS_PROXY": proxy,
        "https_proxy": proxy,
        "SSL_CERT_FILE": str(ca_file),  # the Makefile's probe (urllib)
        "REQUESTS_CA_BUNDLE": str(ca_file),  # pip-audit (requests)
        "CURL_CA_BUNDLE": str(ca_file),
        "HOME": str(home),  # pip-audit's HTTP cache: a fresh one per test
        "XDG_CACHE_HOME": str(home / "cache"),
    }
    process = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "-o",
        f"{VENV}/.installed",
        f"VENV={VENV}",
        f"AUDIT_REQUIREMENTS={requirements}",
        "audit",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(GUARD_SECONDS):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Audit(process.returncode, stdout.decode(), stderr.decode())


async def test_no_known_vulnerability_exits_0(
    tmp_path: Path, requirements: tuple[Path, dict[str, str]]
) -> None:
    path, versions = requirements
    async with FakePyPI(tmp_path) as pypi:
        audit = await make_audit(path, proxy=pypi.proxy_url, ca_file=pypi.ca_file, home=tmp_path)
    assert audit.status == 0, audit
    assert "No known vulnerabilities found" in audit.stdout + audit.stderr
    asked = {f"/pypi/{name}/{version}/json" for name, version in versions.items()}
    assert asked <= set(pypi.asked)  # each package was really looked up, through the tunnel


async def test_a_vulnerable_package_exits_1_naming_it(
    tmp_path: Path, requirements: tuple[Path, dict[str, str]]
) -> None:
    path, versions = requirements
    release = f"idna=={versions['idna']}"
    entry = vulnerability("PYSEC-0000-0001", fixed_in="99.0", summary="made up for the test")
    async with FakePyPI(tmp_path, vulnerabilities={release: [entry]}) as pypi:
        audit = await make_audit(path, proxy=pypi.proxy_url, ca_file=pypi.ca_file, home=tmp_path)
    assert audit.status == 2, audit
    found = [line.split() for line in audit.stdout.splitlines() if "PYSEC-0000-0001" in line]
    assert found == [["idna", versions["idna"], "PYSEC-0000-0001", "99.0"]], audit.stdout
    assert audit.verdict == [
        "make audit: VULNERABLE: known vulnerabilities in the audited versions (listed above).",
        "Error 1",
    ]


async def test_a_package_the_data_does_not_know_is_not_audited_exit_2(
    tmp_path: Path, requirements: tuple[Path, dict[str, str]]
) -> None:
    """A 404 for one release: pip-audit skips it and would exit 0; the target says so."""
    path, versions = requirements
    async with FakePyPI(tmp_path, missing=frozenset({f"h11=={versions['h11']}"})) as pypi:
        audit = await make_audit(path, proxy=pypi.proxy_url, ca_file=pypi.ca_file, home=tmp_path)
    assert audit.status == 2, audit
    assert "could not be audited" in audit.stdout
    assert audit.verdict == [
        "make audit: NOT AUDITED: some packages' vulnerability data could not be fetched"
        " (listed above).",
        "Error 2",
    ]


async def test_unreachable_data_is_not_audited_exit_2(
    tmp_path: Path, requirements: tuple[Path, dict[str, str]]
) -> None:
    """Nothing listens on port 1: the probe fails before pip-audit runs, said in one line."""
    path, _versions = requirements
    async with FakePyPI(tmp_path) as pypi:  # for its CA only: the proxy given is dead
        audit = await make_audit(
            path, proxy="http://127.0.0.1:1", ca_file=pypi.ca_file, home=tmp_path
        )
    assert audit.status == 2, audit
    assert audit.stderr.startswith("make audit: NOT AUDITED: PyPI's vulnerability data")
    assert audit.verdict[-1] == "Error 2"
    assert pypi.asked == []
