"""A fake of PyPI's per-release JSON API (https://pypi.org/pypi/NAME/VERSION/json), the
vulnerability data `make audit`'s pip-audit reads, for tests/test_audit.py.

pip-audit's URL for it is fixed (it has an option for the OSV service's URL, none for PyPI's),
so the fake is reached as pypi.org itself: an HTTPS proxy on 127.0.0.1 that accepts
`CONNECT pypi.org:443` and answers inside the tunnel with a certificate for pypi.org signed by
a throwaway CA made for the run. The client trusts that CA only because the test points
REQUESTS_CA_BUNDLE and SSL_CERT_FILE at it. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import ssl
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "pypi.org"
Vulnerability = dict[str, Any]


def vulnerability(vuln_id: str, *, fixed_in: str, summary: str) -> Vulnerability:
    """One entry of the JSON API's `vulnerabilities` list, as PyPI writes it."""
    return {
        "id": vuln_id,
        "aliases": [],
        "fixed_in": [fixed_in],
        "summary": summary,
        "details": summary,
        "link": f"https://osv.dev/vulnerability/{vuln_id}",
        "source": "osv",
        "withdrawn": None,
    }


class FakePyPI:
    """`vulnerabilities` maps "name==version" to that release's entries (none for the rest);
    a release in `missing` answers 404, as PyPI does for a version it does not know."""

    def __init__(
        self,
        workdir: Path,
        *,
        vulnerabilities: dict[str, list[Vulnerability]] | None = None,
        missing: frozenset[str] = frozenset(),
    ) -> None:
        self.workdir = workdir
        self.vulnerabilities = vulnerabilities or {}
        self.missing = missing
        self.ca_file = workdir / "fake-pypi-ca.pem"
        self.asked: list[str] = []  # the paths requested inside the tunnel, in order
        self._tls: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def proxy_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> FakePyPI:
        self._tls = self._certificates()
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def _certificates(self) -> ssl.SSLContext:
        """A CA (written to `ca_file`) and pypi.org's certificate signed by it."""
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "LaporHAM test CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain = self.workdir / "fake-pypi-server.pem"
        chain.write_bytes(
            leaf.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain)
        return context

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._tunnel(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away: nothing to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(f"CONNECT {HOST}:443 ".encode()):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        assert self._tls is not None
        await writer.start_tls(self._tls)
        while True:  # requests keeps the connection alive: one answer per request head
            try:
                request = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            path = request.split(b" ", 2)[1].decode("ascii")
            self.asked.append(path)
            writer.write(self._answer(path))
            await writer.drain()

    def _answer(self, path: str) -> bytes:
        parts = path.strip("/").split("/")  # pypi/NAME/VERSION/json
        release = f"{parts[1]}=={parts[2]}" if len(parts) == 4 and parts[0] == "pypi" else ""
        if not release or release in self.missing:
            return _response(404, b'{"message": "Not Found"}')
        body = {"info": {}, "vulnerabilities": self.vulnerabilities.get(release, [])}
        return _response(200, json.dumps(body).encode())


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n\r\n"
    )
    return head.encode() + body
