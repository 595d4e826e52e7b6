"""Digests and alerts end to end: a real SMTP server (aiosmtpd) and an HTTP receiver on this
machine, a demo shop whose "lapsed" segment shrinks when most of its customers come back, refits
run as jobs by the scheduler (the refit queues the `notify` job, the scheduler runs it)."""

from __future__ import annotations

import email
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from analytics.demo import generate
from analytics.exports import Filters
from config import Settings
from db import jobs, snapshots
from db.importer import import_file
from db.models import (
    AlertEvent,
    AlertRule,
    Delivery,
    DeliveryStatus,
    JobStatus,
    RuleState,
    Subscription,
    Trigger,
    User,
)
from db.notifications import (
    NotificationError,
    create_rule,
    get_subscription,
    save_subscription,
)
from db.refit import RefitOutcome
from db.scheduler import SCHEDULE, Scheduler
from tests.conftest import (
    add_user,
    as_user,
    bare_settings,
    export_frame,
    forget_page_duplicates,
    free_port,
    login,
    make_settings,
    page,
)
from tests.helpers import _ids_and_props, callback_body
from tests.refitting import refit

PUBLIC = "http://analytics.shop.example"
SENDER = "Shop analytics <analytics@shop.example>"
END = date(2025, 12, 31)


# --- a local SMTP server and HTTP receiver -----------------------------------------------------


@dataclass
class Inbox:
    """What the SMTP server received; it answers 451 to the first `fail_first` messages."""

    fail_first: int = 0
    calls: int = 0
    messages: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.calls += 1
        if self.calls <= self.fail_first:
            return "451 4.3.0 Mailbox busy, try again later"
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def parsed(self) -> list[tuple[str, EmailMessage]]:
        return [
            (rcpt[0], email.message_from_bytes(raw, policy=default_policy))  # type: ignore[misc]
            for rcpt, raw in self.messages
        ]


@contextmanager
def smtp_server(fail_first: int = 0) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox(fail_first)
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@contextmanager
def http_receiver(status: int = 200) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """A webhook receiver on 127.0.0.1: the JSON bodies it got (with their path)."""
    posts: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            posts.append({"path": self.path, "body": json.loads(body)})
            self.send_response(status)
            if status in (301, 302):
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield posts, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# --- the shop: most "lapsed" customers come back in December -----------------------------------


@pytest.fixture(scope="module")
def shop_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """The demo shop (2,000 customers), and a second file in which 60% of its planted lapsed
    customers order three times in the last four weeks (the same last day: 2025-12-31)."""
    folder = tmp_path_factory.mktemp("notify-shop")
    lines, planted = generate(2_000, seed=7, end=END)
    lines.to_csv(folder / "base.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S")
    lapsed = planted.loc[planted["planted_segment"] == "lapsed", "customer_id"]
    back = sorted(lapsed.sample(frac=0.6, random_state=1))
    rng = np.random.default_rng(3)
    rows = [
        {
            "customer_id": customer,
            "order_id": f"R{i:05d}{j}",
            "ordered_at": f"{END - timedelta(days=int(rng.integers(0, 28)))}T12:00:00",
            "amount": round(float(rng.uniform(60, 120)), 2),
            "category": "home",
            "country": "Germany",
        }
        for i, customer in enumerate(back)
        for j in range(3)
    ]
    pd.DataFrame(rows).to_csv(folder / "back.csv", index=False)
    return folder / "base.csv", folder / "back.csv", list(lapsed)


def notify_settings(tmp_path: Path, engine: Engine, smtp_port: int, **extra: Any) -> Settings:
    url = engine.url.render_as_string(hide_password=False)
    values: dict[str, Any] = dict(
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        smtp_from=SENDER,
        public_url=PUBLIC,
        webhook_hosts="127.0.0.1",
        notify_backoff_s=0,
    )
    values.update(extra)
    return make_settings(tmp_path, url, **values)


def user_ids(engine: Engine) -> dict[str, int]:
    with Session(engine) as db:
        return {u.role: u.id for u in db.scalars(select(User))}


def users(engine: Engine) -> dict[str, int]:
    for role in ("viewer", "analyst", "admin"):
        add_user(engine, f"{role}@example.com", role)
    return user_ids(engine)


def users_and_first_snapshot(
    engine: Engine, shop_files: tuple[Path, Path, list[str]]
) -> tuple[dict[str, int], RefitOutcome]:
    """The three users (their ids by role) and the shop's first snapshot, k=5 (before any
    lapsed customer comes back)."""
    ids = users(engine)
    import_file(engine, shop_files[0])
    return ids, refit(engine, k=5)


def refit_job(engine: Engine, settings: Settings, **params: Any) -> list[Any]:
    """Queue a refit as "Refit now" does and let the scheduler run the queue (the refit, then
    the files and notify jobs it queues); the jobs it ran."""
    jobs.enqueue(engine, "refit", {"k": 5, **params}, trigger=Trigger.WEB)
    return Scheduler(engine, settings).drain()


# A refit job that queued the files and notify jobs, and each of them done.
REFIT_FILES_NOTIFY_DONE = [
    ("refit", JobStatus.DONE),
    ("files", JobStatus.DONE),
    ("notify", JobStatus.DONE),
]


def kinds_and_statuses(ran: list[Any]) -> list[tuple[str, JobStatus]]:
    return [(j.kind, j.status) for j in ran]


def lapsed_segment(engine: Engine, snapshot_id: int, lapsed: list[str]) -> int:
    found = snapshots.customers(engine, snapshot_id)
    return int(found[found["customer_id"].isin(lapsed)]["segment_id"].mode()[0])


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def viewer_refit_digest(
    engine: Engine, tmp_path: Path, shop_files: tuple[Path, Path, list[str]]
) -> tuple[Settings, EmailMessage]:
    """The shop's first snapshot; the viewer subscribes to a digest after each refit; the lapsed
    customers come back and a refit job runs: its settings and the one digest it sent."""
    _, back, _ = shop_files
    ids, _ = users_and_first_snapshot(engine, shop_files)
    with smtp_server() as (inbox, port):
        settings = notify_settings(tmp_path, engine, port)
        save_subscription(engine, ids["viewer"], "refit")
        import_file(engine, back)
        refit_job(engine, settings)
    ((_, msg),) = inbox.parsed()
    return settings, msg


# --- the whole path ----------------------------------------------------------------------------


def test_a_refit_with_a_shrunk_segment_sends_digests_and_fires_the_alert_once(
    engine: Engine, tmp_path: Path, shop_files: tuple[Path, Path, list[str]]
) -> None:
    _, back, lapsed = shop_files
    ids, first = users_and_first_snapshot(engine, shop_files)
    with smtp_server() as (inbox, port), http_receiver() as (posts, hook_port):
        settings = notify_settings(tmp_path, engine, port)
        save_subscription(engine, ids["viewer"], "refit", period_days=30)
        save_subscription(engine, ids["analyst"], "refit", period_days=30)
        save_subscription(engine, ids["admin"], "weekly", weekday=(date.today().weekday() + 3) % 7)
        shrinking = lapsed_segment(engine, first.snapshot_id, lapsed)
        create_rule(
            engine,
            settings,
            name="Lapsed shrinks",
            kind="segment_change",
            params={
                "segment_id": shrinking,
                "measure": "customers",
                "direction": "down",
                "threshold_pct": 30,
            },
            email_user_ids=[ids["analyst"]],
            webhook_url=f"http://127.0.0.1:{hook_port}/hooks/T000/B000/secret",
        )
        other = next(
            int(s)
            for s in snapshots.segments(engine, first.snapshot_id)["segment_id"]
            if int(s) != shrinking
        )
        create_rule(  # true after the returns, and still true after the forced refit
            engine,
            settings,
            name="Revenue up",
            kind="kpi_change",
            params={
                "metric": "gross_revenue",
                "period_days": 30,
                "direction": "up",
                "threshold_pct": 50,
            },
            email_user_ids=[ids["viewer"]],
        )
        create_rule(  # a segment that does not move: never fires
            engine,
            settings,
            name="Quiet segment",
            kind="segment_change",
            params={
                "segment_id": other,
                "measure": "share",
                "direction": "either",
                "threshold_pct": 80,
            },
            email_user_ids=[ids["analyst"]],
        )
        import_file(engine, back)

        ran = refit_job(engine, settings)
        assert kinds_and_statuses(ran) == REFIT_FILES_NOTIFY_DONE
        second = snapshots.get_snapshot(engine)
        assert second.id == ran[0].snapshot_id and second.previous_id == first.snapshot_id
        sent = inbox.parsed()
        digests = {to: m for to, m in sent if m["Subject"].startswith("Customer digest")}
        alerts = [(to, m) for to, m in sent if m["Subject"].startswith("Alert")]
        assert sorted(digests) == ["analyst@example.com", "viewer@example.com"]
        assert [(to, m["Subject"]) for to, m in alerts] == [
            ("analyst@example.com", "Alert: Lapsed shrinks"),
            ("viewer@example.com", "Alert: Revenue up"),
        ]
        assert len(posts) == 1 and posts[0]["path"] == "/hooks/T000/B000/secret"
        hook = posts[0]["body"]
        assert hook["alert"]["rule"] == "Lapsed shrinks" and hook["alert"]["change"] < -0.3
        assert hook["link"] == f"{PUBLIC}/segments?segment={shrinking}&snapshot={second.id}"
        assert hook["text"].startswith("*Alert: Lapsed shrinks*") and "shrank" in hook["text"]

        digest = digests["viewer@example.com"]
        check_digest_figures(engine, digest, second.id, first.snapshot_id, shrinking)
        check_headers(settings, digest)
        alert_text = text_part(alerts[0][1])
        assert "shrank" in alert_text and f"since snapshot {first.snapshot_id}" in alert_text
        check_headers(settings, alerts[0][1])
        comparison, _ = export_frame(
            engine, "kpi_comparison", Filters(END - timedelta(days=29), END), second.id
        )
        revenue = comparison.set_index("metric").loc["gross_revenue"]
        assert (
            f"Gross revenue rose {revenue['change'] * 100:.1f}% to {revenue['current']:,.0f} in "
            f"the last 30 days to {END}, from {revenue['previous']:,.0f}"
        ) in text_part(alerts[1][1])

        # A forced refit of the same data: the digests again, no alert. Revenue is still up
        # (that rule stays fired: not again until it has been false); the segment did not move
        # since the last snapshot (its rule is armed again, silently).
        before = len(inbox.messages)
        ran = refit_job(engine, settings, force=True)
        assert kinds_and_statuses(ran) == REFIT_FILES_NOTIFY_DONE
        again = [m for _, m in inbox.parsed()[before:]]
        assert (
            sorted(m["Subject"].split(":")[0] for m in again)
            == [f"Customer digest as of {END}"] * 2
        )
        assert len(posts) == 1

    with Session(engine) as db:
        events = list(db.scalars(select(AlertEvent)))
        assert [(e.rule_name, e.snapshot_id) for e in events] == [
            ("Lapsed shrinks", second.id),
            ("Revenue up", second.id),
        ]
        rules = {r.name: r for r in db.scalars(select(AlertRule))}
        assert rules["Lapsed shrinks"].state == RuleState.ARMED  # false again at the third
        assert rules["Revenue up"].state == RuleState.FIRED  # still true: quiet
        assert rules["Quiet segment"].state == RuleState.ARMED
        assert {r.last_snapshot_id for r in rules.values()} == {second.id + 1}
        statuses = db.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        assert dict(statuses) == {DeliveryStatus.SENT: 7}  # 2 + 2 digests, 2 alerts, a webhook
        weekly = db.scalar(select(Subscription).where(Subscription.user_id == ids["admin"]))
        assert weekly is not None and weekly.last_sent_at is None  # not its day


def check_headers(settings: Settings, msg: EmailMessage) -> None:
    assert msg["From"] == SENDER and msg["Auto-Submitted"] == "auto-generated"
    assert msg.is_multipart() and msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    link = msg["List-Unsubscribe"].strip("<>")
    assert link.startswith(f"{PUBLIC}/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link in text_part(msg) and link in html_part(msg)


def kpi_lines(text: str) -> dict[str, str]:
    """The digest's KPI block as label -> figure (the plain-text part)."""
    lines = text.split("HEADLINE FIGURES", 1)[1].splitlines()[1:]
    found = {}
    for line in lines[: lines.index("")]:
        match = re.match(r"  (.+?)\s{2,}(\S+)\s{3}", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def check_digest_figures(
    engine: Engine, msg: EmailMessage, snapshot_id: int, previous_id: int, shrinking: int
) -> None:
    """The digest says what the exports say, in both parts."""
    text, html = text_part(msg), html_part(msg)
    start = END - timedelta(days=29)
    kpis, _ = export_frame(engine, "kpis", Filters(start, END), snapshot_id, role="viewer")
    row = kpis.iloc[0]
    expected = {
        "Customers": f"{int(row['customers']):,}",
        "Active customers": f"{int(row['active_customers']):,}",
        "Orders": f"{int(row['orders']):,}",
        "Returns": f"{int(row['returns']):,}",
        "Gross revenue": f"{row['gross_revenue']:,.0f}",
        "Net revenue": f"{row['net_revenue']:,.0f}",
        "AOV": f"{row['aov']:,.2f}",
        "Repeat rate": f"{row['repeat_rate'] * 100:.1f}%",
    }
    assert kpi_lines(text) == expected
    for value in expected.values():
        assert f">{value}</div>" in html
    comparison, _ = export_frame(engine, "kpi_comparison", Filters(start, END), snapshot_id)
    change = comparison.set_index("metric").loc["gross_revenue", "change"]
    assert f"Gross revenue rose {change * 100:.1f}%" in text
    assert f"last 30 days ({start} to {END})" in text

    now, _ = export_frame(engine, "segments", Filters(), snapshot_id, role="viewer")
    then, _ = export_frame(engine, "segments", Filters(), previous_id, role="viewer")
    earlier = dict(zip(then["segment_id"], then["customers"], strict=True))
    for seg in now.itertuples():
        diff = int(seg.customers) - int(earlier[seg.segment_id])
        line = next(x for x in text.splitlines() if x.startswith(f"  {seg.name} "))
        assert re.search(rf"\b{int(seg.customers):,}\b", line), line
        assert f"{seg.share * 100:.1f}%" in line
        assert (f"{diff:+,}" if diff else "=") in line
        assert f">{int(seg.customers):,}</td>" in html
    shrunk = now.set_index("segment_id").loc[shrinking]
    pct = (int(shrunk["customers"]) - earlier[shrinking]) / earlier[shrinking] * 100
    assert f"“{shrunk['name']}” shrank {abs(pct):.0f}% since snapshot {previous_id}" in text

    moves, _ = export_frame(engine, "migration", Filters(), snapshot_id, role="viewer")
    between = moves[(moves.from_segment != moves.to_segment) & (moves.from_segment >= 0)]
    top = between[between.to_segment >= 0].sort_values("customers").iloc[-1]
    names = dict(zip(now["segment_id"], now["name"], strict=True))
    sentence = (
        f"{int(top.customers):,} customers moved from “{names[top.from_segment]}” to "
        f"“{names[top.to_segment]}”, {top.gross_revenue:,.0f} of their revenue"
    )
    assert int(top.from_segment) == shrinking and sentence in text and sentence in html


def dash_view(client: Any, path: str, search: str) -> dict[str, Any]:
    """The filter bar's values of `path?search` as Dash's page router lays it out."""
    deps = client.get("/_dash-dependencies").get_json()
    router = next(d for d in deps if "_pages_content" in d["output"])
    body = callback_body(
        router, {"_pages_location.pathname": path, "_pages_location.search": search}
    )
    resp = client.post("/_dash-update-component", json=body)
    assert resp.status_code == 200, resp.get_data(True)[:300]
    props = _ids_and_props(resp.get_json())
    return {
        "start": props.get("f-dates", {}).get("start_date"),
        "end": props.get("f-dates", {}).get("end_date"),
        "segments": props.get("f-segments", {}).get("value"),
        "snapshot": props.get("f-snapshot", {}).get("value"),
    }


def test_the_digest_links_open_their_filtered_view_after_login(
    sqlite_engine: Engine, tmp_path: Path, shop_files: tuple[Path, Path, list[str]]
) -> None:
    from webapp.app import create_app
    from webapp.auth import limiter

    settings, msg = viewer_refit_digest(sqlite_engine, tmp_path, shop_files)
    snap = snapshots.get_snapshot(sqlite_engine)
    links = [unescape(u) for u in re.findall(r'href="([^"]+)"', html_part(msg))]
    pages = [u for u in dict.fromkeys(links) if "/unsubscribe/" not in u]
    assert len(pages) >= 5 and all(u.startswith(PUBLIC) for u in pages)
    assert all(u in text_part(msg) for u in pages if "segment=" not in u)

    forget_page_duplicates()
    app = create_app(settings, sqlite_engine)
    limiter.reset()
    client = app.server.test_client()
    checked = 0
    for url in pages:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        resp = client.get(target)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login?next=")
        resp = login(client, next=target)
        assert resp.status_code == 302 and resp.headers["Location"] == target
        assert client.get(target).status_code == 200
        with client.session_transaction() as session:
            session.clear()  # log out: the next link starts from the login again
        if parts.path == "/notifications":
            continue
        login(client)
        query = parse_qs(parts.query)
        view = dash_view(client, parts.path, f"?{parts.query}")
        assert view["snapshot"] == snap.id == int(query["snapshot"][0])
        if "start" in query:
            assert (view["start"], view["end"]) == (query["start"][0], query["end"][0])
            assert query["end"][0] == str(snap.data_end)
        if "segment" in query:
            assert view["segments"] == [int(query["segment"][0])]
        checked += 1
        with client.session_transaction() as session:
            session.clear()
    assert checked >= 4


# --- failures never block a refit --------------------------------------------------------------


def test_a_failing_smtp_server_is_retried_and_logged_and_the_refit_still_publishes(
    sqlite_engine: Engine,
    tmp_path: Path,
    shop_files: tuple[Path, Path, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, back, _ = shop_files
    ids, _ = users_and_first_snapshot(sqlite_engine, shop_files)
    save_subscription(sqlite_engine, ids["viewer"], "refit")
    save_subscription(sqlite_engine, ids["analyst"], "refit")
    import_file(sqlite_engine, back)
    waits: list[float] = []
    with smtp_server(fail_first=3) as (inbox, port):
        settings = notify_settings(
            tmp_path, sqlite_engine, port, notify_retries=3, notify_backoff_s=5
        )
        monkeypatch.setattr("db.delivery.time.sleep", waits.append)  # the backoff's waits
        ran = refit_job(sqlite_engine, settings)
    assert kinds_and_statuses(ran) == REFIT_FILES_NOTIFY_DONE
    assert snapshots.get_snapshot(sqlite_engine).id == 2
    assert sorted(to for to, _ in inbox.parsed()) == ["analyst@example.com", "viewer@example.com"]
    assert waits == [5.0, 10.0]  # three 451s over two rounds; the backoff doubles
    with Session(sqlite_engine) as db:
        rows = list(db.scalars(select(Delivery).order_by(Delivery.id)))
    assert [(r.status, r.attempts) for r in rows] == [
        (DeliveryStatus.SENT, 3),
        (DeliveryStatus.SENT, 2),
    ]
    first = rows[0]
    assert first.log[0]["result"] == "pending" and "451" in first.log[0]["error"]
    assert first.log[-1]["result"] == "sent"


def test_an_smtp_server_that_is_down_fails_the_delivery_visibly_not_the_refit(
    app: Any, sqlite_engine: Engine, tmp_path: Path, shop_files: tuple[Path, Path, list[str]]
) -> None:
    base, back, _ = shop_files
    import_file(sqlite_engine, base)
    refit(sqlite_engine, k=5)
    with Session(sqlite_engine) as db:
        viewer = db.scalar(select(User.id).where(User.email == "viewer@example.com"))
    save_subscription(sqlite_engine, viewer, "refit")
    import_file(sqlite_engine, back)
    settings = notify_settings(tmp_path, sqlite_engine, free_port(), notify_retries=2)
    ran = refit_job(sqlite_engine, settings)
    assert kinds_and_statuses(ran) == REFIT_FILES_NOTIFY_DONE
    assert "0 sent, 1 failed" in (ran[2].message or "")
    with Session(sqlite_engine) as db:
        (row,) = db.scalars(select(Delivery))
    assert row.status == DeliveryStatus.FAILED and row.attempts == 3
    assert "ConnectionRefusedError" in (row.error or "") and len(row.log) == 3
    notifications = page("notifications")
    with as_user(app, "admin@example.com"):
        rows, summary = notifications.show_deliveries(0)
    assert rows[0]["status"] == "failed" and "ConnectionRefusedError" in rows[0]["error"]
    assert "1 failed" in str(summary.children) and summary.className == "text-danger"
    with as_user(app, "viewer@example.com"):
        own, _ = notifications.show_deliveries(0)
    assert [r["recipient"] for r in own] == ["viewer@example.com"]


# --- webhooks: http(s) only, the allow-list, public addresses ----------------------------------


def test_a_webhook_to_a_host_outside_the_allow_list_is_refused(
    sqlite_engine: Engine, tmp_path: Path, shop_files: tuple[Path, Path, list[str]]
) -> None:
    from db.delivery import WebhookRefused, check_webhook_url

    _, back, lapsed = shop_files
    ids, first = users_and_first_snapshot(sqlite_engine, shop_files)
    with http_receiver() as (posts, hook_port):
        hook = f"http://127.0.0.1:{hook_port}/hook"
        listed = notify_settings(tmp_path, sqlite_engine, free_port(), webhook_hosts="127.0.0.1")
        params = {
            "segment_id": lapsed_segment(sqlite_engine, first.snapshot_id, lapsed),
            "measure": "customers",
            "direction": "down",
            "threshold_pct": 30,
        }
        elsewhere = notify_settings(
            tmp_path, sqlite_engine, free_port(), webhook_hosts="hooks.slack.com"
        )
        with pytest.raises(NotificationError, match="only go to hooks.slack.com"):
            create_rule(
                sqlite_engine,
                elsewhere,
                name="x",
                kind="segment_change",
                params=params,
                webhook_url=hook,
            )
        with pytest.raises(WebhookRefused, match="127.0.0.1 is not one of them"):
            check_webhook_url(hook, elsewhere.webhook_host_list)
        # Saved while 127.0.0.1 was listed; the list changes before the refit: refused then.
        create_rule(
            sqlite_engine,
            listed,
            name="to the receiver",
            kind="segment_change",
            params=params,
            webhook_url=hook,
        )
        import_file(sqlite_engine, back)
        ran = refit_job(sqlite_engine, elsewhere)
        assert [j.status for j in ran] == [JobStatus.DONE] * 3  # refit, files, notify
        assert posts == []  # nothing reached the receiver
    with Session(sqlite_engine) as db:
        (row,) = db.scalars(select(Delivery))
        (event,) = db.scalars(select(AlertEvent))
    assert (row.status, row.attempts, row.channel) == (DeliveryStatus.REFUSED, 1, "webhook")
    assert "127.0.0.1 is not one of them" in (row.error or "")
    assert row.recipient == f"http://127.0.0.1:{hook_port}/…" and row.event_id == event.id
    assert ids["viewer"] not in (row.user_id,)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/hook", "private, loopback or link-local address (127.0.0.1)"),
        ("http://localhost/hook", "private, loopback or link-local"),
        ("http://169.254.169.254/latest/meta-data/", "(169.254.169.254)"),
        ("http://10.1.2.3/", "(10.1.2.3)"),
        ("http://[::1]/", "(::1)"),
        ("http://[::ffff:127.0.0.1]/", "(::ffff:127.0.0.1)"),
        ("http://0.0.0.0/", "(0.0.0.0)"),
        ("ftp://hooks.example.com/x", "must start with https://"),
        ("file:///etc/passwd", "must start with https://"),
        ("https://user:pw@hooks.example.com/x", "user name or password"),
        ("https:///nohost", "names no host"),
        ("https://hooks.example.com:99999/", "port is not valid"),
        ("https://hooks.example.com/a b", "contains spaces"),
    ],
)
def test_webhooks_never_reach_internal_addresses_unless_the_host_is_listed(
    url: str, reason: str
) -> None:
    from db.delivery import WebhookRefused, webhook_target

    with pytest.raises(WebhookRefused) as refused:
        webhook_target(url, ())
    assert reason in str(refused.value)


def test_a_listed_host_may_be_internal_and_a_public_one_needs_no_listing() -> None:
    from db.delivery import WebhookRefused, host_listed, webhook_target

    def resolve(addresses: list[str]) -> Any:
        return lambda _host, _port: addresses

    parts, address = webhook_target(
        "http://chat.internal:8065/hooks/x", ("chat.internal",), resolve(["10.0.0.5"])
    )
    assert (parts.hostname, address) == ("chat.internal", "10.0.0.5")
    assert (
        webhook_target("https://hooks.slack.com/services/T/B/x", (), resolve(["54.1.2.3"]))[1]
        == "54.1.2.3"
    )
    # A public name that also resolves to a private address (DNS rebinding) is refused.
    with pytest.raises(WebhookRefused, match=r"\(127.0.0.1\)"):
        webhook_target("https://evil.example/x", (), resolve(["54.1.2.3", "127.0.0.1"]))
    assert host_listed("a.b.example.com", (".example.com",))
    assert host_listed("example.com", (".example.com",))
    assert not host_listed("badexample.com", (".example.com",))
    assert not host_listed("example.com.evil", ("example.com",))


def test_a_webhook_redirect_is_not_followed() -> None:
    from db.delivery import DeliveryFailed, post_webhook

    with http_receiver(status=302) as (posts, port):
        with pytest.raises(DeliveryFailed, match="answered HTTP 302"):
            post_webhook(
                f"http://127.0.0.1:{port}/x", {"text": "hi"}, allowed=("127.0.0.1",), timeout=5
            )
    assert len(posts) == 1  # one request, to the listed host only


# --- unsubscribe: one click, no login ----------------------------------------------------------


def test_the_unsubscribe_link_stops_the_digest_without_a_login(app: Any, client: Any) -> None:
    from db.notify import unsubscribe_token

    engine = app.server.extensions["custseg"].engine
    settings = app.server.extensions["custseg"].settings
    with Session(engine) as db:
        viewer = db.scalar(select(User.id).where(User.email == "viewer@example.com"))
        analyst = db.scalar(select(User.id).where(User.email == "analyst@example.com"))
    assert viewer is not None and analyst is not None
    sub = save_subscription(engine, viewer, "refit")
    assert sub is not None
    token = unsubscribe_token(settings, "digest", sub.id, viewer)

    page_ = client.get(f"/unsubscribe/{token}")
    assert page_.status_code == 200
    assert "Stop sending the digest to viewer@example.com?" in page_.get_data(True)
    assert get_subscription(engine, viewer) is not None  # a GET (a link scanner) stops nothing
    # What a mail client sends for List-Unsubscribe-Post (RFC 8058): no cookie, no CSRF token.
    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "will not get the digest" in done.get_data(True)
    assert get_subscription(engine, viewer) is None
    again = client.post(f"/unsubscribe/{token}")
    assert again.status_code == 200 and "Nothing left to stop" in again.get_data(True)

    # Someone else's subscription id in a token signed for this user stops nothing.
    other = save_subscription(engine, analyst, "refit")
    assert other is not None
    forged = unsubscribe_token(settings, "digest", other.id, viewer)
    assert "Nothing left" in client.post(f"/unsubscribe/{forged}").get_data(True)
    assert get_subscription(engine, analyst) is not None
    # A token changed by one character, or signed with another key, is refused.
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 600, "not-a-token"):
        resp = client.post(f"/unsubscribe/{bad}")
        assert resp.status_code == 400 and "not valid" in resp.get_data(True)
    other_key = make_settings(
        Path("/nonexistent"), "sqlite://", secret_key="k" * 20 + "0123456789abcdef"
    )
    foreign = unsubscribe_token(other_key, "digest", other.id, analyst)
    assert client.post(f"/unsubscribe/{foreign}").status_code == 400
    assert get_subscription(engine, analyst) is not None


def test_the_unsubscribe_link_of_an_alert_removes_only_that_recipient(
    app: Any, client: Any
) -> None:
    from db.notify import unsubscribe_token

    engine = app.server.extensions["custseg"].engine
    settings = app.server.extensions["custseg"].settings
    people = user_ids(engine)
    rule = create_rule(
        engine,
        settings,
        name="Orders down",
        kind="kpi_change",
        params={"metric": "orders", "period_days": 7, "direction": "down", "threshold_pct": 10},
        email_user_ids=[people["viewer"], people["analyst"]],
    )
    token = unsubscribe_token(settings, "rule", rule.id, people["viewer"])
    assert "the alert “Orders down”" in client.get(f"/unsubscribe/{token}").get_data(True)
    client.post(f"/unsubscribe/{token}")
    with Session(engine) as db:
        saved = db.get(AlertRule, rule.id)
        assert saved is not None and saved.email_user_ids == [people["analyst"]]


# --- the pure parts: firing, rule kinds, the digest --------------------------------------------


@pytest.mark.parametrize(
    ("state", "active", "after", "fires"),
    [
        (RuleState.ARMED, True, RuleState.FIRED, True),
        (RuleState.FIRED, True, RuleState.FIRED, False),  # still true: quiet
        (RuleState.FIRED, False, RuleState.ARMED, False),
        (RuleState.ARMED, False, RuleState.ARMED, False),
        (RuleState.FIRED, None, RuleState.FIRED, False),  # cannot be told: nothing changes
        (RuleState.ARMED, None, RuleState.ARMED, False),
    ],
)
def test_a_rule_fires_when_its_condition_becomes_true_and_not_again_until_false(
    state: RuleState, active: bool | None, after: RuleState, fires: bool
) -> None:
    from analytics.alerts import transition

    assert transition(state, active) == (after, fires)


def test_a_sequence_of_checks_fires_on_each_rise_only() -> None:
    from analytics.alerts import transition

    state, fired = RuleState.ARMED, []
    for active in (False, True, True, None, True, False, True, True):
        state, fires = transition(state, active)
        fired.append(fires)
    assert fired == [False, True, False, False, False, False, True, False]


def kpi_frame(current: float | None, previous: float | None) -> pd.DataFrame:
    from analytics.metrics import KPI_ORDER

    rows = []
    for metric in KPI_ORDER:
        cur, prev = (current, previous) if metric == "gross_revenue" else (1.0, 1.0)
        diff = cur - prev if cur is not None and prev is not None else None
        rows.append(
            {
                "metric": metric,
                "current": cur,
                "previous": prev,
                "difference": diff,
                "change": diff / prev if diff is not None and prev else None,
                "current_start": date(2025, 12, 2),
                "current_end": END,
                "previous_start": date(2025, 11, 2),
                "previous_end": date(2025, 12, 1),
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("direction", "current", "active"),
    [
        ("up", 130.0, True),
        ("up", 120.0, False),  # exactly 20%: not "more than"
        ("up", 70.0, False),
        ("down", 70.0, True),
        ("down", 130.0, False),
        ("either", 70.0, True),
        ("either", 125.0, True),
        ("either", 110.0, False),
    ],
)
def test_a_kpi_rule_compares_with_the_previous_period_in_its_direction(
    direction: str, current: float, active: bool
) -> None:
    from analytics.alerts import RULE_KINDS, SnapshotRef

    kind = RULE_KINDS["kpi_change"]
    params = kind.parse(
        {"metric": "gross_revenue", "period_days": 30, "direction": direction, "threshold_pct": 20}
    )
    snap = SnapshotRef(4, END, date(2024, 1, 1), END, 3)
    (request,) = kind.requests(params, snap).values()
    assert (request.export, request.filters.start, request.filters.end) == (
        "kpi_comparison",
        date(2025, 12, 2),
        END,
    )
    check = kind.evaluate(params, snap, {"kpis": kpi_frame(current, 100.0)})
    assert check.active is active and check.change == pytest.approx(current / 100 - 1)
    assert check.link_query == (("start", "2025-12-02"), ("end", "2025-12-31"), ("snapshot", 4))
    nothing_before = kind.evaluate(params, snap, {"kpis": kpi_frame(current, 0.0)})
    assert nothing_before.active is None and "no figure" in nothing_before.message


def segments_frame(sizes: dict[int, int]) -> pd.DataFrame:
    total = sum(sizes.values())
    return pd.DataFrame(
        {
            "segment_id": list(sizes),
            "name": [f"seg {i}" for i in sizes],
            "customers": list(sizes.values()),
            "share": [n / total for n in sizes.values()],
        }
    )


def test_a_segment_rule_compares_with_the_previous_snapshot() -> None:
    from analytics.alerts import RULE_KINDS, SnapshotRef

    kind = RULE_KINDS["segment_change"]
    snap = SnapshotRef(7, END, date(2024, 1, 1), END, 6)
    size = kind.parse(
        {"segment_id": 2, "measure": "customers", "direction": "down", "threshold_pct": 25}
    )
    share = {**size, "measure": "share", "direction": "up", "threshold_pct": 10}
    before = segments_frame({1: 100, 2: 400, 3: 500})
    after = segments_frame({1: 400, 2: 290, 3: 310})  # 2: -27.5% of customers, 29% -> 29%
    check = kind.evaluate(size, snap, {"now": after, "before": before})
    assert check.active is True and check.change == pytest.approx(-0.275)
    assert "“seg 2” shrank 27.5% from 400 to 290 customers since snapshot 6" in check.message
    assert check.link_path == "/segments" and check.link_query == (("segment", 2), ("snapshot", 7))
    assert kind.evaluate(share, snap, {"now": after, "before": before}).active is False
    assert kind.evaluate(size, snap, {"now": after, "before": None}).active is None  # first
    new = kind.evaluate(size, snap, {"now": after, "before": segments_frame({1: 5, 3: 5})})
    assert new.active is None and "new in this snapshot" in new.message
    gone = kind.evaluate(size, snap, {"now": segments_frame({1: 9, 3: 9}), "before": before})
    assert gone.active is True and gone.change == -1.0


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("nope", {}, "rule kind must be one of kpi_change, segment_change"),
        ("kpi_change", {"metric": "profit"}, "KPI must be one of"),
        (
            "kpi_change",
            {"metric": "aov", "period_days": 0, "direction": "up", "threshold_pct": 5},
            "period (days) must be a whole number from 1 to 366",
        ),
        (
            "kpi_change",
            {"metric": "aov", "period_days": 7, "direction": "up", "threshold_pct": -5},
            "threshold (%) must be above 0",
        ),
        (
            "segment_change",
            {"segment_id": 1, "measure": "revenue", "direction": "up", "threshold_pct": 5},
            "measure must be one of customers, share",
        ),
        (
            "segment_change",
            {"segment_id": True, "measure": "share", "direction": "up", "threshold_pct": 5},
            "segment must be a whole number",
        ),
        (
            "segment_change",
            {"segment_id": 1, "measure": "share", "direction": "sideways", "threshold_pct": 5},
            "direction must be one of either, up, down",
        ),
    ],
)
def test_a_rule_with_a_bad_parameter_is_refused_naming_it(
    kind: str, params: dict[str, Any], message: str
) -> None:
    from analytics.alerts import RuleError, parse_rule

    with pytest.raises(RuleError, match=re.escape(message)):
        parse_rule(kind, params)


def test_rule_kinds_read_only_exports_every_recipient_may_see() -> None:
    from analytics.alerts import RULE_KINDS, SnapshotRef
    from analytics.exports import REGISTRY

    snap = SnapshotRef(2, END, date(2024, 1, 1), END, 1)
    samples = {
        "kpi_change": {
            "metric": "orders",
            "period_days": 7,
            "direction": "up",
            "threshold_pct": 5,
        },
        "segment_change": {
            "segment_id": 1,
            "measure": "share",
            "direction": "up",
            "threshold_pct": 5,
        },
    }
    assert set(samples) == set(RULE_KINDS)
    for name, kind in RULE_KINDS.items():
        for request in kind.requests(kind.parse(samples[name]), snap).values():
            assert REGISTRY[request.export].role == "viewer", (name, request.export)


def small_digest(**extra: Any) -> Any:
    from analytics.alerts import SnapshotRef
    from analytics.digest import build_digest

    moves = pd.DataFrame(
        {
            "from_segment": [-1, 1, 1, 2, 2, 3, 3],
            "to_segment": [1, 1, 2, 1, 3, -1, 3],
            "customers": [50, 300, 120, 1, 40, 900, 60],
            "gross_revenue": [10.0, 5000.0, 41200.4, 7.0, 800.0, 99999.0, 10.0],
        }
    )
    before = segments_frame({1: 420, 2: 41, 3: 960})
    before["name"] = ["Loyal", "At risk", "Lapsed"]
    now = segments_frame({1: 351, 2: 160, 3: 60})
    now["name"] = ["Loyal", "At risk", "Lapsed"]
    return build_digest(
        SnapshotRef(9, END, date(2024, 1, 1), END, 8),
        SnapshotRef(8, date(2025, 12, 30), date(2024, 1, 1), date(2025, 12, 30), 7),
        kpi_frame(1200.0, 1000.0),
        now,
        before,
        moves,
        colors={1: "#1f77b4", 2: "#ff7f0e", 3: "red; background:url(x)"},
        base_url=PUBLIC,
        **extra,
    )


def test_the_digest_lists_the_largest_moves_between_segments() -> None:
    d = small_digest()
    assert [m.sentence for m in d.moves] == [
        "120 customers moved from “Loyal” to “At risk”, 41,200 of their revenue",
        "40 customers moved from “At risk” to “Lapsed”, 800 of their revenue",
        "1 customer moved from “At risk” to “Loyal”, 7 of their revenue",
    ]
    assert (d.new_customers, d.gone_customers) == (50, 900)
    assert d.headline[:2] == (
        "“Lapsed” shrank 94% since snapshot 8 (960 → 60 customers).",
        "“At risk” grew 290% since snapshot 8 (41 → 160 customers).",
    )
    assert d.links["segment-2"] == f"{PUBLIC}/segments?segment=2&snapshot=9"
    assert d.segments[2].color == "#8c8c8c"  # not a colour: never reaches a style attribute


def test_the_digest_escapes_names_in_its_html_and_keeps_them_in_its_text() -> None:
    from analytics.digest import render_digest

    d = small_digest()
    evil = d.segments[0].__class__(
        **{**d.segments[0].__dict__, "name": '<script>alert(1)</script>"><img src=x>'}
    )
    d = d.__class__(**{**d.__dict__, "segments": (evil, *d.segments[1:])})
    r = render_digest(d, frequency="every Monday", unsubscribe_url=f"{PUBLIC}/unsubscribe/t")
    assert "<script>" not in r.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.html
    assert '<script>alert(1)</script>"><img src=x>' in r.text
    assert "You get this digest every Monday." in r.text
    assert "\n" not in r.subject


def test_lifecycle_stages_appear_when_their_export_gives_them() -> None:
    from analytics.digest import render_digest

    stages_before = pd.DataFrame(
        {"stage": ["Champions", "At risk", "Lost"], "customers": [90, 40, 10]}
    )
    stages_now = pd.DataFrame(
        {"stage": ["Champions", "At risk", "Lost"], "customers": [80, 70, 10]}
    )
    d = small_digest(lifecycle_now=stages_now, lifecycle_before=stages_before)
    assert [(s.stage, s.change_text) for s in d.stages] == [
        ("At risk", "+30 (▲ 75.0%)"),
        ("Champions", "-10 (▼ 11.1%)"),
    ]
    r = render_digest(d, frequency="after every refit", unsubscribe_url=None)
    assert "LIFECYCLE STAGES" in r.text and "Lifecycle stages that moved most" in r.html
    assert small_digest().stages == ()


# --- the page ----------------------------------------------------------------------------------


def test_each_user_manages_their_own_digest_and_admins_anyones(app: Any, dashboard: Any) -> None:
    engine = app.server.extensions["custseg"].engine
    ids = user_ids(engine)
    notifications = page("notifications")
    with as_user(app, "viewer@example.com"):
        # The browser sends the admin's id: a viewer's request changes the viewer's own digest.
        message, changed = notifications.save_digest(1, "weekly", 2, 7, ids["admin"], 0)
        assert "every Wednesday" in str(message.children) and changed == 1
        assert notifications.show_digest(1, ids["admin"])[:3] == ("weekly", 2, 7)
        message, _ = notifications.save_digest(1, "weekly", 9, 7, None, 1)
        assert "day of the week" in str(message.children)
        preview_text = notifications.preview_digest(1, "weekly", 2, 30, None)
        assert "Customer digest as of 2011-12-09" in preview_text
        assert "You get this digest every Wednesday." in preview_text
    assert get_subscription(engine, ids["admin"]) is None
    viewer_sub = get_subscription(engine, ids["viewer"])
    assert viewer_sub is not None and (viewer_sub.weekday, viewer_sub.period_days) == (2, 7)
    with as_user(app, "admin@example.com"):
        notifications.save_digest(1, "refit", 0, 30, ids["analyst"], 0)
        rows = notifications.show_subscriptions(1)
        assert [(r["email"], r["when"]) for r in rows] == [
            ("analyst@example.com", "after every refit"),
            ("viewer@example.com", "weekly, Wednesday"),
        ]
        notifications.save_digest(1, "off", 0, 30, ids["viewer"], 1)
    assert get_subscription(engine, ids["viewer"]) is None
    analyst_sub = get_subscription(engine, ids["analyst"])
    assert analyst_sub is not None and analyst_sub.updated_by == "admin@example.com"
    # The latest snapshot counts as sent: the first digest comes after the next refit.
    assert analyst_sub.last_snapshot_id == snapshots.get_snapshot(engine).id


def post_rules(client: Any, button: str, form: dict[str, Any]) -> tuple[int, str]:
    """Press `button` of the rules card with `form`'s values, as the browser posts it; the
    status and the message shown."""
    deps = client.get("/_dash-dependencies").get_json()
    spec = next(d for d in deps if {"id": button, "property": "n_clicks"} in d["inputs"])
    values = {f"{k}.value": v for k, v in form.items()} | {f"{button}.n_clicks": 1}
    body = callback_body(spec, values, values)
    body["changedPropIds"] = [f"{button}.n_clicks"]
    resp = client.post("/_dash-update-component", json=body)
    if resp.status_code != 200:
        return resp.status_code, ""
    message = resp.get_json()["response"]["notif-rule-message"]["children"]
    return 200, str(message["props"]["children"])


def test_analysts_define_rules_and_viewers_cannot(app: Any, dashboard: Any, client: Any) -> None:
    engine = app.server.extensions["custseg"].engine
    ids = user_ids(engine)
    orders = {
        "notif-kind": "kpi_change",
        "notif-metric": "orders",
        "notif-days": 30,
        "notif-direction": "down",
        "notif-threshold": 15,
        "notif-recipients": [ids["viewer"]],
    }
    login(client, "viewer@example.com")
    assert post_rules(client, "notif-add-rule", orders) == (403, "")
    assert list_rules_count(engine) == 0

    login(client, "analyst@example.com")
    status, text = post_rules(client, "notif-add-rule", orders)
    assert status == 200 and text.startswith("Rule #1 “Orders moves down by more than 15%")
    text = post_rules(client, "notif-add-rule", {**orders, "notif-threshold": 0})[1]
    assert "threshold (%) must be above 0" in text
    segment = int(snapshots.segments(engine, snapshots.get_snapshot(engine).id)["segment_id"][0])
    grows = {
        "notif-kind": "segment_change",
        "notif-segment": segment,
        "notif-measure": "share",
        "notif-direction": "up",
        "notif-threshold": 10,
        "notif-name": "Grows",
        "notif-webhook": "https://hooks.example.invalid/services/T1/B2/secret",  # RFC 2606
    }
    text = post_rules(client, "notif-add-rule", grows)[1]
    assert text.startswith("cannot resolve hooks.example.invalid")  # checked when saved
    grows["notif-webhook"] = ""
    text = post_rules(client, "notif-add-rule", grows)[1]
    assert text == "Choose at least one recipient or a webhook URL."
    text = post_rules(client, "notif-add-rule", {**grows, "notif-recipients": [ids["admin"]]})[1]
    assert text.startswith("Rule #2 “Grows” added")
    internal = {**orders, "notif-webhook": "http://169.254.169.254/latest/"}
    assert "link-local" in post_rules(client, "notif-add-rule", internal)[1]
    assert post_rules(client, "notif-rule-off", {"notif-rule": 2})[1] == "Rule “Grows” disabled."

    notifications = page("notifications")
    with as_user(app, "analyst@example.com"):
        rows, options, history = notifications.show_rules(3)
    assert [(r["id"], r["state"], r["to"]) for r in rows] == [
        (1, "armed", "viewer@example.com"),
        (2, "disabled", "admin@example.com"),
    ]
    assert rows[1]["condition"].startswith("Segment “") and history == []
    assert list_rules_count(engine) == 2


def list_rules_count(engine: Engine) -> int:
    with Session(engine) as db:
        return int(db.scalar(select(func.count()).select_from(AlertRule)) or 0)


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_every_callback_of_the_page_answers_each_role(
    app: Any, dashboard: Any, client: Any, role: str
) -> None:
    from tests.helpers import page_responses

    login(client, f"{role}@example.com")
    answers = page_responses(client, "/notifications")
    assert len(answers) >= 5
    needs = {
        "notif-subs": "admin",
        "notif-retry": "admin",
        "notif-rule": "analyst",
        "notif-kpi-fields": "analyst",
    }
    rank = ("viewer", "analyst", "admin").index
    for output, status, body in answers:
        refused = next(
            (r for key, r in needs.items() if key in output and rank(role) < rank(r)), None
        )
        assert status == (403 if refused else 200), (role, output, status, body[:200])


# --- the command line, the schedule, weekly digests, settings -----------------------------------


def test_notify_dry_run_prints_what_would_be_sent_and_records_nothing(
    tmp_path: Path, sqlite_engine: Engine, dashboard_template: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config import get_settings
    from tests.conftest import copy_database
    from webapp.cli import main

    copy_database(dashboard_template[0], sqlite_engine)
    ids = user_ids(sqlite_engine)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    with smtp_server() as (inbox, port):
        for name, value in {
            "DATABASE_URL": url,
            "CUSTSEG_ENV": "development",
            "CUSTSEG_INSTANCE_DIR": str(tmp_path / "instance"),
            "CUSTSEG_SMTP_HOST": "127.0.0.1",
            "CUSTSEG_SMTP_PORT": str(port),
            "CUSTSEG_SMTP_SECURITY": "none",
            "CUSTSEG_SMTP_FROM": SENDER,
            "CUSTSEG_PUBLIC_URL": PUBLIC,
        }.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        settings = get_settings()
        save_subscription(sqlite_engine, ids["viewer"], "refit")
        create_rule(
            sqlite_engine,
            settings,
            name="Any orders",
            kind="kpi_change",
            params={
                "metric": "orders",
                "period_days": 30,
                "direction": "either",
                "threshold_pct": 1,
            },
            email_user_ids=[ids["analyst"]],
        )
        dry = CliRunner().invoke(main, ["notify", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "dry run for snapshot 2 (as of 2011-12-09): nothing is sent" in dry.output
        assert "rule #1 Any orders (armed -> fired: FIRES): Orders " in dry.output
        assert "--- digest by email to viewer@example.com" in dry.output
        assert "--- alert by email to analyst@example.com" in dry.output
        assert "HEADLINE FIGURES: last 30 days (2011-11-10 to 2011-12-09)" in dry.output
        assert inbox.messages == []
        with Session(sqlite_engine) as db:
            assert db.scalar(select(func.count()).select_from(Delivery)) == 0
            rule = db.get(AlertRule, 1)
            assert rule is not None and rule.state == RuleState.ARMED
        # The run itself: the alert; the digest came with snapshot 2 (subscribed after it).
        run = CliRunner().invoke(main, ["notify"])
        assert run.exit_code == 0, run.output
        assert "snapshot 2: 1 alert(s) fired, 0 digest(s); 1 sent, 0 failed" in run.output
        assert [to for to, _ in inbox.parsed()] == ["analyst@example.com"]
    get_settings.cache_clear()


def test_a_weekly_digest_comes_once_on_its_day_with_the_daily_run(
    app: Any, dashboard: Any, tmp_path: Path
) -> None:
    from db.notify import run_notify

    engine = app.server.extensions["custseg"].engine
    ids = user_ids(engine)
    settings = make_settings(
        tmp_path, engine.url.render_as_string(hide_password=False), public_url=PUBLIC
    )
    save_subscription(engine, ids["viewer"], "weekly", weekday=2)  # Wednesday
    wednesday = datetime(2026, 1, 7, 7, 0)
    assert run_notify(engine, settings, daily=False, now=wednesday).digests == 0  # a refit's run
    assert run_notify(engine, settings, daily=True, now=wednesday - timedelta(days=1)).digests == 0
    first = run_notify(engine, settings, daily=True, now=wednesday)
    assert first.digests == 1 and str(first.delivery) == "0 sent, 0 failed, 1 refused"
    assert run_notify(engine, settings, daily=True, now=wednesday + timedelta(hours=5)).digests == 0
    assert run_notify(engine, settings, daily=True, now=wednesday + timedelta(days=7)).digests == 1
    with Session(engine) as db:
        rows = list(db.scalars(select(Delivery)))
    assert {r.error for r in rows} == {
        "e-mail is not configured: set CUSTSEG_SMTP_HOST and CUSTSEG_SMTP_FROM"
    }


def test_the_scheduler_queues_the_daily_notify_run(sqlite_engine: Engine) -> None:
    settings = bare_settings(refit_cron="0 3 * * *", notify_cron="30 6 * * *")
    ours = tuple(p for p in SCHEDULE if p.kind in ("refit", "notify"))  # other daily jobs aside
    scheduler = Scheduler(sqlite_engine, settings, schedule=ours)
    day = datetime(2025, 1, 1, tzinfo=UTC)
    assert [j.kind for j in scheduler.queue_due(day)] == []
    assert [j.kind for j in scheduler.queue_due(day + timedelta(hours=3))] == ["refit"]
    (job,) = scheduler.queue_due(day + timedelta(hours=6, minutes=30))
    assert (job.kind, job.params, job.trigger) == ("notify", {"daily": True}, Trigger.SCHEDULER)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CUSTSEG_PUBLIC_URL", "analytics.shop.example", "does not start with http"),
        ("CUSTSEG_PUBLIC_URL", "javascript:alert(1)", "does not start with http"),
        ("CUSTSEG_PUBLIC_URL", "https://a.example/?x=1", "query or fragment"),
        ("CUSTSEG_WEBHOOK_HOSTS", "https://hooks.slack.com", "not a host name"),
        ("CUSTSEG_WEBHOOK_HOSTS", "hooks.slack.com, *.example.com", "not a host name"),
        ("CUSTSEG_SMTP_FROM", "nobody", "not an address"),
        ("CUSTSEG_SMTP_SECURITY", "tls", "none"),
    ],
)
def test_notification_settings_are_checked_at_start(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config import ConfigError, get_settings

    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=re.escape(message)):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_notification_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "CUSTSEG_PUBLIC_URL": "https://analytics.shop.example/",
        "CUSTSEG_WEBHOOK_HOSTS": "hooks.slack.com, .Example.com",
        "CUSTSEG_SMTP_PASSWORD": "s3cret-from-the-environment",
        "CUSTSEG_SMTP_HOST": "",  # docker-compose passes unset variables as empty
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.public_url == "https://analytics.shop.example"
    assert s.webhook_host_list == ("hooks.slack.com", ".example.com")
    assert s.smtp_host is None and "s3cret" not in repr(s)


# --- the e-mail in a browser --------------------------------------------------------------------


@pytest.mark.browser
def test_the_digest_renders_in_chromium_within_its_width(
    sqlite_engine: Engine, tmp_path: Path, shop_files: tuple[Path, Path, list[str]]
) -> None:
    """The HTML part as a mail client shows it: nothing wider than its 640 px column, every
    section there, bars as long as their segments. DIGEST_SCREENSHOT=docs/digest.png saves
    the picture the README shows."""
    import base64
    import os

    from selenium import webdriver

    from tests.conftest import pytest_setup_options

    _, msg = viewer_refit_digest(sqlite_engine, tmp_path, shop_files)
    page_file = tmp_path / "digest.html"
    page_file.write_text(html_part(msg), encoding="utf-8")

    options = pytest_setup_options()
    options.add_argument("--window-size=720,900")
    driver = webdriver.Chrome(options=options)
    try:
        driver.get(page_file.as_uri())
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 720
        text = driver.find_element("tag name", "body").text
        for heading in ("Headline figures", "Segments", "Largest moves", "Unsubscribe"):
            assert heading in text
        bars = driver.execute_script(
            "return [...document.querySelectorAll('td[width=\"36%\"] > table:first-child')]"
            ".map(t => t.getBoundingClientRect().width)"
        )
        sizes = [int(x) for x in re.findall(r">([\d,]+)</td>", html_part(msg))]
        customers = [int(str(n).replace(",", "")) for n in sizes][: len(bars)]
        assert len(bars) == 5 and bars.index(max(bars)) == customers.index(max(customers))
        target = os.environ.get("DIGEST_SCREENSHOT")
        if target:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            shot = driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": 720, "height": height, "scale": 1},
                },
            )
            Path(target).write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.quit()


def test_a_late_notify_job_for_an_older_snapshot_leaves_the_rules_alone(
    app: Any, dashboard: Any, tmp_path: Path
) -> None:
    from db.notify import run_notify

    engine = app.server.extensions["custseg"].engine
    settings = make_settings(
        tmp_path, engine.url.render_as_string(hide_password=False), public_url=PUBLIC
    )
    create_rule(
        engine,
        settings,
        name="Any orders",
        kind="kpi_change",
        params={"metric": "orders", "period_days": 30, "direction": "either", "threshold_pct": 1},
        email_user_ids=[user_ids(engine)["analyst"]],
    )
    assert run_notify(engine, settings, snapshot_id=2).fired == 1
    late = run_notify(engine, settings, snapshot_id=1)  # queued before, run after
    assert (late.snapshot_id, late.fired) == (1, 0)
    with Session(engine) as db:
        rule = db.get(AlertRule, 1)
        assert rule is not None and (rule.last_snapshot_id, rule.state) == (2, RuleState.FIRED)
    gone = run_notify(engine, settings, snapshot_id=99)
    assert gone.summary() == "snapshot 99 is not published (any more): nothing to notify"
