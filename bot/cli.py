"""`laporham`: the operator's command line (README.md, "The command line")."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bot.engine.channel import ChannelConfigError
from bot.settings import Settings, get_settings

app = typer.Typer(help="LaporHAM: asisten pelaporan Aksi HAM dan KKPHAM.", no_args_is_help=True)
db_app = typer.Typer(help="Basis data.", no_args_is_help=True)
catalogue_app = typer.Typer(help="Katalog aksi, ukuran, pertanyaan.", no_args_is_help=True)
contacts_app = typer.Typer(help="Wilayah, OPD, kontak dan penugasan.", no_args_is_help=True)
invite_app = typer.Typer(help="Kode undangan pendaftaran.", no_args_is_help=True)
period_app = typer.Typer(help="Jendela periode pelaporan.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(contacts_app, name="contacts")
app.add_typer(invite_app, name="invite")
app.add_typer(period_app, name="period")

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
    from bot.app import configured_channels, prepare_database, run_channels, run_console

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
    err.print(f"LaporHAM berjalan: {names}; HTTP {settings.http_host}:{settings.http_port}.")
    try:
        _run(lambda: run_channels(settings, channels))
    except KeyboardInterrupt:
        err.print("Berhenti.")
    except ChannelConfigError as error:  # a bad token or webhook URL: the operator's to fix
        err.print(f"[red]Konfigurasi salah:[/red] {escape(str(error))}")
        raise typer.Exit(2) from error


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
    """Read and check the file, then write it in one transaction with a progress bar."""
    settings = _settings()
    with _friendly_errors():
        doc = read(file)
        with _progress() as progress:
            report = _run(
                lambda: _in_transaction(
                    settings, lambda s: apply(doc, session=s, progress=progress)
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


if __name__ == "__main__":
    sys.exit(app())
