"""The `notify` job: check the alert rules, build the digests that are due, record and send them.

Queued by a refit that publishes (`notify_after_refit`, one call at the end of
`db.refit.refit_job`: the refit itself never waits for a message) and daily
(`CUSTSEG_NOTIFY_CRON`: weekly digests, and a catch-up for snapshots published by `custseg
refit`). A run has three steps:

1. `plan` (reads only): each enabled rule is checked against the snapshot's export frames
   (`analytics/alerts.py`) and its state moved on (it fires when its condition becomes true and
   not again until it has been false); each due subscription's digest is built from the exports
   with the subscriber's role (`analytics/digest.py`) and rendered. `custseg notify --dry-run`
   prints this and stops.
2. `record` (one transaction): the rules' states, the events (history), a pending delivery row
   per message, the subscriptions' last digest.
3. `db.delivery.deliver`: send, retry, log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from analytics import exports
from analytics.alerts import (
    RULE_KINDS,
    Check,
    RuleState,
    SnapshotRef,
    transition,
)
from analytics.digest import build_digest, frequency_text, page_url, render_alert, render_digest
from analytics.segmentation import shown_color
from config import Settings
from db import jobs, snapshots
from db.delivery import DeliveryReport, compose_email, deliver, retry_failed, short_url
from db.exporter import Exporter, Forbidden
from db.jobs import JobResult
from db.models import (
    AlertEvent,
    AlertRule,
    Channel,
    Delivery,
    DeliveryStatus,
    Frequency,
    Job,
    JobStatus,
    Snapshot,
    Subscription,
    Trigger,
    User,
)
from db.models.users import utcnow
from db.snapshot_cache import SnapshotCache

log = logging.getLogger("custseg.notify")

UNSUBSCRIBE_SALT = "custseg.unsubscribe"
NO_PUBLIC_URL = (
    "CUSTSEG_PUBLIC_URL is not set: an e-mail needs it for its links and its unsubscribe link"
)


# --- unsubscribe links -------------------------------------------------------------------------


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.resolved_secret_key(), salt=UNSUBSCRIBE_SALT)


def unsubscribe_token(settings: Settings, what: str, ident: int, user_id: int) -> str:
    """A signed token that unsubscribes `user_id` from a digest ("digest", subscription id) or
    from a rule's e-mails ("rule", rule id), with no login."""
    return str(_serializer(settings).dumps({"w": what, "i": ident, "u": user_id}))


def read_unsubscribe_token(settings: Settings, token: str) -> tuple[str, int, int] | None:
    """(what, id, user id) of a token this app signed; None for anything else."""
    try:
        data = _serializer(settings).loads(token)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("w") not in ("digest", "rule"):
        return None
    ident, user = data.get("i"), data.get("u")
    if not isinstance(ident, int) or not isinstance(user, int):
        return None
    return str(data["w"]), ident, user


def unsubscribe_url(settings: Settings, what: str, ident: int, user_id: int) -> str | None:
    token = unsubscribe_token(settings, what, ident, user_id)
    return page_url(settings.public_url, f"/unsubscribe/{token}")


# --- planning ----------------------------------------------------------------------------------


@dataclass
class Outgoing:
    """One message to record and send."""

    what: str  # digest | alert
    channel: Channel
    recipient: str
    subject: str
    payload: str  # the e-mail's RFC 5322 text, or the webhook's JSON body
    snapshot_id: int
    user_id: int | None = None
    subscription_id: int | None = None
    rule_id: int | None = None
    event: int | None = None  # index of its event in Plan.events
    refused: str | None = None  # recorded as refused with this reason, never attempted
    text: str = ""  # the plain-text part (what --dry-run prints)


@dataclass
class RuleCheck:
    rule_id: int
    name: str
    kind: str
    before: RuleState
    after: RuleState
    fires: bool
    check: Check | None  # None: not checked (see note)
    note: str = ""


@dataclass
class EventPlan:
    rule_id: int
    rule_name: str
    kind: str
    message: str
    details: dict[str, Any]
    link: str | None


@dataclass
class Plan:
    snapshot: Snapshot
    now: datetime
    checks: list[RuleCheck] = field(default_factory=list)
    events: list[EventPlan] = field(default_factory=list)
    messages: list[Outgoing] = field(default_factory=list)
    digests: dict[int, int] = field(default_factory=dict)  # subscription id -> snapshot id
    notes: list[str] = field(default_factory=list)


def snapshot_ref(snap: Snapshot) -> SnapshotRef:
    return SnapshotRef(snap.id, snap.as_of, snap.data_start, snap.data_end, snap.previous_id)


def _published(engine: Engine, snapshot_id: int | None) -> Snapshot | None:
    return None if snapshot_id is None else snapshots.latest_published(engine, snapshot_id)


def _rule_frames(
    exporter: Exporter, snap: Snapshot, rule: AlertRule
) -> dict[str, pd.DataFrame | None]:
    kind = RULE_KINDS[rule.kind]
    previous = _published(exporter.engine, snap.previous_id)
    frames: dict[str, pd.DataFrame | None] = {}
    for key, req in kind.requests(rule.params, snapshot_ref(snap)).items():
        target = snap if req.of == "current" else previous
        # Rules read aggregates only (every recipient may see them): the viewer's exports.
        frames[key] = (
            None
            if target is None
            else exporter.export(req.export, req.filters, target.id, role="viewer")[0]
        )
    return frames


def _users(engine: Engine, ids: Iterable[int]) -> dict[int, User]:
    wanted = {int(i) for i in ids}
    if not wanted:
        return {}
    with Session(engine, expire_on_commit=False) as db:
        rows = db.scalars(select(User).where(User.id.in_(wanted), User.active.is_(True)))
        return {u.id: u for u in rows}


def check_rules(
    engine: Engine, exporter: Exporter, snap: Snapshot, *, daily: bool
) -> list[tuple[AlertRule, RuleCheck]]:
    """Each enabled rule checked against `snap` (a rule already checked against it, or against a
    later snapshot, is left alone unless its kind is checked daily), with its next state."""
    with Session(engine, expire_on_commit=False) as db:
        rules = list(db.scalars(select(AlertRule).where(AlertRule.enabled).order_by(AlertRule.id)))
    out = []
    for rule in rules:
        kind = RULE_KINDS.get(rule.kind)
        state = RuleState(rule.state)
        if kind is None:
            note = f"unknown rule kind {rule.kind!r}: not checked"
            out.append(
                (rule, RuleCheck(rule.id, rule.name, rule.kind, state, state, False, None, note))
            )
            continue
        checked = rule.last_snapshot_id is not None and rule.last_snapshot_id >= snap.id
        if checked and not (daily and kind.daily):  # this snapshot or a later one: done
            continue
        try:
            check = kind.evaluate(
                rule.params, snapshot_ref(snap), _rule_frames(exporter, snap, rule)
            )
        except (ValueError, KeyError, Forbidden) as exc:
            note = f"not checked: {exc}"
            out.append(
                (rule, RuleCheck(rule.id, rule.name, rule.kind, state, state, False, None, note))
            )
            continue
        after, fires = transition(state, check.active)
        out.append((rule, RuleCheck(rule.id, rule.name, rule.kind, state, after, fires, check)))
    return out


def _alert_messages(
    settings: Settings,
    snap: Snapshot,
    rule: AlertRule,
    check: Check,
    link: str | None,
    users: dict[int, User],
    names: dict[int, str],
) -> list[Outgoing]:
    """An e-mail to each of the rule's recipients who is an active user, and its webhook's."""
    kind = RULE_KINDS[rule.kind]
    rule_text = kind.describe(rule.params, names)
    out = []
    manage = page_url(settings.public_url, "/notifications")
    for user in (users[i] for i in dict.fromkeys(rule.email_user_ids or ()) if i in users):
        unsubscribe = unsubscribe_url(settings, "rule", rule.id, user.id)
        r = render_alert(
            rule_name=rule.name,
            rule_text=rule_text,
            message=check.message,
            snapshot=snapshot_ref(snap),
            link=link,
            manage_url=manage,
            unsubscribe_url=unsubscribe,
        )
        out.append(_email("alert", settings, user, r.subject, r.text, r.html, unsubscribe, snap))
        out[-1].rule_id = rule.id
    if rule.webhook_url:
        text = f"*Alert: {rule.name}*\n{check.message}"
        if link:
            text += f"\n<{link}|Open the view>"
        body = {
            "text": text,
            "alert": {
                "rule_id": rule.id,
                "rule": rule.name,
                "kind": rule.kind,
                "condition": rule_text,
                "message": check.message,
                **check.details(),
                "snapshot_id": snap.id,
                "as_of": str(snap.as_of),
            },
            "link": link,
        }
        out.append(
            Outgoing(
                "alert",
                Channel.WEBHOOK,
                short_url(rule.webhook_url),
                f"Alert: {rule.name}",
                json.dumps(body, default=str),
                snap.id,
                rule_id=rule.id,
                text=text,
            )
        )
    return out


def _email(
    what: str,
    settings: Settings,
    user: User,
    subject: str,
    text: str,
    html: str,
    unsubscribe: str | None,
    snap: Snapshot,
) -> Outgoing:
    sender = settings.smtp_from or "custseg@localhost"
    refused = None if settings.public_url else NO_PUBLIC_URL
    payload = "" if refused else compose_email(sender, user.email, subject, text, html, unsubscribe)
    return Outgoing(
        what,
        Channel.EMAIL,
        user.email,
        subject,
        payload,
        snap.id,
        user_id=user.id,
        refused=refused,
        text=text,
    )


def _compare_with(engine: Engine, snap: Snapshot, sub: Subscription) -> Snapshot | None:
    """The snapshot a digest compares with: that of the subscriber's last digest while it is
    kept, else the one before `snap`."""
    for candidate in (sub.last_snapshot_id, snap.previous_id):
        if candidate is not None and candidate < snap.id:
            found = _published(engine, candidate)
            if found is not None:
                return found
    return None


def _due(sub: Subscription, snap: Snapshot, now: datetime, *, daily: bool, resend: bool) -> bool:
    if sub.frequency == Frequency.REFIT:
        return resend or sub.last_snapshot_id is None or sub.last_snapshot_id < snap.id
    already = sub.last_sent_at is not None and sub.last_sent_at.date() >= now.date()
    return (daily or resend) and sub.weekday == now.weekday() and not already


class DigestBuilder:
    """Digests of one snapshot, computed once per (role, snapshot compared with, period)."""

    def __init__(self, settings: Settings, exporter: Exporter, snap: Snapshot) -> None:
        self.settings, self.exporter, self.snap = settings, exporter, snap
        self._built: dict[tuple[str, int | None, int], Any] = {}

    def _colors(self, *snaps: Snapshot | None) -> dict[int, str]:
        colors: dict[int, str] = {}
        for s in reversed([s for s in snaps if s is not None]):
            frame = self.exporter.sources(s.id).segments
            colors.update(
                (sid, shown_color(sid, color))
                for sid, color in zip(frame["segment_id"].astype(int), frame["color"], strict=True)
            )
        return colors

    def digest(self, role: str, compare: Snapshot | None, period_days: int) -> Any:
        key = (role, None if compare is None else compare.id, period_days)
        if key not in self._built:
            self._built[key] = self._build(role, compare, period_days)
        return self._built[key]

    def _build(self, role: str, compare: Snapshot | None, period_days: int) -> Any:
        from analytics.alerts import kpi_period

        snap, export = self.snap, self.exporter.export
        start, end = kpi_period({"period_days": period_days}, snapshot_ref(snap))
        kpis = export("kpi_comparison", exports.Filters(start, end), snap.id, role=role)[0]
        now = export("segments", exports.Filters(), snap.id, role=role)[0]
        before = moves = stages_now = stages_before = None
        if compare is not None:
            before = export("segments", exports.Filters(), compare.id, role=role)[0]
            moves = export("migration", exports.Filters(compare_to=compare.id), snap.id, role=role)[
                0
            ]
            if "lifecycle" in exports.REGISTRY:  # lifecycle stages, where that export exists
                stages_now = export("lifecycle", exports.Filters(), snap.id, role=role)[0]
                stages_before = export("lifecycle", exports.Filters(), compare.id, role=role)[0]
        return build_digest(
            snapshot_ref(snap),
            None if compare is None else snapshot_ref(compare),
            kpis,
            now,
            before,
            moves,
            colors=self._colors(snap, compare),
            lifecycle_now=stages_now,
            lifecycle_before=stages_before,
            base_url=self.settings.public_url,
        )


def plan(
    engine: Engine,
    settings: Settings,
    *,
    snapshot_id: int | None = None,
    daily: bool = False,
    resend: bool = False,
    now: datetime | None = None,
    exporter: Exporter | None = None,
) -> Plan | None:
    """What a notify run would record and send for the snapshot (default: the latest published);
    None when there is none. Reads only. `resend`: digests "after every refit" are due even if
    sent for this snapshot (the dry run)."""
    now = now or utcnow()
    snap = snapshots.latest_published(engine, snapshot_id)
    if snap is None:
        return None
    exporter = exporter or Exporter.of(engine, SnapshotCache(), settings)
    result = Plan(snap, now)
    links_base = settings.public_url
    if not links_base:
        result.notes.append(NO_PUBLIC_URL)

    # Alert rules.
    checked = check_rules(engine, exporter, snap, daily=daily)
    recipients = _users(engine, (i for rule, _ in checked for i in rule.email_user_ids or ()))
    for rule, rc in checked:
        result.checks.append(rc)
        if not rc.fires or rc.check is None:
            continue
        link = page_url(links_base, rc.check.link_path, rc.check.link_query)
        result.events.append(
            EventPlan(rule.id, rule.name, rule.kind, rc.check.message, rc.check.details(), link)
        )
        segs = exporter.sources(snap.id).segments
        names = dict(zip(segs["segment_id"].astype(int), segs["name"], strict=True))
        for msg in _alert_messages(settings, snap, rule, rc.check, link, recipients, names):
            msg.event = len(result.events) - 1
            result.messages.append(msg)

    # Digests.
    with Session(engine, expire_on_commit=False) as db:
        subs = list(
            db.execute(
                select(Subscription, User)
                .join(User, User.id == Subscription.user_id)
                .where(User.active.is_(True))
                .order_by(Subscription.id)
            ).tuples()
        )
    builder = DigestBuilder(settings, exporter, snap)
    for sub, user in subs:
        if not _due(sub, snap, now, daily=daily, resend=resend):
            continue
        compare = _compare_with(engine, snap, sub)
        digest = builder.digest(user.role, compare, sub.period_days)
        unsubscribe = unsubscribe_url(settings, "digest", sub.id, user.id)
        r = render_digest(
            digest,
            frequency=frequency_text(sub.frequency, sub.weekday),
            unsubscribe_url=unsubscribe,
        )
        msg = _email("digest", settings, user, r.subject, r.text, r.html, unsubscribe, snap)
        msg.subscription_id = sub.id
        result.messages.append(msg)
        result.digests[sub.id] = snap.id
    return result


# --- recording and the job ---------------------------------------------------------------------


def record(engine: Engine, p: Plan, job_id: int | None = None) -> list[int]:
    """Write the plan in one transaction: rule states, events, pending deliveries (refused ones
    as such), the subscriptions' last digest. The ids of the deliveries to send."""
    now = p.now
    with Session(engine) as db, db.begin():
        for rc in p.checks:
            rule = db.get(AlertRule, rc.rule_id)
            if rule is None or rc.check is None:
                continue
            if rule.state != rc.after:
                rule.state, rule.state_changed_at = rc.after, now
            rule.last_checked_at, rule.last_snapshot_id = now, p.snapshot.id
            rule.last_message = rc.check.message
        events = []
        for e in p.events:
            event = AlertEvent(
                rule_id=e.rule_id,
                rule_name=e.rule_name,
                kind=e.kind,
                snapshot_id=p.snapshot.id,
                fired_at=now,
                message=e.message,
                details=e.details,
                link=e.link,
            )
            db.add(event)
            events.append(event)
        db.flush()
        rows = []
        for m in p.messages:
            row = Delivery(
                created_at=now,
                job_id=job_id,
                what=m.what,
                channel=m.channel,
                recipient=m.recipient[:300],
                user_id=m.user_id,
                subject=m.subject[:300],
                snapshot_id=m.snapshot_id,
                subscription_id=m.subscription_id,
                event_id=None if m.event is None else events[m.event].id,
                rule_id=m.rule_id,
                payload=m.payload,
                status=DeliveryStatus.REFUSED if m.refused else DeliveryStatus.PENDING,
                attempts=0,
                error=m.refused,
                log=[],
            )
            db.add(row)
            rows.append(row)
        for sub_id, snapshot_id in p.digests.items():
            sub = db.get(Subscription, sub_id)
            if sub is not None:
                sub.last_sent_at, sub.last_snapshot_id = now, snapshot_id
        db.flush()
        return [r.id for r in rows if r.status == DeliveryStatus.PENDING]


@dataclass
class NotifyReport:
    snapshot_id: int | None
    fired: int = 0
    digests: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.snapshot_id is None:
            sent = f"; {self.delivery}" if self.delivery.sent or self.delivery.failed else ""
            return (self.notes[0] if self.notes else "no snapshot yet: nothing to notify") + sent
        return (
            f"snapshot {self.snapshot_id}: {self.fired} alert(s) fired, {self.digests} digest(s); "
            f"{self.delivery}"
        )


def run_notify(
    engine: Engine,
    settings: Settings,
    *,
    snapshot_id: int | None = None,
    daily: bool = False,
    retry: bool = False,
    job_id: int | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] | None = None,
) -> NotifyReport:
    """Plan, record and deliver (and, first, send again what is pending from an earlier run;
    `retry`: the failed deliveries of the last day too)."""
    if retry:
        retry_failed(engine, since=(now or utcnow()) - pd.Timedelta(days=1))
    p = plan(engine, settings, snapshot_id=snapshot_id, daily=daily, now=now)
    report = NotifyReport(None if p is None else p.snapshot.id)
    if p is None and snapshot_id is not None:
        report.notes = [f"snapshot {snapshot_id} is not published (any more): nothing to notify"]
    if p is not None:
        record(engine, p, job_id)
        report.fired, report.digests = len(p.events), len(p.digests)
        report.notes = p.notes
    report.delivery = deliver(engine, settings, sleep=sleep)
    return report


def notify_job(
    engine: Engine, settings: Settings, job: Job, on_stage: Callable[[str], None]
) -> JobResult:
    """The `notify` job kind: params snapshot_id (after a refit), daily (the daily run), retry
    (send the failed deliveries of the last day again)."""
    params = job.params or {}
    snapshot_id = params.get("snapshot_id")
    if snapshot_id is not None and (
        isinstance(snapshot_id, bool) or not isinstance(snapshot_id, int)
    ):
        return JobResult(JobStatus.FAILED, error=f"snapshot_id must be an id, not {snapshot_id!r}")
    on_stage("checking")
    report = run_notify(
        engine,
        settings,
        snapshot_id=snapshot_id,
        daily=bool(params.get("daily")),
        retry=bool(params.get("retry")),
        job_id=job.id,
    )
    if report.snapshot_id is None:
        return JobResult(JobStatus.SKIPPED, message=report.summary())
    return JobResult(
        JobStatus.DONE,
        message=report.summary(),
        snapshot_id=report.snapshot_id,
        details={
            "fired": report.fired,
            "digests": report.digests,
            "sent": report.delivery.sent,
            "failed": report.delivery.failed,
            "refused": report.delivery.refused,
        },
    )


def notify_after_refit(engine: Engine, snapshot_id: int) -> None:
    """Queue the `notify` job of a snapshot just published. Never raises: a refit that published
    is not failed by its notification (the daily run catches up)."""
    try:
        jobs.enqueue(engine, "notify", {"snapshot_id": snapshot_id}, trigger=Trigger.SCHEDULER)
    except Exception:  # noqa: BLE001 - logged; the daily run sends what this one would have
        log.exception("could not queue the notify job", extra={"snapshot_id": snapshot_id})


def preview(
    engine: Engine,
    settings: Settings,
    exporter: Exporter,
    *,
    role: str,
    frequency: str,
    weekday: int | None,
    period_days: int,
    last_snapshot_id: int | None = None,
) -> str | None:
    """The plain text of the digest a user of `role` would get now (None: no snapshot yet)."""
    snap = snapshots.latest_published(engine)
    if snap is None:
        return None
    sub = Subscription(last_snapshot_id=last_snapshot_id)
    compare = _compare_with(engine, snap, sub)
    digest = DigestBuilder(settings, exporter, snap).digest(role, compare, period_days)
    return render_digest(
        digest, frequency=frequency_text(frequency, weekday), unsubscribe_url=None
    ).text
