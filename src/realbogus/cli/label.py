"""`realbogus label`: serve the labelling app, add people, export classifications. No logic here."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import RealBogusError
from .common import fail

label_app = typer.Typer(
    help="A labelling service for real/bogus vetting with active learning (docs/labelling.md).",
    no_args_is_help=True,
)
users_app = typer.Typer(help="People who label: add them with a role.", no_args_is_help=True)
label_app.add_typer(users_app, name="users")

DbOption = Annotated[
    str,
    typer.Option("--db", help="SQLite file path (default engine) or postgresql://USER@HOST/DB."),
]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@label_app.command("serve")
def serve(
    data: Annotated[Path, typer.Argument(help="A realbogus dataset or a folder of alert packets.")],
    db: DbOption = "label.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    strategy: Annotated[
        str | None,
        typer.Option(
            help="Queue order: bald | entropy | likely-real (MC dropout, need --model) | ensemble "
            "(reliabilityErr) | swap | random. Default: likely-real with --model, else swap."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model package (name or path) for MC dropout.")
    ] = None,
    mc_samples: Annotated[int, typer.Option(help="MC-dropout passes.")] = 20,
    gold_fraction: Annotated[
        float, typer.Option(help="Fraction of DATA's labelled detections made gold subjects.")
    ] = 0.0,
    gold_rate: Annotated[
        float, typer.Option(help="Chance that the next subject is an unseen gold one.")
    ] = 0.1,
    stamp_size: Annotated[int, typer.Option(help="Stamp side for alert packets, pixels.")] = 63,
    secure_cookies: Annotated[
        bool | None,
        typer.Option(
            "--secure-cookies/--no-secure-cookies",
            help="Secure (HTTPS-only) session cookie; default on except on loopback hosts.",
        ),
    ] = None,
    swap_interval: Annotated[
        float, typer.Option(help="Least seconds between live SWAP refreshes.")
    ] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the gold draw, dropout masks and order.")] = 0,
    uploads: Annotated[
        Path | None,
        typer.Option(
            help="Folder (outside DATA; made if missing) that keeps alert packets admins upload "
            "on the admin page or POST /api/admin/alerts; they are subjects again after a "
            "restart. Without it uploads are refused.",
        ),
    ] = None,
    max_body_mb: Annotated[
        float, typer.Option(help="Largest request body (an alert upload too), MiB; over: 413.")
    ] = 1.0,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (method, path, status, client); off saves ~5 % CPU per request.",
        ),
    ] = True,
) -> None:
    """Serve the labelling app for DATA, storing subjects and answers in --db."""
    import uvicorn

    from ..label.app import create_app
    from ..label.service import ServiceConfig, prepare_service

    try:
        config = ServiceConfig(
            gold_rate=gold_rate,
            swap_interval_s=swap_interval,
            secure_cookies=not _loopback(host) if secure_cookies is None else secure_cookies,
            max_body_bytes=int(max_body_mb * (1 << 20)),
        )
        service = prepare_service(
            data,
            db,
            config=config,
            strategy=strategy,
            model=model,
            gold_fraction=gold_fraction,
            mc_samples=mc_samples,
            stamp_size=stamp_size,
            seed=seed,
            uploads=uploads,
        )
    except RealBogusError as exc:
        raise fail(exc) from None
    service.live.start()
    try:
        uvicorn.run(
            create_app(service), host=host, port=port, log_level="info", access_log=access_log
        )
    finally:
        service.close()


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (1-64 characters).")],
    role: Annotated[str, typer.Option(help="admin | expert | volunteer.")] = "volunteer",
    db: DbOption = "label.db",
) -> None:
    """Add a person; the password is read from standard input (one line, or a prompt on a
    terminal), never an argument."""
    from ..label.auth import hash_password
    from ..label.store import open_store

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"password for {name}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise fail(RealBogusError(f"{exc}; pipe the password on standard input")) from None
    try:
        store = open_store(db)
        try:
            store.add_user(name, hashed, role)
        finally:
            store.close()
    except RealBogusError as exc:
        raise fail(exc) from None
    typer.echo(f"added {name} ({role})")


@label_app.command("export")
def export(
    db: DbOption = "label.db",
    out: Annotated[Path, typer.Option("--out", help="Output CSV path.")] = Path("export.csv"),
    workflow_id: Annotated[int, typer.Option(help="workflow_id written into every row.")] = 1,
) -> None:
    """Write every classification as a Panoptes-format export (`crowd aggregate` reads it)."""
    from ..label.export import write_export
    from ..label.store import open_store

    try:
        store = open_store(db)
        try:
            write_export(store, out, workflow_id=workflow_id)
        finally:
            store.close()
    except RealBogusError as exc:
        raise fail(exc) from None
    typer.echo(f"wrote {out}")
