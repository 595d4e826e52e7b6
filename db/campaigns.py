"""Campaigns in the database: create (freeze and split), list, read, export, delete, measure.

The computation is in `analytics/campaigns.py`; this module reads and writes. Creating a
campaign evaluates its rule on a snapshot's customers frame (the page passes the one its
`SnapshotCache` holds; the command line reads it, and joins each customer's country from the
transactions when the rule asks for it), draws the split and writes the campaign, its members
and a `create` entry of the log in one transaction. Measuring (`campaign_results_job`, the
`campaign_results` job kind) reads the members' orders from the transactions and writes the
results tables the Campaigns page reads; it is queued after each import, daily
(CUSTSEG_CAMPAIGN_RESULTS_CRON) and by "Refresh results".
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Integer, and_, cast, delete, func, insert, select, update
from sqlalchemy.orm import Session

from analytics import campaigns as calc
from analytics.campaigns import AudienceList, Rule, RuleError
from config import Settings
from db import jobs
from db.bulk import bulk_insert
from db.jobs import JobResult
from db.models import (
    Campaign,
    CampaignDaily,
    CampaignEvent,
    CampaignLift,
    CampaignMember,
    CampaignResult,
    Job,
    JobStatus,
    SegmentLabel,
    Snapshot,
    Transaction,
    Trigger,
)
from db.models.users import utcnow
from db.queries import data_window, read_frame

if TYPE_CHECKING:
    from db.exporter import Exporter

KIND = "campaign_results"  # the job kind (db/scheduler.py)
EXPORT = "campaign_treatment"  # the export of a treatment list (analytics/exports/campaigns.py)
CREATE, EXPORTED, DELETE = "create", "export", "delete"


class UnknownCampaign(LookupError):
    """No campaign with this id."""

    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"no campaign {campaign_id}")


def today() -> date:
    return datetime.now(UTC).date()


def _event(
    campaign: Campaign, action: str, actor: str | None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "campaign_id": campaign.id,
        "campaign_name": campaign.name,
        "action": action,
        "actor": actor,
        "at": utcnow(),
        "treatment": campaign.treatment_size,
        "holdout": campaign.holdout_size,
        "details": details or {},
    }


# --- creating ----------------------------------------------------------------------------------


def customer_countries(engine: Engine, until: date | None = None) -> pd.Series:
    """Each customer's country: the country of their latest line that has one, up to `until`
    inclusive (a snapshot's as-of date). A scan of the transactions: for the command line and
    jobs, never a page."""
    t = Transaction
    ranked = select(
        t.customer_id,
        t.country,
        func.row_number()
        .over(partition_by=t.customer_id, order_by=(t.ordered_at.desc(), t.id.desc()))
        .label("rank"),
    ).where(t.customer_id.is_not(None), t.country.is_not(None))
    if until is not None:
        ranked = ranked.where(
            t.ordered_at < datetime.combine(until + timedelta(days=1), datetime.min.time())
        )
    sub = ranked.subquery()
    stmt = select(sub.c.customer_id, sub.c.country).where(sub.c.rank == 1)
    frame = read_frame(engine, stmt, {"customer_id": str, "country": str})
    return frame.set_index("customer_id")["country"]


def _attributes(audience: pd.DataFrame, fields: tuple[str, ...]) -> list[str]:
    """Each member's values of the rule's other fields as JSON object text (missing: null),
    encoded by pandas in one pass."""
    text = audience[list(fields)].to_json(orient="records", lines=True, double_precision=10)
    return text.splitlines()


def rule_columns() -> set[str]:
    """The columns a snapshot's rule frame may have: its customers' and its predictions' (the
    Campaigns page offers the fields these give)."""
    from db.models import SnapshotCustomer, SnapshotPrediction

    return set(SnapshotCustomer.__table__.columns.keys()) | set(
        SnapshotPrediction.__table__.columns.keys()
    )


def rule_frame(src: Any, rule: Rule) -> pd.DataFrame:
    """The customers frame a rule is evaluated on: the snapshot's customers (`src`: a
    `SnapshotSources`), with the columns of its predictions the rule reads when the snapshot
    has them (`src.predictions`, by customer id; joined only when asked for: a join of 1M
    customers costs about a second)."""
    frame: pd.DataFrame = src.customers
    wanted = [
        calc.FIELDS[n].column
        for n in rule.fields
        if calc.FIELDS[n].column not in frame.columns and calc.FIELDS[n].source == "snapshot"
    ]
    predictions = src.predictions if wanted else None
    # A snapshot whose predictions are pending (or off) has none: the rule then says it cannot
    # be evaluated on this snapshot, rather than matching nobody.
    if isinstance(predictions, pd.DataFrame) and not predictions.empty:
        by_id = predictions.set_index("customer_id")
        frame = frame.assign(
            **{c: frame["customer_id"].map(by_id[c]) for c in wanted if c in by_id.columns}
        )
    return frame


@dataclass(frozen=True)
class Preview:
    """What saving would freeze: the audience, its sizes per segment, the rule in words."""

    rule: Rule
    audience: pd.DataFrame
    sizes: pd.DataFrame  # analytics.campaigns.sizes, with each segment's name
    text: str

    @property
    def treatment(self) -> int:
        return int(self.sizes["treatment"].sum())

    @property
    def holdout(self) -> int:
        return int(self.sizes["holdout"].sum())


def preview(
    rule: Rule | object,
    customers: pd.DataFrame,
    segments: pd.DataFrame,
    snapshot_id: int,
    holdout_share: object,
) -> Preview:
    """The audience a rule selects from a snapshot's customers and the sizes the split will
    give (exact: they do not depend on the seed). `segments`: segment_id, name."""
    share = calc.check_share(holdout_share)
    parsed = rule if isinstance(rule, Rule) else calc.parse_rule(rule)
    calc.check_rule(parsed, customers, segments["segment_id"], snapshot_id)
    chosen = calc.audience(customers, parsed)
    names = dict(zip(segments["segment_id"].astype(int), segments["name"], strict=True))
    table = calc.sizes(chosen["segment_id"].to_numpy(), share)
    table.insert(1, "segment", [names.get(int(s), f"#{s}") for s in table["segment_id"]])
    return Preview(parsed, chosen, table, parsed.describe(names))


def create(
    engine: Engine,
    *,
    name: object,
    rule: Rule | object,
    snapshot: Snapshot,
    customers: pd.DataFrame,
    segments: pd.DataFrame,
    holdout_share: object = calc.DEFAULT_HOLDOUT,
    start: date | None,
    end: date | None = None,
    seed: int | None = None,
    created_by: str | None = None,
    trigger: Trigger = Trigger.CLI,
) -> Campaign:
    """Freeze the audience the rule selects from `snapshot`'s customers and split it.

    `customers`: the snapshot's customers (with a `country` column when the caller joined
    the transactions' countries); `segments`: the snapshot's segment_id and name. Writes the
    campaign, its members and the `create` entry of the log in one transaction, then queues
    its first measurement (`trigger`: who asked). Raises RuleError (nothing written) for a bad
    name, rule, share or dates, or an empty audience.
    """
    name = calc.check_name(name)
    start, end = calc.check_dates(start, end)
    got = preview(rule, customers, segments, snapshot.id, holdout_share)
    share = calc.check_share(holdout_share)
    if got.audience.empty:
        raise RuleError(f"No customer of snapshot {snapshot.id} matches the rule ({got.text}).")
    if got.holdout == 0 or got.treatment == 0:
        raise RuleError(
            f"{len(got.audience):,} customers and a holdout of {share:.0%} leave "
            f"{'no holdout' if got.holdout == 0 else 'no treatment group'}: a campaign needs "
            "both. Widen the rule or change the share."
        )
    seed = secrets.randbits(62) if seed is None else seed
    held = calc.split(got.audience["customer_id"], got.audience["segment_id"], share, seed)
    fields = calc.attribute_fields(got.rule)
    members = pd.DataFrame(
        {
            "customer_id": got.audience["customer_id"],
            "holdout": held,
            "segment_id": got.audience["segment_id"].astype(np.int64),
            "lifecycle_stage": got.audience["lifecycle_stage"].astype(object),
        }
    )
    if fields:  # else NULL: nothing beyond segment and stage to keep
        members["attributes"] = _attributes(got.audience, fields)
    names = {str(int(r.segment_id)): str(r.segment) for r in got.sizes.itertuples()}
    with engine.begin() as conn:
        campaign_id = conn.execute(
            insert(Campaign)
            .values(
                name=name,
                snapshot_id=snapshot.id,
                snapshot_as_of=snapshot.as_of,
                snapshot_fitted_at=snapshot.finished_at,
                rule=got.rule.as_json(),
                rule_text=got.text[:1000],
                segment_names=names,
                holdout_share=share,
                seed=seed,
                start_date=start,
                end_date=end,
                treatment_size=int((~held).sum()),
                holdout_size=int(held.sum()),
                created_by=created_by,
                created_at=utcnow(),
            )
            .returning(Campaign.id)
        ).scalar_one()
        bulk_insert(conn, CampaignMember.__table__, members.assign(campaign_id=campaign_id))  # type: ignore[arg-type]
        campaign = _get(conn, campaign_id)
        by_segment = {
            str(int(s)): {"treatment": int((~held[m]).sum()), "holdout": int(held[m].sum())}
            for s in np.unique(members["segment_id"])
            for m in [members["segment_id"].to_numpy() == s]
        }
        details = {
            "snapshot_id": snapshot.id,
            "rule": got.text,
            "holdout_share": share,
            "seed": seed,
            "by_segment": by_segment,
        }
        conn.execute(insert(CampaignEvent).values(**_event(campaign, CREATE, created_by, details)))
    queue_results(engine, trigger, campaign.id, requested_by=created_by)
    return campaign


# --- reading -----------------------------------------------------------------------------------


def _get(conn: Any, campaign_id: int) -> Campaign:
    with Session(bind=conn, expire_on_commit=False) as db:
        found = db.get(Campaign, campaign_id)
        if found is None:
            raise UnknownCampaign(campaign_id)
        db.expunge(found)
        return found


def get(engine: Engine, campaign_id: int) -> Campaign:
    """Campaign `campaign_id`, or UnknownCampaign."""
    with engine.connect() as conn:
        return _get(conn, campaign_id)


def status_of(campaign: Campaign, on: date | None = None) -> str:
    return calc.status(campaign.start_date, campaign.end_date, on or today())


def _frame(engine: Engine, stmt: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(stmt)
        rows = [tuple(r) for r in result.all()]  # plain tuples: pandas probes Row objects slowly
        return pd.DataFrame(rows, columns=list(result.keys()))


LIST_COLUMNS = (
    "campaign_id",
    "name",
    "status",
    "start_date",
    "end_date",
    "snapshot_id",
    "rule",
    "holdout_share",
    "treatment",
    "holdout",
    "conversion_lift",
    "conversion_low",
    "conversion_high",
    "revenue_lift",
    "revenue_low",
    "revenue_high",
    "results_through",
    "created_by",
    "created_at",
)


def list_campaigns(engine: Engine, on: date | None = None) -> pd.DataFrame:
    """Every campaign, newest first: its status on `on` (default today), sizes and the lift
    of its last measurement (None before the first)."""
    c = Campaign
    frame = _frame(
        engine,
        select(
            c.id.label("campaign_id"),
            c.name,
            c.start_date,
            c.end_date,
            c.snapshot_id,
            c.rule_text.label("rule"),
            c.holdout_share,
            c.treatment_size.label("treatment"),
            c.holdout_size.label("holdout"),
            c.results_through,
            c.created_by,
            c.created_at,
        ).order_by(c.id.desc()),
    )
    day = on or today()
    frame["status"] = [
        calc.status(s, e, day) for s, e in zip(frame["start_date"], frame["end_date"], strict=True)
    ]
    lifts = _frame(
        engine,
        select(
            CampaignLift.campaign_id,
            CampaignLift.metric,
            CampaignLift.lift,
            CampaignLift.low,
            CampaignLift.high,
        ),
    )
    for metric, prefix in ((calc.CONVERSION, "conversion"), (calc.REVENUE, "revenue")):
        part = lifts[lifts["metric"] == metric].set_index("campaign_id")
        for column in ("lift", "low", "high"):
            frame[f"{prefix}_{column}"] = frame["campaign_id"].map(part[column]).astype(float)
    return frame[list(LIST_COLUMNS)]


def segment_names(engine: Engine, campaign: Campaign) -> dict[int, str]:
    """The segments' names: an analyst's name over the one at creation."""
    names = {int(k): v for k, v in (campaign.segment_names or {}).items()}
    labels = _frame(engine, select(SegmentLabel.segment_id, SegmentLabel.name))
    names.update(
        {
            int(i): str(n)
            for i, n in zip(labels["segment_id"], labels["name"], strict=True)
            if int(i) in names
        }
    )
    return names


def members(
    engine: Engine, campaign_id: int, *, holdout: bool | None = None, attributes: bool = True
) -> pd.DataFrame:
    """The frozen members: customer_id, holdout, segment_id, lifecycle_stage and the rule's
    other fields (one column each), by customer id; `holdout` picks one group."""
    m = CampaignMember
    columns = [
        m.customer_id,
        cast(m.holdout, Integer).label("holdout"),  # COPY's CSV writes booleans as t / f
        m.segment_id,
        m.lifecycle_stage,
        *([m.attributes] if attributes else []),
    ]
    stmt = select(*columns).where(m.campaign_id == campaign_id).order_by(m.customer_id)
    if holdout is not None:
        stmt = stmt.where(m.holdout == holdout)
    dtypes = {"customer_id": str, "lifecycle_stage": str, "holdout": "int64", "segment_id": "int64"}
    frame = read_frame(engine, stmt, dtypes)  # COPY on PostgreSQL: 200k members at L
    frame["holdout"] = frame["holdout"].astype(bool)
    values = frame.pop("attributes") if attributes else pd.Series([], dtype=object)
    present = values.notna()
    if present.any():
        parsed = [
            (json.loads(v) if isinstance(v, str) else v) if ok else {}
            for v, ok in zip(values.tolist(), present.tolist(), strict=True)
        ]
        extra = pd.DataFrame.from_records(parsed, index=frame.index)
        for name in calc.ATTRIBUTE_FIELDS:
            if name in extra.columns:
                frame[name] = extra[name]
    return frame


def audience_list(engine: Engine, campaign_id: int) -> AudienceList:
    """What the treatment-list export reads of a campaign (`Sources.campaign`)."""
    campaign = get(engine, campaign_id)
    frame = members(engine, campaign_id)
    names = segment_names(engine, campaign)
    frame.insert(3, "segment", [names.get(int(s), f"#{s}") for s in frame["segment_id"]])
    provenance = {
        "snapshot_id": campaign.snapshot_id,
        "as_of": campaign.snapshot_as_of,
        "data_window": "the audience as frozen when the campaign was created",
        "fitted_at": campaign.snapshot_fitted_at,
        "campaign_id": campaign.id,
        "campaign": campaign.name,
        "group": "treatment (the holdout is never exported)",
        "rule": campaign.rule_text,
        "holdout_share": campaign.holdout_share,
        "seed": campaign.seed,
        "treatment_customers": campaign.treatment_size,
        "holdout_customers": campaign.holdout_size,
        "start_date": campaign.start_date,
        "end_date": campaign.end_date or "open",
        "created_by": campaign.created_by,
        "created_at": campaign.created_at,
    }
    return AudienceList(campaign.id, frame, provenance)


def events(engine: Engine, campaign_id: int | None = None, limit: int = 50) -> pd.DataFrame:
    """The log, newest first: who created, exported or deleted which campaign, and sizes."""
    e = CampaignEvent
    stmt = (
        select(
            e.at,
            e.action,
            e.actor,
            e.campaign_id,
            e.campaign_name,
            e.treatment,
            e.holdout,
            e.details,
        )
        .order_by(e.id.desc())
        .limit(limit)
    )
    if campaign_id is not None:
        stmt = stmt.where(e.campaign_id == campaign_id)
    return _frame(engine, stmt)


@dataclass(frozen=True)
class Report:
    """What the Campaigns page shows of one campaign: all of it read from the result tables."""

    campaign: Campaign
    status: str
    groups: pd.DataFrame  # analytics.campaigns.GROUP_COLUMNS
    lifts: pd.DataFrame  # analytics.campaigns.LIFT_COLUMNS
    daily: pd.DataFrame  # analytics.campaigns.DAILY_COLUMNS
    log: pd.DataFrame


def report(engine: Engine, campaign_id: int, on: date | None = None) -> Report:
    """A campaign and its last measurement (no transaction is read)."""
    campaign = get(engine, campaign_id)
    r, lift, d = CampaignResult, CampaignLift, CampaignDaily
    groups = _frame(
        engine,
        select(*(getattr(r, c) for c in calc.GROUP_COLUMNS)).where(r.campaign_id == campaign_id),
    )
    if not groups.empty:  # window first, treatment first
        rank = groups["period"].map(calc.PERIODS.index) * 2 + groups["group"].map(calc.GROUPS.index)
        groups = groups.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)
    lifts = _frame(
        engine,
        select(*(getattr(lift, c) for c in calc.LIFT_COLUMNS))
        .where(lift.campaign_id == campaign_id)
        .order_by(lift.metric),
    )
    daily = _frame(
        engine,
        select(d.group, d.day, d.revenue_per_customer, d.conversion)
        .where(d.campaign_id == campaign_id)
        .order_by(d.group, d.day),
    )
    return Report(
        campaign, status_of(campaign, on), groups, lifts, daily, events(engine, campaign_id)
    )


# --- exporting and deleting --------------------------------------------------------------------


def export_treatment(
    engine: Engine,
    exporter: Exporter,
    campaign_id: int,
    fmt: str,
    *,
    row_cap: int,
    by: str | None,
    role: str | None = None,
) -> tuple[bytes, str, dict[str, Any]]:
    """The treatment list as CSV or XLSX through the export registry, recorded in the log;
    (file content, file name, provenance)."""
    from analytics.exports import Filters

    campaign = get(engine, campaign_id)
    data, provenance = exporter.file(
        EXPORT,
        Filters(campaign=campaign_id),
        None,
        fmt,
        row_cap=row_cap,
        role=role,
        extra={"exported_by": by or "command line"},
    )
    with engine.begin() as conn:
        details = {"format": fmt, "rows": int(provenance["rows"])}
        conn.execute(insert(CampaignEvent).values(**_event(campaign, EXPORTED, by, details)))
    return data, f"campaign{campaign_id}_treatment.{fmt}", provenance


def delete_campaign(engine: Engine, campaign_id: int, *, by: str | None) -> Campaign:
    """Delete a campaign with its members and results; the log keeps a `delete` entry."""
    with engine.begin() as conn:
        campaign = _get(conn, campaign_id)
        for table in (CampaignMember, CampaignResult, CampaignLift, CampaignDaily):
            conn.execute(delete(table).where(table.campaign_id == campaign_id))
        conn.execute(delete(Campaign).where(Campaign.id == campaign_id))
        conn.execute(insert(CampaignEvent).values(**_event(campaign, DELETE, by)))
    return campaign


# --- measuring ---------------------------------------------------------------------------------


def member_orders(engine: Engine, campaign_id: int, first: date, last: date) -> pd.DataFrame:
    """The members' orders (customer_id, day, total: lines summed per order) on days
    [first, last], read from the transactions; lines without a customer id never match."""
    t, m = Transaction, CampaignMember
    stmt = (
        select(
            t.customer_id,
            func.min(t.ordered_at).label("ordered_at"),
            func.sum(t.amount).label("total"),
        )
        .join(m, and_(m.customer_id == t.customer_id, m.campaign_id == campaign_id))
        .where(
            t.ordered_at >= datetime.combine(first, datetime.min.time()),
            t.ordered_at < datetime.combine(last + timedelta(days=1), datetime.min.time()),
        )
        .group_by(t.customer_id, t.order_id)
    )
    frame = read_frame(engine, stmt, {"customer_id": str, "total": "float64"})
    frame["day"] = pd.to_datetime(frame.pop("ordered_at"), format="ISO8601").dt.normalize()
    return frame


def _write_results(
    engine: Engine, campaign_id: int, result: calc.Measurement | None, note: str | None
) -> None:
    with engine.begin() as conn:
        for table in (CampaignResult, CampaignLift, CampaignDaily):
            conn.execute(delete(table).where(table.campaign_id == campaign_id))
        if result is not None:
            rows = result.groups.astype(object).where(result.groups.notna(), None)
            conn.execute(
                insert(CampaignResult),
                [{"campaign_id": campaign_id, **r} for r in rows.to_dict("records")],
            )
            conn.execute(
                insert(CampaignLift),
                [{"campaign_id": campaign_id, **lift.as_dict()} for lift in result.lifts],
            )
            daily = result.daily.astype(object).where(result.daily.notna(), None)
            conn.execute(
                insert(CampaignDaily),
                [{"campaign_id": campaign_id, **r} for r in daily.to_dict("records")],
            )
        conn.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(
                results_at=utcnow(),
                results_through=result.window.end if result is not None else None,
                results_note=note,
            )
        )


def measure(
    engine: Engine, campaign_id: int, last_day: date | None = None
) -> calc.Measurement | None:
    """Measure one campaign from the transactions as they are and store its results; None
    (with a note on the campaign) while no day on or after its start has orders.
    `last_day`: the last order day in the database (default: read)."""
    campaign = get(engine, campaign_id)
    if last_day is None:
        last_day = data_window(engine)[1]
    win = calc.window(campaign.start_date, campaign.end_date, last_day)
    if win is None:
        ends = f" (the data ends on {last_day})" if last_day else ""
        _write_results(
            engine, campaign_id, None, f"No orders on or after the start date yet{ends}."
        )
        return None
    frame = members(engine, campaign_id, attributes=False)[["customer_id", "holdout"]]
    orders = member_orders(engine, campaign_id, win.before_start, win.end)
    result = calc.measure(frame, orders, win)
    _write_results(engine, campaign_id, result, None)
    return result


def campaign_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(select(Campaign.id).order_by(Campaign.id)))


def campaign_results_job(
    engine: Engine, settings: Settings, job: Job, on_stage: Callable[[str], None]
) -> JobResult:
    """The `campaign_results` job: measure one campaign (params {"campaign_id": N}) or all of
    them. A campaign that fails does not stop the others; the job then fails naming it."""
    wanted = job.params.get("campaign_id") if isinstance(job.params, dict) else None
    ids = [int(wanted)] if isinstance(wanted, int) else campaign_ids(engine)
    if not ids:
        return JobResult(JobStatus.SKIPPED, message="no campaign to measure")
    last_day = data_window(engine)[1]
    measured, waiting, failed = 0, 0, []
    for campaign_id in ids:
        on_stage(f"campaign {campaign_id}")
        try:
            done = measure(engine, campaign_id, last_day)
        except UnknownCampaign:
            continue  # deleted since it was queued
        except Exception as exc:  # noqa: BLE001 - reported in the job's outcome
            failed.append(f"campaign {campaign_id}: {type(exc).__name__}: {exc}")
            continue
        measured += done is not None
        waiting += done is None
    text = f"{measured} campaign(s) measured through {last_day}" + (
        f", {waiting} waiting for orders after their start" if waiting else ""
    )
    details = {"campaigns": ids, "measured": measured, "waiting": waiting}
    if failed:
        return JobResult(JobStatus.FAILED, message=text, error="; ".join(failed), details=details)
    return JobResult(JobStatus.DONE, message=text, details=details)


def queue_results(
    engine: Engine,
    trigger: Trigger,
    campaign_id: int | None = None,
    requested_by: str | None = None,
) -> Job | None:
    """Queue a `campaign_results` job (one campaign, or all); None when there is no campaign
    to measure. An identical job still waiting is reused (db/jobs.py)."""
    if campaign_id is None and not campaign_ids(engine):
        return None
    params = {} if campaign_id is None else {"campaign_id": campaign_id}
    job, _ = jobs.enqueue(engine, KIND, params, trigger=trigger, requested_by=requested_by)
    return job


def after_import(engine: Engine) -> Job | None:
    """New transactions (an import, a sync): measure every campaign again."""
    return queue_results(engine, Trigger.IMPORT)
