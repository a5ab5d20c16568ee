"""`laporham`: the operator's command line (README.md, "The command line")."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bot.engine.channel import ChannelConfigError
from bot.settings import Settings, get_settings

if TYPE_CHECKING:  # imported where used: `laporham --help` stays quick
    from storage.broadcasts import AudienceCount, Recipients

app = typer.Typer(help="LaporHAM: asisten pelaporan Aksi HAM dan KKPHAM.", no_args_is_help=True)
db_app = typer.Typer(help="Basis data.", no_args_is_help=True)
catalogue_app = typer.Typer(help="Katalog aksi, ukuran, pertanyaan.", no_args_is_help=True)
contacts_app = typer.Typer(help="Wilayah, OPD, kontak dan penugasan.", no_args_is_help=True)
invite_app = typer.Typer(help="Kode undangan pendaftaran.", no_args_is_help=True)
period_app = typer.Typer(help="Jendela periode pelaporan.", no_args_is_help=True)
reminders_app = typer.Typer(help="Pengingat dan eskalasi terjadwal.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(contacts_app, name="contacts")
app.add_typer(invite_app, name="invite")
app.add_typer(period_app, name="period")
app.add_typer(reminders_app, name="reminders")
export_app = typer.Typer(help="Ekspor rekap dan data dukung.", no_args_is_help=True)
app.add_typer(export_app, name="export")
broadcast_app = typer.Typer(
    help="Siaran: satu pesan ke banyak kontak (lihat juga `broadcast status ID`).",
    invoke_without_command=True,
)
app.add_typer(broadcast_app, name="broadcast")

# soft_wrap: one problem per line however long; highlight off: file text is not decoration.
err = Console(stderr=True, soft_wrap=True, highlight=False)
T = TypeVar("T")


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as error:
        for problem in error.errors():
            # One line per problem: a validator may report several, one per line.
            for line in str(problem["msg"]).removeprefix("Value error, ").splitlines():
                err.print(f"[red]Konfigurasi salah:[/red] {line}")
        raise typer.Exit(2) from error


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory())


@contextmanager
def _friendly_errors() -> Iterator[None]:
    """Operator mistakes get one clear message and exit code 1, never a traceback."""
    from storage.importers import ImportFileError
    from storage.invites import InviteError
    from storage.periods import CatalogueError

    try:
        yield
    except (ImportFileError, InviteError, CatalogueError) as error:
        err.print(f"[red]Gagal:[/red] {escape(str(error))}")
        err.print("Tidak ada data yang diubah.")
        raise typer.Exit(1) from error
    except FileNotFoundError as error:
        err.print(f"[red]Berkas tidak ditemukan:[/red] {escape(str(error.filename))}")
        raise typer.Exit(1) from error


async def _migrate(settings: Settings, *, quiet_when_current: bool) -> None:
    """Apply pending migrations (as `run` does) and say what that did, in one line."""
    from storage.migrate import upgrade_and_report

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        done = await upgrade_and_report(settings.database_url)
    except OSError as error:  # refused, unknown host, unwritable file: the operator's to fix
        err.print(f"[red]Basis data tidak dapat dibuka:[/red] {escape(str(error))}")
        raise typer.Exit(1) from error
    revisions = ", ".join(revision for revision, _ in done.applied)
    if done.created:
        err.print(f"Skema dibuat di basis data baru (revisi {revisions}).")
    elif done.applied:
        described = "; ".join(f"{rev} {doc}".strip() for rev, doc in done.applied)
        err.print(f"Migrasi diterapkan: {escape(described)}.")
    elif not quiet_when_current:
        err.print(f"Basis data sudah terbaru (revisi {done.before}); tak ada migrasi tertunda.")


async def _in_transaction(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """The work in one transaction, on a schema brought up to date first."""
    from storage.db import create_engine, session_factory, transaction

    await _migrate(settings, quiet_when_current=True)
    engine = create_engine(settings.database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


async def _in_batches(settings: Settings, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """The work as short transactions (storage.db.batched_writes), on an up-to-date schema:
    a long import never holds the database's write lock for long while the bot runs."""
    from storage.db import batched_writes, create_engine, session_factory

    await _migrate(settings, quiet_when_current=True)
    engine = create_engine(settings.database_url)
    try:
        async with batched_writes(session_factory(engine)) as (session, checkpoint):
            return await work(session, checkpoint)
    finally:
        await engine.dispose()


@contextmanager
def _progress() -> Iterator[Callable[[int, int | None, str], None]]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=None)

        def advance(step: int, total: int | None, label: str) -> None:
            bar.update(task, advance=step, total=total, description=label)

        yield advance


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def run() -> None:
    """Jalankan semua kanal yang dikonfigurasi, penjadwal dan server HTTP (tanpa kanal: konsol)."""
    settings = _settings()
    _serve(settings, seed_demo=False)


@app.command()
def demo() -> None:
    """Isi data demo bila basis data kosong, lalu jalankan seperti `run`."""
    settings = _settings()
    _serve(settings, seed_demo=True)


def _serve(settings: Settings, *, seed_demo: bool) -> None:
    from bot.app import (
        HttpPortUnavailable,
        configured_channels,
        prepare_database,
        run_channels,
        run_console,
    )

    with _friendly_errors():
        seeded = _run(lambda: prepare_database(settings, seed_demo=seed_demo))
    if seeded:
        err.print("Data demo dimuat (Lampung dan Bangka Belitung, Aksi HAM 2025, KKPHAM 2025).")
    channels = configured_channels(settings)
    if not channels:
        _run(lambda: run_console(settings))
        return
    _logging()
    names = ", ".join(str(channel.name) for channel in channels)

    def started(port: int) -> None:  # said once the port is bound, not before
        err.print(f"LaporHAM berjalan: {names}; HTTP {settings.http_host}:{port}.")

    try:
        _run(lambda: run_channels(settings, channels, on_http_started=started, handle_signals=True))
    except KeyboardInterrupt:
        err.print("Berhenti.")
    except ChannelConfigError as error:  # a bad token or webhook URL: the operator's to fix
        err.print(f"[red]Konfigurasi salah:[/red] {escape(str(error))}")
        raise typer.Exit(2) from error
    except HttpPortUnavailable as error:  # one line: which port, and what to do
        err.print(f"[red]Gagal:[/red] {escape(error.advice)}")
        raise typer.Exit(1) from error


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Terapkan migrasi Alembic ke basis data di LAPORHAM_DATABASE_URL."""
    settings = _settings()
    _run(lambda: _migrate(settings, quiet_when_current=False))


@catalogue_app.command("import")
def catalogue_import(file: Annotated[Path, typer.Argument(help="Berkas katalog YAML")]) -> None:
    """Muat program, periode, aksi, ukuran, pertanyaan dan syarat data dukung dari YAML."""
    from storage.importers import import_catalogue, load_catalogue

    _import(file, load_catalogue, import_catalogue)


@contacts_app.command("import")
def contacts_import(
    file: Annotated[Path, typer.Argument(help="Berkas Excel (.xlsx) kontak")],
) -> None:
    """Muat wilayah, OPD, kontak dan penugasan dari Excel."""
    from storage.importers import import_contacts, read_contacts_workbook

    _import(file, read_contacts_workbook, import_contacts)


def _import(file: Path, read: Callable[[Path], Any], apply: Callable[..., Awaitable[Any]]) -> None:
    """Read and check the file, then write it in short batches with a progress bar. Every
    problem of the file (its own and against the database) is found before the first write."""
    settings = _settings()
    with _friendly_errors():
        doc = read(file)
        with _progress() as progress:
            report = _run(
                lambda: _in_batches(
                    settings,
                    lambda s, c: apply(doc, session=s, progress=progress, checkpoint=c),
                )
            )
    typer.echo("\n".join(report.summary()))


@invite_app.command("create")
def invite_create(
    role: Annotated[
        str, typer.Option(help="focal_point (focal point, operator), koordinator, kanwil, admin")
    ],
    region: Annotated[str | None, typer.Option(help="Kode wilayah, mis. 18.71")] = None,
    office: Annotated[str | None, typer.Option(help="Kode OPD (wajib untuk focal_point)")] = None,
    name: Annotated[str | None, typer.Option(help="Nama pemegang kode")] = None,
    days: Annotated[int, typer.Option(help="Berlaku berapa hari", min=1, max=90)] = 7,
) -> None:
    """Cetak kode undangan sekali pakai untuk satu peran, wilayah dan OPD."""
    from storage.invites import create_invite, parse_role

    settings = _settings()
    with _friendly_errors():
        parsed = parse_role(role)
        code = _run(
            lambda: _in_transaction(
                settings,
                lambda s: create_invite(
                    session=s,
                    role=parsed,
                    region_code=region,
                    office_code=office,
                    key=settings.invite_key,
                    name=name,
                    valid_for=timedelta(days=days),
                ),
            )
        )
    typer.echo(code)
    err.print(f"Berlaku {days} hari, sekali pakai. Pengguna mengetik: /daftar {code}")


@period_app.command("set")
def period_set(
    code: Annotated[str, typer.Argument(help="Kode periode, mis. B08")],
    opens: Annotated[str, typer.Option("--opens", help="Tanggal buka, YYYY-MM-DD")],
    due: Annotated[str, typer.Option("--due", help="Tanggal batas, YYYY-MM-DD")],
    programme: Annotated[str | None, typer.Option(help="Kode program (bawaan: terbaru)")] = None,
) -> None:
    """Atur jendela periode; batasnya akhir tanggal itu di zona waktu tiap wilayah."""
    from storage.periods import parse_day, set_period_window

    settings = _settings()
    with _friendly_errors():
        opens_on, due_on = parse_day(opens), parse_day(due)
        period = _run(
            lambda: _in_transaction(
                settings,
                lambda s: set_period_window(
                    session=s,
                    programme_code=programme,
                    period_code=code,
                    opens_on=opens_on,
                    due_on=due_on,
                ),
            )
        )
    typer.echo(f"{period.code}: {period.opens_on} s.d. {period.due_on} (23.59 waktu setempat)")


# --- broadcasts -----------------------------------------------------------------------------

AUDIENCE_NAMES = {
    "focal_points": "focal_points", "fokal": "focal_points", "focal_point": "focal_points",
    "not_submitted": "not_submitted", "belum": "not_submitted",
    "coordinators": "coordinators", "koordinator": "coordinators",
    "pemda": "pemda",
}  # fmt: skip


class BroadcastRefused(Exception):
    """The operator's broadcast cannot go as asked: one line says why; nothing is written."""


@broadcast_app.callback()
def broadcast(
    ctx: typer.Context,
    audience: Annotated[
        str | None,
        typer.Option(help="fokal (semua focal point), belum (belum mengirim), koordinator, pemda"),
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Kode wilayah (provinsi: beserta kab/kotanya); tanpa: semua")
    ] = None,
    text: Annotated[str | None, typer.Option(help="Isi pesan")] = None,
    file: Annotated[Path | None, typer.Option(help="Berkas teks UTF-8 berisi pesan")] = None,
    sender: Annotated[str | None, typer.Option(help="Nama pengirim yang dibaca penerima")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Kirim tanpa bertanya lagi")] = False,
) -> None:
    """Tampilkan jumlah penerima dan pratinjau, minta konfirmasi, lalu tulis pesannya ke outbox
    (`laporham run` mengirimnya)."""
    if ctx.invoked_subcommand is not None:
        return
    from scheduler.broadcasts import write_rows

    settings = _settings()
    with _friendly_errors(), _broadcast_refusals():
        message = _broadcast_text(text, file)
        if audience is None:
            raise BroadcastRefused(
                "pilih penerima dengan --audience (fokal, belum, koordinator, pemda)"
            )
        chosen = AUDIENCE_NAMES.get(audience.strip().lower())
        if chosen is None:
            raise BroadcastRefused(
                f"--audience {audience} tidak dikenal: fokal, belum, koordinator, pemda"
            )
        plan = _run(lambda: _in_transaction(settings, lambda s: _plan_broadcast(s, chosen, region)))
        label = sender or "Admin LaporHAM"
        err.print(f"Penerima: {plan.count.reachable} kontak ({escape(plan.describe)})")
        if plan.count.without_channel:
            err.print(
                f"{plan.count.without_channel} kontak lain belum terhubung ke bot: tidak dikirimi."
            )
        err.print(f"Pengirim: {escape(label)}\n---\n{escape(message)}\n---")
        if not plan.count.reachable:
            raise BroadcastRefused("tidak ada kontak yang bisa menerima siaran ini")
        if not yes and not typer.confirm(f"Kirim ke {plan.count.reachable} kontak?"):
            err.print("Dibatalkan; tidak ada yang dikirim.")
            return

        async def create_and_write(sessions: Any) -> tuple[int, int]:
            from storage.broadcasts import create_broadcast, get_broadcast
            from storage.db import transaction

            async with transaction(sessions) as session:
                made = await create_broadcast(
                    session=session, spec=plan.spec, text=message, sender_label=label
                )
            with _progress() as progress:
                batches = math.ceil(made.total_recipients / BROADCAST_BATCH) or 1
                await write_rows(
                    sessions,
                    made.id or 0,
                    batch_size=BROADCAST_BATCH,
                    on_batch=lambda: progress(1, batches, "Menulis ke outbox"),
                )
            async with sessions() as session:
                written = await get_broadcast(session=session, broadcast_id=made.id or 0)
            return made.id or 0, written.total_recipients if written else 0

        broadcast_id, written = _run(lambda: _reading(settings, create_and_write))
    typer.echo(broadcast_id)
    err.print(
        f"Siaran #{broadcast_id}: {written} pesan di outbox; `laporham run` mengirimnya. "
        f"Laporan: laporham broadcast status {broadcast_id}"
    )


@broadcast_app.command("status")
def broadcast_status(broadcast_id: Annotated[int, typer.Argument(help="Nomor siaran")]) -> None:
    """Laporan pengiriman satu siaran: terkirim, gagal (dengan alasannya), menunggu."""
    from bot.engine.texts import t
    from scheduler.broadcasts import failure_reasons
    from storage.broadcasts import delivery, get_broadcast

    settings = _settings()

    async def read(session: Any) -> Any:
        found = await get_broadcast(session=session, broadcast_id=broadcast_id)
        if found is None:
            return None
        return found, await delivery(session=session, broadcast_id=broadcast_id)

    with _broadcast_refusals():
        result = _run(lambda: _in_transaction(settings, read))
        if result is None:
            raise BroadcastRefused(f"siaran #{broadcast_id} tidak ada")
    found, figures = result
    lines = [
        f"Siaran #{found.id} dari {found.sender_label}, "
        f"{found.created_at:%Y-%m-%d %H:%M} UTC: {found.state.value}",
        f"Terkirim: {figures.sent} dari {figures.total}",
        f"Gagal: {figures.failed}",
        *(
            f"  • {t('id', f'broadcast.reason.{reason}')}: {n}"
            for reason, n in failure_reasons(figures)
        ),
        f"Menunggu: {figures.waiting}",
        f"Belum terhubung ke bot (tidak dikirimi): {found.without_channel}",
    ]
    typer.echo("\n".join(lines))


BROADCAST_BATCH = 500


@dataclass(frozen=True)
class _BroadcastPlan:
    spec: Recipients
    count: AudienceCount
    describe: str


@contextmanager
def _broadcast_refusals() -> Iterator[None]:
    try:
        yield
    except BroadcastRefused as refused:
        err.print(f"[red]Gagal:[/red] {escape(str(refused))}")
        err.print("Tidak ada yang dikirim.")
        raise typer.Exit(1) from refused


def _broadcast_text(text: str | None, file: Path | None) -> str:
    from handlers.broadcast import MAX_TEXT

    if (text is None) == (file is None):
        raise BroadcastRefused("beri isi pesan dengan --text atau --file (salah satu)")
    try:
        message = (text if text is not None else (file or Path()).read_text("utf-8")).strip()
    except UnicodeDecodeError as error:
        raise BroadcastRefused(f"{file} bukan berkas teks UTF-8") from error
    if not message:
        raise BroadcastRefused("pesannya kosong")
    if len(message) > MAX_TEXT:
        raise BroadcastRefused(f"pesannya {len(message)} karakter, paling banyak {MAX_TEXT}")
    return message


async def _plan_broadcast(session: Any, audience: str, region_code: str | None) -> _BroadcastPlan:
    from storage import broadcasts
    from storage.models import Audience
    from storage.types import utcnow

    chosen = Audience(audience)
    region = None
    if region_code is not None:
        region = await broadcasts.find_region_by_code(session=session, code=region_code)
        if region is None:
            raise BroadcastRefused(f"wilayah {region_code} tidak dikenal")
    if chosen is Audience.pemda and region is None:
        raise BroadcastRefused("--audience pemda perlu --region KODE")
    period = None
    if chosen is Audience.not_submitted:
        period = await broadcasts.open_period(session=session, region=region, now=utcnow())
        if period is None:
            raise BroadcastRefused("tidak ada periode yang sedang dibuka")
    spec = broadcasts.Recipients(
        audience=chosen,
        region_id=region.id if region else None,
        period_id=period.id if period else None,
    )
    count = await broadcasts.count_audience(session=session, spec=spec)
    where = region.name if region else "seluruh Indonesia"
    describe = f"{chosen.value}, {where}" + (f", {period.title}" if period else "")
    return _BroadcastPlan(spec=spec, count=count, describe=describe)


# ------------------------------------------------------------------ export (evidence for SAPA-HAM)


@contextmanager
def _export_errors() -> Iterator[None]:
    """A period or region that does not exist, or a target that cannot be written: one line."""
    from storage.evidence_export import ExportError

    try:
        yield
    except ExportError as error:
        err.print(f"[red]Gagal:[/red] {escape(str(error))}")
        raise typer.Exit(1) from error
    except OSError as error:  # no such folder, no permission, disk full
        err.print(f"[red]Gagal menulis:[/red] {escape(str(error))}")
        raise typer.Exit(1) from error


# --- reminders (docs/reminders.md)


def _parse_at(text: str | None) -> datetime:
    """--at: ISO 8601; without a zone it is WIB (Asia/Jakarta), as operators mean it."""
    if text is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as error:
        err.print(
            f'[red]Gagal:[/red] "{escape(text)}": tulis waktu seperti 2025-08-25T08:00 (WIB).'
        )
        raise typer.Exit(1) from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Jakarta"))
    return parsed.astimezone(UTC)


async def _in_session(sessions: Any, work: Callable[[Any], Awaitable[T]]) -> T:
    async with sessions() as session:
        return await work(session)


async def _reading(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Read-only work on a schema brought up to date first, given a session factory: reads take
    no write lock, and the work ends before a long export starts writing, so no transaction
    stays open for the length of an archive."""
    from storage.db import create_engine, session_factory

    await _migrate(settings, quiet_when_current=True)
    engine = create_engine(settings.database_url)
    try:
        return await work(session_factory(engine))
    finally:
        await engine.dispose()


@export_app.command("evidence")
def export_evidence(
    period: Annotated[str, typer.Option(help="Kode periode, mis. B08")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Berkas ZIP tujuan")],
    region: Annotated[
        str | None, typer.Option(help="Kode wilayah; provinsi: beserta kabupaten/kotanya")
    ] = None,
    programme: Annotated[str | None, typer.Option(help="Kode program (bawaan: terbaru)")] = None,
) -> None:
    """Bukti laporan terkirim satu periode: ZIP per provinsi/pemda/aksi/ukuran + manifest.csv."""
    from bot.app import evidence_store
    from storage.evidence_export import evidence_plan, write_evidence_archive

    settings = _settings()
    with _export_errors():
        if output.is_dir() or not output.parent.is_dir():
            err.print(f"[red]Gagal:[/red] {escape(str(output))} bukan berkas di folder yang ada.")
            raise typer.Exit(1)
        plan = _run(
            lambda: _reading(
                settings,
                lambda sessions: _in_session(
                    sessions,
                    lambda s: evidence_plan(
                        session=s, period_code=period, programme_code=programme, region_code=region
                    ),
                ),
            )
        )
        with _progress() as progress:
            result = _run(
                lambda: write_evidence_archive(
                    plan, store=evidence_store(settings), target=output, progress=progress
                )
            )
    where = plan.region_name or "semua wilayah"
    typer.echo(
        f"{plan.period_code} ({plan.programme_title}, {where}): {result.files} berkas, "
        f"{result.bytes / 1_000_000:.1f} MB -> {output}"
    )
    if not plan.files:
        err.print("Belum ada bukti dari laporan terkirim untuk periode dan wilayah ini.")
    for key in result.missing:
        err.print(f"[red]Tidak ada di penyimpanan bukti (dilewati):[/red] {escape(key)}")
    for path in result.damaged:
        err.print(f"[red]Isi berbeda dari saat diunggah:[/red] {escape(path)}")
    if result.missing or result.damaged:
        raise typer.Exit(1)


@export_app.command("verify")
def export_verify(file: Annotated[Path, typer.Argument(help="Arsip ZIP hasil ekspor")]) -> None:
    """Periksa ulang ukuran dan SHA-256 tiap berkas arsip terhadap manifest.csv-nya."""
    from storage.evidence_export import verify_archive

    with _export_errors():
        result = verify_archive(file)
    for mismatch in result.mismatches:
        typer.echo(f"{_printable(mismatch.path)}: {mismatch.kind.value}")
    err.print(f"{result.checked} berkas diperiksa, {len(result.mismatches)} masalah.")
    if not result.ok:
        raise typer.Exit(1)


def _printable(text: str) -> str:
    """A name from an archive someone else may have made: no terminal control characters."""
    return "".join(char if char.isprintable() else "?" for char in text)


@reminders_app.command("plan")
def reminders_plan(
    at: Annotated[
        str | None, typer.Option(help="Waktu uji, mis. 2025-08-25T08:00 (tanpa zona: WIB)")
    ] = None,
) -> None:
    """Tampilkan pengingat yang jatuh tempo pada waktu itu dan jadwal berikutnya (uji coba)."""
    from scheduler.reminders import plan_at
    from scheduler.reminders.operator import plan_lines, upcoming_lines
    from storage.reminders import dated_periods, timezones_in_use

    settings = _settings()
    now = _parse_at(at)

    # Imported numbers that never wrote are reached through WhatsApp only (docs/reminders.md).
    by_phone = "whatsapp" if settings.whatsapp_enabled else None

    async def work(sessions: Any) -> list[str]:
        plan = await plan_at(sessions, now, phone_channel=by_phone, with_unreachable=True)
        async with sessions() as session:
            periods = await dated_periods(session=session)
            zones = await timezones_in_use(session=session)
        return [*plan_lines(plan), "", "Jadwal berikutnya:", *upcoming_lines(periods, zones, now)]

    typer.echo("\n".join(_run(lambda: _reading(settings, work))))


@reminders_app.command("history")
def reminders_history(
    limit: Annotated[int, typer.Option(help="Berapa baris terakhir", min=1, max=10000)] = 50,
) -> None:
    """Tampilkan pengingat dan eskalasi yang sudah ditulis: kapan, kepada siapa, statusnya."""
    from scheduler.reminders.operator import history_lines
    from storage.reminders import reminder_history, unreachable_numbers

    settings = _settings()

    async def work(sessions: Any) -> list[str]:
        async with sessions() as session:
            rows = await reminder_history(session=session, limit=limit)
            refused = await unreachable_numbers(session=session, channel="whatsapp")
            return history_lines(rows, not_on_whatsapp=refused)

    typer.echo("\n".join(_run(lambda: _reading(settings, work))))


@export_app.command("recap")
def export_recap(
    period: Annotated[str, typer.Option("--period", help="Kode periode, mis. B08")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Berkas Excel tujuan (.xlsx)")],
    region: Annotated[
        str | None, typer.Option(help="Kode wilayah, mis. 18 (provinsi beserta kab/kota)")
    ] = None,
    programme: Annotated[str | None, typer.Option(help="Kode program (bawaan: terbaru)")] = None,
) -> None:
    """Rekap Excel suatu periode, sama dengan /rekap: ringkasan dan satu lembar per pemda."""
    from storage.recap.export import recap_for_export, write_atomically
    from storage.types import utcnow

    settings = _settings()
    if output.suffix.lower() != ".xlsx":
        err.print("[red]Gagal:[/red] berkas tujuan harus berakhiran .xlsx, mis. -o rekap-B08.xlsx")
        raise typer.Exit(1)
    with _friendly_errors():
        made = _run(
            lambda: _in_transaction(
                settings,
                lambda s: recap_for_export(
                    session=s,
                    period_code=period,
                    region_code=region,
                    programme_code=programme,
                    now=utcnow(),
                ),
            )
        )
        write_atomically(output, made.workbook)
    typer.echo(f"{output}: {made.pemda} pemda, {made.reports} laporan, {made.sent} terkirim.")


if __name__ == "__main__":
    sys.exit(app())
