"""campaigns: create an audience of (at L) 200,000 customers from the Campaigns page, measure
it, and open its report.

The app runs in this process as production configures it, logged in as a bench analyst through
the login form, as in the `callbacks` stage; every step a user waits for is a POST to
`/_dash-update-component` built from `/_dash-dependencies` (routing, the login guard, the
callback checks, the callback and Dash's serialization count; the network does not). The
latest snapshot's frames are read first, as a web worker's warm-up thread does after a publish.

The audience is every customer whose spend is at least the spend of the 200,000th biggest
spender (a fifth of the customers at L; a fifth at S and M too), held out 10%, over the last 30
days of the data (the campaign window) and the 30 days before it. Per repetition:

- `preview_ms`: the sizes before saving (the form's preview callback);
- `create_s`: "Save campaign": the audience frozen from the snapshot's customers, split
  (seeded, stratified by segment), its members, the campaign and the log written, its first
  measurement queued; `create_cold_s`: the same from the command line's code path with an empty
  cache (the snapshot's customers read from the database first);
- `measure_s`: the `campaign_results` job for this campaign (its members' orders read from the
  transactions, the figures, the lifts, the daily curves, written to the result tables);
- `report_s`: opening the campaign's page (`/campaigns?campaign=N`): the page router's layout
  and the results callback (what the page reads: result tables, never transactions);
- `export_s`: the treatment list as CSV from the page (the file goes to the browser as base64);
- `list_ms`: the campaign list.

Targets (at L): `create_s` and `report_s` under 5 s. The campaigns are deleted at the end.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg

from bench import appenv, dashpost
from bench.harness import Context, median, stage
from bench.stages.callbacks import LoggedIn

AUDIENCE = 200_000
SHARE_AT_MOST = 0.2  # of the customers, at scales smaller than L
WINDOW_DAYS = 30
FORM = {
    "campaign-name.value": None,
    "campaign-snapshot.value": None,
    "campaign-segments.value": [],
    "campaign-stages.value": [],
    "campaign-holdout.value": 10,
    "campaign-start.date": None,
    "campaign-end.date": None,
}


def _threshold(libpq_url: str, snapshot_id: int, size: int) -> tuple[float, int]:
    """The spend of the `size`th biggest spender of the snapshot, and how many spent as much."""
    with psycopg.connect(libpq_url) as conn:
        row = conn.execute(
            "SELECT monetary FROM snapshot_customers WHERE snapshot_id = %s "
            "ORDER BY monetary DESC OFFSET %s LIMIT 1",
            (snapshot_id, size - 1),
        ).fetchone()
        assert row is not None, "fewer customers than the audience"
        spend = float(row[0])
        count = conn.execute(
            "SELECT count(*) FROM snapshot_customers WHERE snapshot_id = %s AND monetary >= %s",
            (snapshot_id, spend),
        ).fetchone()
    assert count is not None
    return spend, int(count[0])


def _post(app: LoggedIn, spec: dict[str, Any], values: dict[str, Any], changed: str) -> Any:
    payload = dashpost.body(spec, values, changed)
    payload["state"] = [
        {**d, "value": values.get(f"{d['id']}.{d['property']}")} for d in spec["state"]
    ]
    took, answer = app.post(payload)
    return took / 1000, answer


@stage(
    "campaigns",
    keys=("audience", "create_s", "create_cold_s", "measure_s", "report_s", "export_s"),
)
def run(ctx: Context) -> dict[str, Any]:
    """Create a 200k-customer audience on the page, measure it, open its report; export."""
    from analytics import campaigns as calc
    from db import campaigns, snapshots
    from db.exporter import Exporter
    from db.snapshot_cache import SnapshotCache
    from webapp import warmup

    appenv.ensure_snapshots(ctx, 1)
    [email] = appenv.ensure_users(ctx, 1)
    facts = appenv.snapshot_facts(ctx)
    latest = facts.snapshot_ids[0]
    app = LoggedIn(ctx, email)
    made: list[int] = []
    try:
        snap = snapshots.get_snapshot(app.engine, latest)
        customers = int(snap.customers or 0)
        size = min(AUDIENCE, max(2, int(customers * SHARE_AT_MOST)))
        spend, audience = _threshold(ctx.libpq_url, latest, size)
        # what a worker's warm-up thread reads after a publish
        warmup.warm(app.state.exporter, snap)
        start = facts.last_day - timedelta(days=WINDOW_DAYS - 1)
        form = {
            **FORM,
            "campaign-snapshot.value": latest,
            "campaign-monetary-min.value": spend,
            "campaign-start.date": start.isoformat(),
            "campaign-end.date": facts.last_day.isoformat(),
        }
        specs = {
            "preview": dashpost.spec_for(app.deps, "campaign-preview.children"),
            "save": dashpost.spec_for(app.deps, "campaign-save-message.children"),
            "router": dashpost.spec_for(app.deps, "_pages_content.children"),
            "results": dashpost.spec_for(app.deps, "campaign-groups.children"),
            "export": dashpost.spec_for(app.deps, "campaign-download.data"),
            "list": dashpost.spec_for(app.deps, "campaigns-list.children"),
        }
        ctx.log(f"  audience: spend >= {spend:,.2f}: {audience:,} of {customers:,} customers")
        runs: list[dict[str, float]] = []
        for i in range(ctx.repeat):
            one: dict[str, float] = {}
            one["preview_ms"], _ = _post(app, specs["preview"], form, "campaign-holdout.value")
            one["preview_ms"] *= 1000
            values = {**form, "campaign-name.value": f"bench {i}", "campaign-save.n_clicks": 1}
            one["create_s"], answer = _post(app, specs["save"], values, "campaign-save.n_clicks")
            href = answer["response"]["campaigns-go"]["href"]
            campaign_id = int(href.rsplit("=", 1)[1])
            made.append(campaign_id)
            # The command line's path: an empty cache, the customers read from the database.
            started = time.perf_counter()
            src = Exporter(app.engine, SnapshotCache()).sources(latest)
            rule = calc.parse_rule({"monetary": [spend, None]})
            cold = campaigns.create(
                app.engine,
                name=f"bench cold {i}",
                rule=rule,
                snapshot=src.snap,
                customers=campaigns.rule_frame(src, rule),
                segments=src.segments,
                start=start,
                end=facts.last_day,
                created_by="bench",
            )
            one["create_cold_s"] = time.perf_counter() - started
            made.append(cold.id)
            started = time.perf_counter()
            measured = campaigns.measure(app.engine, campaign_id)
            one["measure_s"] = time.perf_counter() - started
            assert measured is not None, "nothing measured: no order in the window"
            search = f"?campaign={campaign_id}"
            router_s, _ = _post(
                app,
                specs["router"],
                {"_pages_location.pathname": "/campaigns", "_pages_location.search": search},
                "_pages_location.pathname",
            )
            results_s, answer = _post(
                app,
                specs["results"],
                {"campaign-id.data": campaign_id, "campaign-refreshed.data": 0},
                "campaign-id.data",
            )
            assert answer["response"]["campaign-message"]["children"] is None, answer
            one["report_s"] = router_s + results_s
            one["export_s"], answer = _post(
                app,
                specs["export"],
                {"campaign-export-csv.n_clicks": 1, "campaign-id.data": campaign_id},
                "campaign-export-csv.n_clicks",
            )
            assert answer["response"]["campaign-download"]["data"]["filename"].endswith(".csv")
            one["list_ms"], _ = _post(
                app,
                specs["list"],
                {"campaigns-status.value": "all", "campaigns-search.value": ""},
                "campaigns-status.value",
            )
            one["list_ms"] *= 1000
            runs.append(one)
            ctx.log(
                "  "
                + ", ".join(f"{k} {v:.2f}" for k, v in one.items())
                + f" (campaign {campaign_id}: treatment {measured.groups['customers'].iloc[0]:,})"
            )
        got = campaigns.get(app.engine, made[0])
        return {
            "audience": got.treatment_size + got.holdout_size,
            "treatment": got.treatment_size,
            "holdout": got.holdout_size,
            "customers": customers,
            "window_days": WINDOW_DAYS,
            **{k: round(median([r[k] for r in runs]), 3) for k in runs[0]},
            "runs": runs,
            "targets": {"create_s": 5, "report_s": 5, "applies_at": "L"},
        }
    finally:
        for campaign_id in made:
            campaigns.delete_campaign(app.engine, campaign_id, by="bench")
        app.close()
