"""The `custseg` command line. Errors print one clear line and exit non-zero, no traceback."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from analytics.exports import REGISTRY as EXPORTS
from analytics.layouts import LAYOUTS
from config import ConfigError, Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from db.models import Job
    from db.refit import RefitOutcome

# Ids are database integers: out of this range they could only fail inside the database driver.
DB_ID = click.IntRange(0, 2**31 - 1)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handled[F: Callable[..., Any]](fn: F) -> F:
    """Turn the errors users can fix into one line on stderr and exit status 1 (2 for usage)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from db.importer import ImportRejected

        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            _fail(f"configuration: {exc}")
        except ImportRejected as exc:
            _fail(str(exc))
        except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
            raise
        except ValueError as exc:
            _fail(str(exc))
        except Exception as exc:  # an operational error: say what and where, not a traceback
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                _fail(
                    f"database: cannot use {_safe_url(get_settings().database_url)}: "
                    f"{str(exc.orig).strip().splitlines()[0]}"
                )
            raise

    return wrapper  # type: ignore[return-value]


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from db.session import make_engine

    return make_engine(settings.database_url)


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Customer segmentation: import transactions, segment customers, serve the dashboard."""


@main.command("init-db")
@handled
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations to head)."""
    from db.migrate import upgrade

    settings = get_settings()
    upgrade(_engine(settings))
    click.echo(f"database ready: {_safe_url(settings.database_url)}")


@main.command("create-user")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(["viewer", "analyst", "admin"]), default="viewer", show_default=True
)
@click.option(
    "--password",
    envvar="CUSTSEG_NEW_PASSWORD",
    default=None,
    help="Password (else asked for; or set CUSTSEG_NEW_PASSWORD).",
)
@click.option("--update", is_flag=True, help="Change role and password of an existing user.")
@handled
def create_user(email: str, role: str, password: str | None, update: bool) -> None:
    """Create a user who can log in to the web app."""
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            raise ValueError("no password: pass --password or set CUSTSEG_NEW_PASSWORD")
    assert password is not None
    from db.users import create_user as create

    email = create(_engine(get_settings()), email, password, role, update)
    click.echo(f"user {email} ({role}) {'updated' if update else 'created'}")


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "layout",
    type=click.Choice(list(LAYOUTS)),
    default=None,
    help="Layout of the file, or the shop whose order export it is (default: normalized or "
    "online-retail, recognised from the header).",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="TARGET=SOURCE",
    help="Read column SOURCE as TARGET (normalized names), repeatable.",
)
@click.option("--skip-invalid", is_flag=True, help="Import the valid lines, report the rest.")
@click.option("--encoding", default="utf-8", show_default=True, help="Of a text file.")
@click.option(
    "--delimiter",
    default=None,
    help="Field separator of a text file: , ; | or tab (default: detected from the header).",
)
@click.option(
    "--decimal",
    type=click.Choice([".", ","]),
    default=None,
    help="Decimal point of the amounts (default: detected, e.g. 12,50 means ',').",
)
@click.option(
    "--dayfirst",
    "date_order",
    flag_value="dayfirst",
    default=None,
    help="Dates like 01.02.2024 are day first (1 February).",
)
@click.option(
    "--monthfirst",
    "date_order",
    flag_value="monthfirst",
    help="Dates like 01/02/2024 are month first (January 2).",
)
@click.option("--sheet", default=None, help="Sheet of an .xlsx workbook (default: the first).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handled
def import_cmd(
    file: Path,
    layout: str | None,
    mapping: tuple[str, ...],
    skip_invalid: bool,
    encoding: str,
    delimiter: str | None,
    decimal: str | None,
    date_order: str | None,
    sheet: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Import order lines from a CSV or Excel (.xlsx) file: the normalized or Online Retail
    layout, a shop's order export (--format), or any layout with --map."""
    from tqdm import tqdm

    from db.importer import import_file, parse_delimiter, parse_mapping

    settings = get_settings()
    engine = _engine(settings)
    bar = tqdm(
        unit=" lines",
        unit_scale=True,
        desc="import",
        disable=not _show_progress(quiet),
        file=sys.stderr,
    )
    try:
        report = import_file(
            engine,
            file,
            layout=layout,
            mapping=parse_mapping(mapping),
            skip_invalid=skip_invalid,
            encoding=encoding,
            delimiter=parse_delimiter(delimiter),
            decimal=decimal,
            date_order=date_order,
            sheet=sheet,
            progress=bar.update,
        )
    finally:
        bar.close()
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.summary())


@main.command("demo-data")
@click.option("--customers", type=click.IntRange(1, 20_000_000), default=5_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a CSV instead of importing into the database, and the planted segments "
    "next to it (demo.csv: demo.segments.csv).",
)
@click.option(
    "--end",
    "end_day",
    default="2025-12-31",
    show_default=True,
    help="Last day of the generated history (two years).",
)
@click.option("--quiet", "-q", is_flag=True)
@handled
def demo_data(customers: int, seed: int, out: Path | None, end_day: str, quiet: bool) -> None:
    """Generate a synthetic shop with planted customer segments."""
    import tempfile
    from datetime import date

    from tqdm import tqdm

    from analytics.demo import write_demo_csv
    from db.importer import import_file

    end = date.fromisoformat(end_day)
    show = _show_progress(quiet)
    target = out
    tmp_dir = None
    if target is None:
        tmp_dir = tempfile.TemporaryDirectory(prefix="custseg-demo-")
        target = Path(tmp_dir.name) / f"demo-{customers}-{seed}.csv"
    with tqdm(
        total=customers,
        unit=" customers",
        unit_scale=True,
        desc="generate",
        disable=not show,
        file=sys.stderr,
    ) as bar:
        stats = write_demo_csv(target, customers, seed, end=end, progress=bar.update)
    click.echo(
        f"generated {stats['customers']:,} customers, {stats['orders']:,} orders, "
        f"{stats['lines']:,} lines" + (f" into {target}" if out else "")
    )
    if out is None:
        try:
            with tqdm(
                total=stats["lines"],
                unit=" lines",
                unit_scale=True,
                desc="import",
                disable=not show,
                file=sys.stderr,
            ) as bar:
                report = import_file(
                    _engine(get_settings()),
                    target,
                    progress=bar.update,
                    display_name=f"demo-data customers={customers} seed={seed}",
                )
            click.echo(report.summary())
        finally:
            assert tmp_dir is not None
            tmp_dir.cleanup()


@main.command("bootstrap")
@click.option(
    "--sample",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tests/data/online_retail_sample.csv"),
    show_default=True,
)
@handled
def bootstrap(sample: Path) -> None:
    """Prepare a first run: migrate, import the sample if the database is empty, make an admin
    and the first snapshots.

    Safe to run again: it adds no duplicate data or users.
    """
    from db.bootstrap import bootstrap as run

    engine = _engine(get_settings())
    done = run(engine, get_settings(), sample)
    if done.imported is not None:
        click.echo(done.imported.summary())
    if done.missing_sample is not None:
        click.echo(
            f"no transactions and no sample at {done.missing_sample}; import a file with "
            "`custseg import FILE`"
        )
    if done.admin_email:
        click.echo(f"admin user: {done.admin_email}")
        if done.admin_password:
            click.echo(f"admin password (shown once, change it): {done.admin_password}")
    if done.snapshot_days:
        previous, last = done.snapshot_days
        click.echo(
            f"two first snapshots: as of {previous} (in place of a previous refit, so Migration "
            f"has one to compare with) and as of the last order day, {last}"
        )
    for outcome in done.refits:
        _print_outcome(engine, outcome)
    if done.refit_skipped:
        click.echo(done.refit_skipped)


def _print_outcome(engine: Engine, o: RefitOutcome) -> None:
    from db.snapshots import segments

    click.echo(
        f"snapshot {o.snapshot_id} published: as of {o.as_of}, {o.customers:,} customers, "
        f"k={o.k}, silhouette {o.silhouette:.3f}, {o.duration_s:.1f} s"
    )
    # The names users see: an analyst's rename over the generated name.
    shown = segments(engine, o.snapshot_id)
    names = dict(zip(shown["segment_id"], shown["name"], strict=True))
    for seg in o.segments:
        name = names.get(seg["segment_id"], seg["name"])
        click.echo(
            f"  segment {seg['segment_id']:>3}  {name:<36} "
            f"{seg['customers']:>9,} customers ({seg['share']:.0%})"
        )


def _day(value: str | None, flag: str) -> date | None:
    """A YYYY-MM-DD option (a usage error otherwise); its range is checked where it is used."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=flag) from None


@main.command("refit")
@click.option(
    "--k",
    "k_opt",
    default="auto",
    show_default=True,
    help="Number of segments, or 'auto' to choose k by silhouette score.",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Segment as of this day (YYYY-MM-DD); default: the last order day.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Publish even if the data, settings and as-of date are the latest snapshot's.",
)
@click.option(
    "--predictions/--no-predictions",
    default=True,
    show_default=True,
    help="Attach the predictions after publishing (CUSTSEG_PREDICTIONS=false: never).",
)
@click.option(
    "--files/--no-files",
    default=True,
    show_default=True,
    help="Write the snapshot's files for this machine's web workers after publishing "
    "(CUSTSEG_CACHE_DIR); --no-files where no web worker reads them.",
)
@click.option("--quiet", "-q", is_flag=True)
@handled
def refit_cmd(
    k_opt: str, as_of: str | None, force: bool, predictions: bool, files: bool, quiet: bool
) -> None:
    """Segment customers and publish a new snapshot (in the foreground), write its files for
    the web workers, then attach its predictions."""
    from db.refit import RefitFailed, RefitSkipped, RefitUnchanged, refit, refit_settings

    k: int | None = None
    if k_opt != "auto":
        if not k_opt.isdigit() or not 2 <= int(k_opt) <= 30:
            raise click.BadParameter("use 'auto' or a whole number from 2 to 30", param_hint="--k")
        k = int(k_opt)
    day = _day(as_of, "--as-of")
    stage_echo = (
        (lambda name: click.echo(f"  ... {name}", err=True)) if _show_progress(quiet) else None
    )
    settings = get_settings()
    engine = _engine(settings)
    try:
        outcome = refit(
            engine,
            refit_settings(engine, settings, k),
            as_of=day,
            force=force,
            on_stage=stage_echo,
        )
    except RefitUnchanged as exc:
        click.echo(
            f"{exc}: same data, settings and as-of date; nothing published "
            "(--force to publish anyway)"
        )
        return
    except RefitSkipped as exc:
        click.echo(f"skipped: {exc}")
        return
    except RefitFailed as exc:
        _fail(
            f"refit failed (snapshot {exc.snapshot_id} marked failed; the published snapshot "
            f"is unchanged): {exc}"
        )
        return
    _print_outcome(engine, outcome)
    if files:
        _write_files(engine, settings, outcome.snapshot_id)
    if predictions and settings.predictions:
        if _predict(engine, settings, outcome.snapshot_id, stage_echo) and files:
            _write_files(engine, settings, outcome.snapshot_id)


def _write_files(engine: Engine, settings: Settings, snapshot_id: int) -> None:
    """The snapshot's files for the web workers on this machine (db/snapshot_files.py), as the
    scheduler builds them after its refits; a failure leaves the workers to build them."""
    from db.exporter import write_snapshot_files
    from db.snapshots import get_snapshot

    try:
        kinds, _, seconds = write_snapshot_files(
            engine, settings, get_snapshot(engine, snapshot_id)
        )
    except Exception as exc:  # noqa: BLE001 - the workers build what is missing themselves
        click.echo(
            f"snapshot files not written ({type(exc).__name__}: {exc}); the web app builds them"
        )
        return
    click.echo(
        f"snapshot files ({', '.join(kinds)}) ready in {settings.snapshot_cache_dir} "
        f"({seconds:.1f} s)"
    )


def _predict(engine: Engine, settings: Settings, snapshot_id: int, stage_echo: Any) -> bool:
    """Attach the predictions of a snapshot just published (the segments are already out);
    whether they were attached."""
    from db.predictions import attach_predictions

    click.echo("predictions: fitting (the snapshot is published meanwhile) ...")
    try:
        o = attach_predictions(engine, settings, snapshot_id, stage_echo)
    except Exception as exc:  # noqa: BLE001 - the snapshot stays published without predictions
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"predictions failed (snapshot {snapshot_id} stays published): {first}")
        return False
    unscored = sum(o.unscored.values())
    bt = o.backtest
    quality = ""
    if bt is not None:
        best = next(m for m in bt["models"] if m["model"] == bt["best"])
        quality = (
            f"; backtest ({bt['holdout_days']} days): {best['predicted_orders']:,.0f} orders "
            f"predicted, {best['actual_orders']:,} actual, churn AUC {best['auc']:.2f}"
        )
    click.echo(
        f"predictions attached to snapshot {o.snapshot_id}: {o.scored:,} customers scored"
        + (f", {unscored:,} unscored" if unscored else "")
        + f" ({o.purchase_model}, {o.duration_s:.1f} s){quality}"
    )
    return True


def _job_line(job: Job) -> str:
    outcome = job.error if job.error else job.message
    return f"job {job.id} ({job.kind}, {job.trigger}): {job.status}" + (
        f": {outcome}" if outcome else ""
    )


@main.command("scheduler")
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit.")
@click.option("--parent-pid", type=int, default=None, hidden=True)
@handled
def scheduler_cmd(once: bool, parent_pid: int | None) -> None:
    """Run background jobs: the queued ones ("Refit now") and the periodic ones
    (CUSTSEG_REFIT_CRON), one at a time (a process of its own)."""
    from db.scheduler import Scheduler
    from webapp.logs import setup_logging

    setup_logging()
    settings = get_settings()
    scheduler = Scheduler(_engine(settings), settings)
    if once:
        done = scheduler.drain()
        for job in done:
            click.echo(_job_line(job))
        if not done:
            click.echo("no queued job")
        return
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop`, `custseg serve` stopping
    scheduler.run_forever(settings.scheduler_poll_s, parent_pid)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


@main.command("rename-segment")
@click.argument("segment_id", type=int)
@click.argument("name")
@handled
def rename_segment(segment_id: int, name: str) -> None:
    """Give a segment a name of your own; it follows the segment into later snapshots."""
    from db.segment_names import rename_segment as rename

    name = rename(_engine(get_settings()), segment_id, name, by="cli")
    click.echo(f"segment {segment_id} is now called {name!r}")


def _export_list() -> str:
    """Every export with its columns and the role it needs, from the registry."""
    from analytics.exports import REGISTRY

    flags = {"stages": "stage"}  # a Filters field whose option is named for one value
    lines = []
    for spec in REGISTRY.values():
        names = (flags.get(o, o).replace("_", "-") for o in spec.options)
        options = f"  options: {', '.join('--' + n for n in names)}"
        lines.append(f"{spec.name}  (one row per {spec.row}; role: {spec.role})")
        lines.append(f"  {spec.summary}")
        lines.append(f"  columns: {', '.join(spec.columns)}")
        if spec.options:
            lines.append(options)
    return "\n".join(lines)


def file_options(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--format csv|xlsx and --out FILE of the commands that write an export's file."""

    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--out",
            type=click.Path(dir_okay=False, path_type=Path),
            required=required,
            default=None,
            help="Output file ('-' for standard output, CSV only).",
        )(command)
        return click.option(
            "--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True
        )(command)

    return add


@main.command("export")
@click.argument("chart", required=False, type=click.Choice(list(EXPORTS)))
@click.option("--list", "show_list", is_flag=True, help="List every export and exit.")
@click.option("--start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--segment", "segment_ids", multiple=True, type=DB_ID, help="Segment id, repeatable.")
@click.option(
    "--snapshot", "snapshot_id", type=DB_ID, default=None, help="Snapshot id (default: latest)."
)
@click.option(
    "--granularity", type=click.Choice(["day", "week", "month"]), default="month", show_default=True
)
@click.option("--split-by-segment", is_flag=True, help="Retention per segment.")
@click.option(
    "--month",
    type=click.IntRange(1, 24),
    default=1,
    show_default=True,
    help="retention_trend: months since the first order.",
)
@click.option(
    "--compare-to",
    type=DB_ID,
    default=None,
    help="migration: the snapshot customers come from (default: the previous one).",
)
@click.option("--customer", default=None, help="customer_orders: the customer id.")
@click.option(
    "--stage",
    "stage_names",
    multiple=True,
    help="Lifecycle stage, repeatable (members, lifecycle, stage_matrix, stage_migration), "
    "e.g. --stage 'At risk'.",
)
@click.option(
    "--high-value-high-risk",
    is_flag=True,
    help="members: only customers at high churn risk (CUSTSEG_HIGH_RISK) among the most "
    "valuable (the top CUSTSEG_HIGH_VALUE_SHARE by 12-month CLV).",
)
@file_options(required=False)
@handled
def export_cmd(
    chart: str | None,
    show_list: bool,
    start: str | None,
    end: str | None,
    segment_ids: tuple[int, ...],
    snapshot_id: int | None,
    granularity: str,
    split_by_segment: bool,
    month: int,
    compare_to: int | None,
    customer: str | None,
    stage_names: tuple[str, ...],
    high_value_high_risk: bool,
    fmt: str,
    out: Path | None,
) -> None:
    """Export a chart's data (the same as the page's download button); --list shows them all."""
    from analytics.exports import Filters
    from analytics.exports.spec import parse_stages
    from db.exporter import Exporter
    from db.snapshot_cache import SnapshotCache
    from db.snapshots import NoSnapshot

    if show_list:
        click.echo(_export_list())
        return
    if chart is None:
        raise click.UsageError("name an export (CHART), or use --list")
    if out is None:
        raise click.UsageError("Missing option '--out'.")
    if str(out) == "-" and fmt != "csv":
        raise ValueError("only CSV can go to standard output")
    filters = Filters(
        _day(start, "--start"),
        _day(end, "--end"),
        tuple(segment_ids),
        granularity,
        split_by_segment,
        month=month,
        compare_to=compare_to,
        customer=customer,
        stages=parse_stages(list(stage_names)),
        high_value_high_risk=high_value_high_risk,
    )
    settings = get_settings()
    exporter = Exporter.of(_engine(settings), SnapshotCache(), settings)
    try:
        data, provenance = exporter.file(
            chart, filters, snapshot_id, fmt, row_cap=settings.export_row_cap
        )
    except NoSnapshot as exc:
        raise ValueError(str(exc)) from None
    if str(out) == "-":
        sys.stdout.write(data.decode("utf-8"))
        return
    out.write_bytes(data)
    click.echo(
        f"wrote {provenance['rows']:,} rows of {chart} (snapshot {provenance['snapshot_id']}) "
        f"to {out}",
        err=True,
    )


@contextmanager
def _scheduler_beside(enabled: bool) -> Iterator[subprocess.Popen[bytes] | None]:
    """`custseg scheduler` as a child process while the block runs; stopped (SIGTERM, then
    SIGKILL after 30 s) when it ends. The child also exits if this process dies without
    stopping it (SIGKILL): it watches its parent between jobs."""
    # Werkzeug's reloader runs this command again in a child process: one scheduler only.
    if not enabled or os.environ.get("WERKZEUG_RUN_MAIN") == "true":
        yield None
        return
    child = subprocess.Popen(
        [sys.executable, "-m", "webapp.cli", "scheduler", "--parent-pid", str(os.getpid())]
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=int,
    default=lambda: int(os.environ.get("PORT", "8050")),
    show_default="8050, or $PORT",
)
@click.option(
    "--no-scheduler",
    is_flag=True,
    help="Do not start `custseg scheduler` beside the server (run it yourself).",
)
@handled
def serve(host: str, port: int, no_scheduler: bool) -> None:
    """Serve the dashboard with the development server, and the scheduler process beside it
    (production: gunicorn wsgi:server and `custseg scheduler`)."""
    from webapp.app import create_app

    app = create_app()
    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C, stopping the scheduler too
    with _scheduler_beside(not no_scheduler) as child:
        if child is not None:
            click.echo(f"scheduler: process {child.pid}, stops with the server")
        click.echo(f"serving on http://{host}:{port}")
        app.run(host=host, port=port, debug=get_settings().debug)


def _listed(found: Sequence[Any], as_json: bool, records: list[Any], none: str) -> bool:
    """What a list command prints before its own text: with --json, the `records` of what it
    `found`; when it found nothing, `none` (what to do). True: printed, nothing to add."""
    if as_json:
        click.echo(json.dumps(records, indent=2, default=str))
        return True
    if not found:
        click.echo(none)
        return True
    return False


def _print_table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: set[int]) -> None:
    """Rows under their head in aligned columns (those of index in `right` aligned right)."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())


@main.group("batches")
def batches() -> None:
    """Import batches: one per imported file. List them, remove one."""


@batches.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the batches as JSON.")
@handled
def batches_list(as_json: bool) -> None:
    """Every import batch: id, file, layout, lines, orders, customers, dates, imported."""
    from db.batches import list_batches

    found = list_batches(_engine(get_settings()))
    if _listed(
        found,
        as_json,
        [b.as_dict() for b in found],
        "no import batches; import a file with `custseg import FILE`",
    ):
        return

    def day(value: Any) -> str:
        return str(value.date()) if value else "-"

    rows = [
        (
            str(b.id),
            b.file_name,
            b.layout,
            f"{b.lines:,}",
            f"{b.orders:,}",
            f"{b.customers:,}",
            f"{day(b.first_ordered_at)} .. {day(b.last_ordered_at)}",
            f"{b.imported_at:%Y-%m-%d %H:%M}" + (f" by {b.imported_by}" if b.imported_by else ""),
        )
        for b in found
    ]
    head = ("id", "file", "layout", "lines", "orders", "customers", "dates", "imported")
    _print_table(head, rows, right={0, 3, 4, 5})


@batches.command("remove")
@click.argument("batch_id", type=DB_ID)
@handled
def batches_remove(batch_id: int) -> None:
    """Remove a batch: its lines and its record, all or nothing (the file can then be imported
    again)."""
    from db.batches import remove_batch

    removed = remove_batch(_engine(get_settings()), batch_id, requested_by="cli")
    click.echo(
        f"removed batch {removed.id} ({removed.file_name}): {removed.lines:,} lines; "
        f"refit queued (job {removed.refit_job_id}): the scheduler runs it (or run custseg refit)"
    )
    if removed.snapshots_marked:
        click.echo(
            f"{removed.snapshots_marked} kept snapshot(s) were built from it: the snapshots "
            "export says so"
        )


@main.group("source")
def source() -> None:
    """Database sources: your shop's PostgreSQL or MySQL/MariaDB, read-only, synced into the
    app before each scheduled refit (docs/IMPORT.md, "Database sources")."""


@source.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--table", default=None, help="The table or view of order lines (or --query).")
@click.option("--query", default=None, help="A SELECT giving the order lines (or --table).")
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="TARGET=COLUMN",
    help="Read COLUMN as TARGET (customer_id, order_id, ordered_at, amount, category, country); "
    "repeatable. Unmapped required targets are read from columns of their own name.",
)
@click.option("--key", "key_column", required=True, help="The line key: the order-line id.")
@click.option(
    "--watermark",
    "watermark_column",
    required=True,
    help="A column that grows when a line is added or changed (updated_at, or an increasing id).",
)
@click.option("--password-env", default=None, help="Environment variable holding the password.")
@click.option("--password-file", default=None, help="File holding the password (a secret).")
@click.option("--no-test", is_flag=True, help="Add it without connecting first.")
@handled
def source_add(
    name: str,
    url: str,
    table: str | None,
    query: str | None,
    mapping: tuple[str, ...],
    key_column: str,
    watermark_column: str,
    password_env: str | None,
    password_file: str | None,
    no_test: bool,
) -> None:
    """Add a database source (tested first: a read-only connection and the query)."""
    from db.importer import parse_mapping
    from db.sources import add_source, make_spec, test_source

    spec = make_spec(
        name,
        url,
        table=table,
        query=query,
        mapping=parse_mapping(mapping),
        key_column=key_column,
        watermark_column=watermark_column,
        password_env=password_env,
        password_file=password_file,
    )
    if not no_test:
        probe = test_source(spec)
        click.echo(probe.summary(spec))
        if not probe.ok:
            raise ValueError(f"source {name} not added: fix the problems above")
    add_source(_engine(get_settings()), spec, created_by="cli")
    click.echo(
        f"source {name} added; sync it now with `custseg sync {name}` (the scheduler syncs "
        "every source before each scheduled refit)"
    )


@source.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the sources as JSON.")
@handled
def source_list(as_json: bool) -> None:
    """Every database source: connection (never a password), what it reads, last sync."""
    from dataclasses import asdict

    from db.sources import list_sources

    found = list_sources(_engine(get_settings()))
    if _listed(
        found,
        as_json,
        [asdict(s) for s in found],
        "no database source; add one with `custseg source add`",
    ):
        return
    for s in found:
        synced = f"{s.last_sync_at:%Y-%m-%d %H:%M}" if s.last_sync_at else "never"
        click.echo(f"{s.name}  {s.url}  (password: {s.password_from})")
        click.echo(f"  reads {s.reads}; line key {s.key_column}; watermark {s.watermark_column}")
        click.echo(
            "  maps "
            + ", ".join(f"{t}={c}" for t, c in s.mapping.items())
            + f"; last sync {synced} ({s.last_status or '-'}), up to {s.watermark}; "
            f"{s.lines:,} lines here"
        )


@source.command("test")
@click.argument("name")
@handled
def source_test(name: str) -> None:
    """Connect read-only, run the query, check the line key and the watermark."""
    from db.sources import SourceSpec, get_source, test_source

    spec = SourceSpec.of(get_source(_engine(get_settings()), name))
    probe = test_source(spec)
    click.echo(probe.summary(spec))
    if not probe.ok:
        sys.exit(1)


@source.command("remove")
@click.argument("name")
@handled
def source_remove(name: str) -> None:
    """Remove a source with its sync history and the lines synced from it (all or nothing),
    then queue a refit."""
    from db.sources import remove_source

    gone = remove_source(_engine(get_settings()), name, requested_by="cli")
    click.echo(f"removed source {gone.name}: {gone.batches} batch(es), {gone.lines:,} lines")
    if gone.refit_job_id is not None:
        click.echo(f"refit queued (job {gone.refit_job_id}): the scheduler runs it")


@main.command("sync")
@click.argument("name", required=False)
@click.option(
    "--full",
    is_flag=True,
    help="Read every line again, not only those after the "
    "last watermark (unchanged lines stay as they are).",
)
@click.option("--no-refit", is_flag=True, help="Do not queue a refit when the data changed.")
@handled
def sync_cmd(name: str | None, full: bool, no_refit: bool) -> None:
    """Sync a database source (default: every source): new and changed lines, and lines
    deleted at the source; then queue a refit if the data changed."""
    from db.sources import NoSuchSource, get_source, sync_sources

    engine = _engine(get_settings())
    if name is not None:
        get_source(engine, name)  # NoSuchSource: one line
    run = sync_sources(
        engine, [name] if name else None, full=full, refit=not no_refit, requested_by="cli"
    )
    if not run.outcomes and not run.failures:
        raise NoSuchSource("no database source; add one with `custseg source add`")
    for outcome in run.outcomes:
        if outcome.report is not None:
            click.echo(outcome.report.summary())
        click.echo(outcome.line())
    if run.refit_job_id is not None:
        click.echo(f"refit queued (job {run.refit_job_id}): the scheduler runs it")
    for _source, error in run.failures:
        click.echo(f"error: {error}", err=True)
    if run.failures:
        sys.exit(1)


@main.command("notify")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would be sent for the latest snapshot; send and record nothing.",
)
@click.option(
    "--snapshot", "snapshot_id", type=DB_ID, default=None, help="Snapshot id (default: latest)."
)
@handled
def notify_cmd(dry_run: bool, snapshot_id: int | None) -> None:
    """Check the alert rules and send the digests due now (the scheduler's daily run does this
    too); --dry-run prints every message instead, digests "after every refit" included."""
    from db.notify import plan, run_notify

    settings = get_settings()
    engine = _engine(settings)
    if not dry_run:
        report = run_notify(engine, settings, snapshot_id=snapshot_id, daily=True)
        for note in report.notes:
            click.echo(f"note: {note}")
        click.echo(report.summary())
        return
    p = plan(engine, settings, snapshot_id=snapshot_id, daily=True, resend=True)
    if p is None:
        click.echo("no snapshot yet: nothing to send")
        return
    click.echo(
        f"dry run for snapshot {p.snapshot.id} (as of {p.snapshot.as_of}): nothing is sent "
        "or recorded"
    )
    for note in p.notes:
        click.echo(f"note: {note}")
    for rc in p.checks:
        what = rc.check.message if rc.check is not None else rc.note
        fires = ": FIRES" if rc.fires else ""
        click.echo(f"rule #{rc.rule_id} {rc.name} ({rc.before} -> {rc.after}{fires}): {what}")
    if not p.checks:
        click.echo("no alert rule to check")
    for m in p.messages:
        refused = f" [not sent: {m.refused}]" if m.refused else ""
        click.echo(f"\n--- {m.what} by {m.channel} to {m.recipient}{refused}\n{m.subject}")
        click.echo(m.text.rstrip())
    if not p.messages:
        click.echo("no message to send")


# --- campaigns ---------------------------------------------------------------------------------

CLI_ACTOR = "cli"


@main.group("campaign")
def campaign() -> None:
    """Campaigns: freeze an audience with a random holdout, export the treatment list for the
    sending tool, and measure the lift against the holdout."""


def _rule_from_options(
    segments: tuple[int, ...],
    stages: tuple[str, ...],
    countries: tuple[str, ...],
    where: tuple[str, ...],
) -> dict[str, Any]:
    """The rule's JSON from the command's options (checked by analytics.campaigns.parse_rule).

    --where FIELD=VALUES: a set field takes values separated by commas, a range field
    LOW:HIGH with either end empty (recency_days=:90, monetary=100:)."""
    from analytics.campaigns import FIELDS

    rule: dict[str, Any] = {}
    if segments:
        rule["segment"] = list(segments)
    if stages:
        rule["stage"] = list(stages)
    if countries:
        rule["country"] = list(countries)
    for item in where:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in FIELDS:
            raise click.BadParameter(
                f"{item!r}: use FIELD=VALUES with FIELD one of {', '.join(FIELDS)}",
                param_hint="--where",
            )
        if name in rule:
            raise click.BadParameter(f"{name} is given twice", param_hint="--where")
        field = FIELDS[name]
        if field.kind == "set":
            values: list[Any] = [v.strip() for v in text.split(",") if v.strip()]
            if field.dtype == "int":
                if not all(v.isdigit() for v in values):
                    raise click.BadParameter(f"{name}: ids are whole numbers", param_hint="--where")
                values = [int(v) for v in values]
            rule[name] = values
            continue
        low, colon, high = text.partition(":")
        if not colon:
            raise click.BadParameter(
                f"{name}: a range is LOW:HIGH (either may be empty)", param_hint="--where"
            )
        bounds = []
        for end in (low.strip(), high.strip()):
            try:
                bounds.append(None if not end else float(end) if "." in end else int(end))
            except ValueError:
                raise click.BadParameter(
                    f"{name}: {end!r} is not a number", param_hint="--where"
                ) from None
        rule[name] = bounds
    return rule


def _share(value: str) -> float:
    text = value.strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a share (0.1 or 10%)", param_hint="--holdout"
        ) from None


def _lift_text(lift: float | None, low: float | None, high: float | None, points: bool) -> str:
    """'+2.1 pts [-0.4, +4.6]' (conversion) or '+3.20 [-1.10, +7.50]'; '-' before results."""
    import math

    values = (lift, low, high)
    if any(v is None or math.isnan(v) for v in values):
        return "-"
    a, b, c = (float(v) * (100 if points else 1) for v in values)  # type: ignore[arg-type]
    if points:
        return f"{a:+.1f} pts [{b:+.1f}, {c:+.1f}]"
    return f"{a:+,.2f} [{b:+,.2f}, {c:+,.2f}]"


@campaign.command("create")
@click.argument("name")
@click.option("--start", required=True, help="First day of the campaign (YYYY-MM-DD).")
@click.option("--end", default=None, help="Last day (YYYY-MM-DD); default: open-ended.")
@click.option(
    "--snapshot",
    "snapshot_id",
    type=DB_ID,
    default=None,
    help="Draw from this snapshot (default: the latest).",
)
@click.option("--segment", "segment_ids", multiple=True, type=DB_ID, help="Segment id, repeatable.")
@click.option("--stage", "stages", multiple=True, help="Lifecycle stage, repeatable.")
@click.option(
    "--country",
    "countries",
    multiple=True,
    help="Country, repeatable: each customer's latest country in the transactions.",
)
@click.option(
    "--where",
    multiple=True,
    metavar="FIELD=VALUES",
    help="Any rule field: recency_days=:90, frequency=2:, monetary=100:500, stage=Champions,"
    "Loyal, predicted_value=200: (fields: analytics/campaigns.py FIELDS). Repeatable.",
)
@click.option("--holdout", default="10%", show_default=True, help="Share held out (0.1 or 10%).")
@click.option(
    "--seed",
    type=click.IntRange(0, 2**62),
    default=None,
    help="Seed of the split (default: a random one, stored with the campaign).",
)
@handled
def campaign_create(
    name: str,
    start: str,
    end: str | None,
    snapshot_id: int | None,
    segment_ids: tuple[int, ...],
    stages: tuple[str, ...],
    countries: tuple[str, ...],
    where: tuple[str, ...],
    holdout: str,
    seed: int | None,
) -> None:
    """Freeze the customers of a snapshot that match a rule, split them into treatment and
    holdout (seeded, stratified by segment), and record the campaign."""
    from analytics.campaigns import FIELDS, parse_rule
    from db import campaigns, snapshots
    from db.exporter import Exporter
    from db.snapshot_cache import SnapshotCache

    rule = parse_rule(_rule_from_options(segment_ids, stages, countries, where))
    settings = get_settings()
    engine = _engine(settings)
    try:
        src = Exporter.of(engine, SnapshotCache(), settings).sources(snapshot_id)
    except snapshots.NoSnapshot as exc:
        raise ValueError(str(exc)) from None
    snap = src.snap
    customers = campaigns.rule_frame(src, rule)
    if any(FIELDS[n].source == "transactions" for n in rule.fields):
        countries_of = campaigns.customer_countries(engine, snap.as_of)
        customers = customers.assign(country=customers["customer_id"].map(countries_of))
    made = campaigns.create(
        engine,
        name=name,
        rule=rule,
        snapshot=snap,
        customers=customers,
        segments=src.segments,
        holdout_share=_share(holdout),
        start=_day(start, "--start"),
        end=_day(end, "--end"),
        seed=seed,
        created_by=CLI_ACTOR,
    )
    click.echo(
        f"campaign {made.id} created: {made.treatment_size + made.holdout_size:,} customers of "
        f"snapshot {snap.id} ({made.rule_text}); treatment {made.treatment_size:,}, holdout "
        f"{made.holdout_size:,} ({made.holdout_share:.0%}, seed {made.seed})"
    )
    click.echo(f"export the treatment list: custseg campaign export {made.id} --out list.csv")


@campaign.command("list")
@click.option(
    "--status",
    type=click.Choice(["draft", "running", "ended"]),
    default=None,
    help="Only campaigns in this status (from their dates).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the campaigns as JSON.")
@handled
def campaign_list(status: str | None, as_json: bool) -> None:
    """Every campaign: status, dates, sizes and the lift so far (95% interval in brackets)."""
    from db import campaigns

    found = campaigns.list_campaigns(_engine(get_settings()))
    if status:
        found = found[found["status"] == status]
    if as_json:
        click.echo(found.to_json(orient="records", date_format="iso", indent=2))
        return
    if found.empty:
        click.echo(
            "no campaign" + (f" {status}" if status else "") + "; create one with "
            "`custseg campaign create NAME --segment ID --start YYYY-MM-DD`"
        )
        return
    head = (
        "id",
        "name",
        "status",
        "dates",
        "treatment",
        "holdout",
        "conversion lift",
        "revenue/customer lift",
    )
    rows = [
        (
            str(r.campaign_id),
            str(r.name),
            str(r.status),
            f"{r.start_date} .. {r.end_date or 'open'}",
            f"{r.treatment:,}",
            f"{r.holdout:,}",
            _lift_text(r.conversion_lift, r.conversion_low, r.conversion_high, True),
            _lift_text(r.revenue_lift, r.revenue_low, r.revenue_high, False),
        )
        for r in found.itertuples()
    ]
    _print_table(head, rows, right={0, 4, 5})


@campaign.command("export")
@click.argument("campaign_id", type=DB_ID)
@file_options(required=True)
@handled
def campaign_export(campaign_id: int, fmt: str, out: Path) -> None:
    """Write a campaign's treatment list for the sending tool (never its holdout), with its
    provenance; the export is recorded in the campaign's log."""
    from db import campaigns
    from db.exporter import Exporter
    from db.snapshot_cache import SnapshotCache
    from db.snapshots import NoSnapshot

    if str(out) == "-" and fmt != "csv":
        raise ValueError("only CSV can go to standard output")
    settings = get_settings()
    engine = _engine(settings)
    try:
        data, _, provenance = campaigns.export_treatment(
            engine,
            Exporter.of(engine, SnapshotCache(), settings),
            campaign_id,
            fmt,
            row_cap=settings.export_row_cap,
            by=CLI_ACTOR,
        )
    except (NoSnapshot, campaigns.UnknownCampaign) as exc:
        raise ValueError(str(exc)) from None
    if str(out) == "-":
        sys.stdout.write(data.decode("utf-8"))
        return
    out.write_bytes(data)
    click.echo(
        f"wrote {provenance['rows']:,} treatment customers of campaign {campaign_id} to {out}",
        err=True,
    )


@campaign.command("report")
@click.argument("campaign_id", type=DB_ID)
@click.option(
    "--measure",
    is_flag=True,
    help="Measure now from the transactions (else: the last results of the campaign_results "
    "job, which runs after imports and daily).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handled
def campaign_report(campaign_id: int, measure: bool, as_json: bool) -> None:
    """A campaign's results: per group, the campaign window and the same number of days before
    it; the lift of treatment over holdout with its 95% interval, and what it means."""
    from db import campaigns

    engine = _engine(get_settings())
    try:
        if measure:
            campaigns.measure(engine, campaign_id)
        got = campaigns.report(engine, campaign_id)
    except campaigns.UnknownCampaign as exc:
        raise ValueError(str(exc)) from None
    c = got.campaign
    if as_json:
        doc = {
            "campaign_id": c.id,
            "name": c.name,
            "status": got.status,
            "rule": c.rule_text,
            "snapshot_id": c.snapshot_id,
            "start_date": str(c.start_date),
            "end_date": str(c.end_date) if c.end_date else None,
            "treatment": c.treatment_size,
            "holdout": c.holdout_size,
            "results_at": str(c.results_at) if c.results_at else None,
            "results_through": str(c.results_through) if c.results_through else None,
            "note": c.results_note,
            "groups": json.loads(got.groups.to_json(orient="records", date_format="iso")),
            "lifts": json.loads(got.lifts.to_json(orient="records")),
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(
        f"campaign {c.id}: {c.name} ({got.status}, {c.start_date} .. {c.end_date or 'open'})"
    )
    click.echo(f"  audience: {c.rule_text}; snapshot {c.snapshot_id} (as of {c.snapshot_as_of})")
    click.echo(
        f"  treatment {c.treatment_size:,}, holdout {c.holdout_size:,} "
        f"({c.holdout_share:.0%}, seed {c.seed})"
    )
    if got.groups.empty:
        click.echo(f"  no results yet: {c.results_note or 'not measured yet'}")
        return
    click.echo(f"  measured {c.results_at:%Y-%m-%d %H:%M} UTC, through {c.results_through}")
    click.echo(
        f"  {'period':<24} {'group':<10} {'customers':>9} {'buyers':>7} {'conversion':>10} "
        f"{'orders':>7} {'revenue/customer':>16} {'AOV':>9}"
    )

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None or value != value else format(value, fmt)

    for r in got.groups.itertuples():
        days = f"{r.period} {r.first_day}..{r.last_day}"
        conversion = num(r.conversion * 100 if r.conversion is not None else None, ".1f")
        click.echo(
            f"  {days:<24} {r.group:<10} {r.customers:>9,} {r.buyers:>7,} {conversion:>9}% "
            f"{r.orders:>7,} {num(r.revenue_per_customer, ',.2f'):>16} {num(r.aov, ',.2f'):>9}"
        )
    for r in got.lifts.itertuples():
        click.echo(f"  {r.metric}: {r.verdict}")


if __name__ == "__main__":
    main()
