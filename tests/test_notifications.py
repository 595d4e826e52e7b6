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
from datetime import date, timedelta
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
from db.notifications import create_rule, save_subscription
from db.scheduler import Scheduler
from tests.conftest import (
    add_user,
    as_user,
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


def users(engine: Engine) -> dict[str, int]:
    for role in ("viewer", "analyst", "admin"):
        add_user(engine, f"{role}@example.com", role)
    with Session(engine) as db:
        return {u.role: u.id for u in db.scalars(select(User))}


def refit_job(engine: Engine, settings: Settings, **params: Any) -> list[Any]:
    """Queue a refit as "Refit now" does and let the scheduler run the queue (the refit, then
    the notify job it queues); the jobs it ran."""
    jobs.enqueue(engine, "refit", {"k": 5, **params}, trigger=Trigger.WEB)
    return Scheduler(engine, settings).drain()


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


# --- the whole path ----------------------------------------------------------------------------


def test_a_refit_with_a_shrunk_segment_sends_digests_and_fires_the_alert_once(
    engine: Engine, tmp_path: Path, shop_files: tuple[Path, Path, list[str]]
) -> None:
    base, back, lapsed = shop_files
    ids = users(engine)
    import_file(engine, base)
    first = refit(engine, k=5)
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
        assert [(j.kind, j.status) for j in ran] == [
            ("refit", JobStatus.DONE),
            ("notify", JobStatus.DONE),
        ]
        second = snapshots.get_snapshot(engine)
        assert second.id == ran[0].snapshot_id and second.previous_id == first.snapshot_id
        sent = inbox.parsed()
        digests = {to: m for to, m in sent if m["Subject"].startswith("Customer digest")}
        alerts = [(to, m) for to, m in sent if m["Subject"].startswith("Alert")]
        assert sorted(digests) == ["analyst@example.com", "viewer@example.com"]
        assert [(to, m["Subject"]) for to, m in alerts] == [
            ("analyst@example.com", "Alert: Lapsed shrinks")
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

        # A forced refit of the same data: the digest again, the alert not (nothing moved since
        # the last snapshot: the rule is armed again, and silent).
        before = len(inbox.messages)
        ran = refit_job(engine, settings, force=True)
        assert [(j.kind, j.status) for j in ran] == [
            ("refit", JobStatus.DONE),
            ("notify", JobStatus.DONE),
        ]
        again = [m for _, m in inbox.parsed()[before:]]
        assert (
            sorted(m["Subject"].split(":")[0] for m in again)
            == [f"Customer digest as of {END}"] * 2
        )
        assert len(posts) == 1

    with Session(engine) as db:
        events = list(db.scalars(select(AlertEvent)))
        assert [(e.rule_name, e.snapshot_id) for e in events] == [("Lapsed shrinks", second.id)]
        rules = {r.name: r for r in db.scalars(select(AlertRule))}
        assert rules["Lapsed shrinks"].state == RuleState.ARMED  # false again at the third
        assert rules["Quiet segment"].state == RuleState.ARMED
        statuses = db.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        assert dict(statuses) == {DeliveryStatus.SENT: 6}  # 2 + 2 digests, an e-mail, a webhook
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

    base, back, _ = shop_files
    ids = users(sqlite_engine)
    import_file(sqlite_engine, base)
    refit(sqlite_engine, k=5)
    with smtp_server() as (inbox, port):
        settings = notify_settings(tmp_path, sqlite_engine, port)
        save_subscription(sqlite_engine, ids["viewer"], "refit")
        import_file(sqlite_engine, back)
        refit_job(sqlite_engine, settings)
    ((_, msg),) = inbox.parsed()
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
    base, back, _ = shop_files
    ids = users(sqlite_engine)
    import_file(sqlite_engine, base)
    refit(sqlite_engine, k=5)
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
    assert [(j.kind, j.status) for j in ran] == [
        ("refit", JobStatus.DONE),
        ("notify", JobStatus.DONE),
    ]
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
    assert [(j.kind, j.status) for j in ran] == [
        ("refit", JobStatus.DONE),
        ("notify", JobStatus.DONE),
    ]
    assert "0 sent, 1 failed" in (ran[1].message or "")
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
