"""Per-customer predictions: expected orders, churn risk and 12-month CLV, with a backtest (pure).

Buy-till-you-die models from pymc-marketing, fitted by MAP on each customer's purchase history:
BG/NBD and Pareto/NBD for the number of future orders, Gamma-Gamma for the value of an order.
Reasons and measured figures: docs/FEATURES.md, "Predictions".

pymc-marketing is imported inside the functions, never at module import: web workers import
`analytics` and the import costs ~250 MB and seconds. Call `configure_compile_dir` (or pass
`compile_dir` in the settings) before the first fit: pytensor compiles the models on first use
and caches the result in a directory that must be writable.

Conventions: the input is an order table (customer_id, ordered_at, total; order_id optional),
one row per order. An order with a total > 0 is a purchase; returns and cancellations (total <= 0)
are not. Time is in days. Orders up to and including the `as_of` day are history: the
observation period ends at midnight after it, so "the next 90 days" are the 90 days after the
as-of day. For a customer, *frequency* = repeat purchases (purchases after the first),
*recency* = days from the first to the last purchase, *T* = days from the first purchase to the
end of the observation period, *monetary_value* = mean total of the repeat purchases (0 without).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pymc_marketing.clv import GammaGammaModel

BG_NBD = "bg_nbd"
PARETO_NBD = "pareto_nbd"
GAMMA_GAMMA = "gamma_gamma"
PURCHASE_MODELS = (BG_NBD, PARETO_NBD)
# When the backtest cannot rank the models (history too short, or everybody or nobody bought
# in the window): BG/NBD, which is the cheaper of the two to fit and to predict with.
DEFAULT_PURCHASE_MODEL = BG_NBD
AUC_TIE = 0.005  # a smaller difference is noise: the cheaper model (BG/NBD) serves

NO_POSITIVE_ORDER = "no positive order (only returns or zero-total orders)"
PREDICTION_COLUMNS = ("expected_orders_90d", "churn_risk", "clv_12m")
# The backtest's calibration table: one row per decile of predicted orders.
DECILE_COLUMNS = (
    "decile",
    "customers",
    "predicted_orders",
    "actual_orders",
    "predicted_revenue",
    "actual_revenue",
)
_DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class PredictionSettings:
    """What a prediction run depends on. `annual_discount_rate` discounts the CLV's future
    months (10% a year by default); `holdout_days` is the backtest window (None: 90 days or a
    quarter of the history, whichever is shorter); `purchase_model` forces BG/NBD or
    Pareto/NBD instead of the one the backtest ranks best; `fit_sample` caps the customers the
    models' parameters are fitted on (a seeded random sample; every customer is predicted);
    `backtest_sample` caps the customers the backtest compares; `compile_dir` is pytensor's
    cache (None: `default_compile_dir()`)."""

    horizon_days: int = 90
    clv_months: int = 12
    annual_discount_rate: float = 0.10
    holdout_days: int | None = None
    purchase_model: str | None = None
    seed: int = 42
    fit_sample: int | None = 20_000
    backtest_sample: int | None = 100_000
    compile_dir: str | None = None

    def __post_init__(self) -> None:
        if self.horizon_days < 1:
            raise ValueError(f"horizon_days must be at least 1, got {self.horizon_days}")
        if self.clv_months < 1:
            raise ValueError(f"clv_months must be at least 1, got {self.clv_months}")
        if not 0 <= self.annual_discount_rate < 1:
            raise ValueError(
                f"annual_discount_rate must be in [0, 1), got {self.annual_discount_rate}"
            )
        if self.fit_sample is not None and self.fit_sample < 100:
            raise ValueError(f"fit_sample must be at least 100 customers, got {self.fit_sample}")
        if self.backtest_sample is not None and self.backtest_sample < 100:
            raise ValueError(
                f"backtest_sample must be at least 100 customers, got {self.backtest_sample}"
            )
        if self.holdout_days is not None and self.holdout_days < 1:
            raise ValueError(f"holdout_days must be at least 1, got {self.holdout_days}")
        if self.purchase_model is not None and self.purchase_model not in PURCHASE_MODELS:
            raise ValueError(
                f"purchase_model must be one of {', '.join(PURCHASE_MODELS)}, "
                f"got {self.purchase_model!r}"
            )

    @property
    def monthly_discount_rate(self) -> float:
        return (1 + self.annual_discount_rate) ** (1 / 12) - 1

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("compile_dir")
        return out


@dataclass(frozen=True)
class ModelFit:
    """One fitted model: its MAP parameters, how long the fit took and on how many customers."""

    name: str
    params: dict[str, float]
    fit_seconds: float
    customers: int
    note: str | None = None  # why a fitted model is not used


@dataclass
class Predictions:
    """A prediction run. `customers` has one row per customer with an order up to `as_of`:
    customer_id, frequency, recency, T, monetary_value, expected_orders_90d, churn_risk,
    clv_12m and unscored_reason (None when scored; the predictions are NaN otherwise)."""

    as_of: date
    purchase_model: str
    choice: str  # why that purchase model serves
    customers: pd.DataFrame
    models: dict[str, ModelFit]
    settings: PredictionSettings
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def unscored(self) -> dict[str, int]:
        """Customers the models could not score, counted by reason."""
        reasons = self.customers["unscored_reason"].dropna()
        return {str(k): int(v) for k, v in reasons.value_counts().sort_index().items()}

    def as_dict(self) -> dict[str, Any]:
        """Everything but the per-customer frame, JSON-ready (for the snapshot's metadata)."""
        scored = self.customers["unscored_reason"].isna()
        return {
            "as_of": self.as_of.isoformat(),
            "purchase_model": self.purchase_model,
            "choice": self.choice,
            "customers_scored": int(scored.sum()),
            "customers_unscored": self.unscored,
            "models": {name: asdict(fit) for name, fit in self.models.items()},
            "settings": self.settings.as_dict(),
            "timings": self.timings,
        }


@dataclass
class Backtest:
    """Models fitted on the history up to `cutoff`, compared with what happened in the
    `holdout_days` after it (up to `as_of`).

    `models`: one row per purchase model (model, fit_seconds, customers, predicted_orders,
    actual_orders, predicted_revenue, actual_revenue, correlation, mae, baseline_mae, auc), on
    the customers known at the cutoff, or a random `backtest_sample` of them (`customers` of
    `customers_known`). `deciles`: the best model's customers by decile of predicted orders
    (1 = lowest): customers, predicted_orders, actual_orders, predicted_revenue,
    actual_revenue (sums). `new_customers` / `new_customer_orders`: customers whose first
    purchase lies in the window (no model can predict them) and their orders."""

    as_of: date
    cutoff: date
    holdout_days: int
    best: str
    models: pd.DataFrame
    deciles: pd.DataFrame
    customers_known: int
    new_customers: int
    new_customer_orders: int
    unscored: dict[str, int]
    fits: dict[str, ModelFit]
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: summary figures per model and the deciles (for the snapshot)."""
        return {
            "as_of": self.as_of.isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "holdout_days": self.holdout_days,
            "best": self.best,
            "models": _records(self.models),
            "deciles": _records(self.deciles),
            "customers_known": self.customers_known,
            "new_customers": self.new_customers,
            "new_customer_orders": self.new_customer_orders,
            "customers_unscored": self.unscored,
            "fits": {name: asdict(fit) for name, fit in self.fits.items()},
            "timings": self.timings,
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


class BacktestUnavailable(ValueError):
    """The history cannot hold a backtest (too short, or too few customers before the cutoff)."""


# --- pytensor's compile cache ------------------------------------------------------------


def default_compile_dir() -> Path:
    """~/.cache/custseg-pytensor when the home directory is writable (kept between runs: a cold
    compile costs ~10-20 s), else a new private temporary directory. Never a fixed path under
    /tmp: pytensor loads compiled code from it, and another user could plant some there."""
    home = Path.home()
    if home.is_dir() and os.access(home, os.W_OK):
        return home / ".cache" / "custseg-pytensor"
    return Path(tempfile.mkdtemp(prefix="custseg-pytensor-"))


def configure_compile_dir(path: str | Path | None = None) -> Path:
    """Point pytensor's compile cache (its C modules and Numba cache) at `path`, creating it.

    Must run before pytensor is first imported in the process: pytensor reads the directory at
    import. A `base_compiledir` already given in PYTENSOR_FLAGS wins. Returns the directory
    pytensor uses.
    """
    if "pytensor" in sys.modules:
        import pytensor

        return Path(pytensor.config.base_compiledir)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "base_compiledir" in flags:
        given = [f for f in flags.split(",") if f.strip().startswith("base_compiledir")]
        return Path(given[-1].split("=", 1)[1].strip())
    target = Path(path) if path is not None else default_compile_dir()
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    prune_compile_cache(target)
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={target}") if f)
    return target


def prune_compile_cache(base: Path, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete the compiled model graphs older than `older_than` from pytensor's Numba cache
    under `base`; returns how many files went.

    pymc-marketing builds each model with the customers' data as constants, so the compiled
    graph of a fit (`numba_funcified_fgraph` files, ~1-2 MB each) is specific to its data and
    never used again by a later refit: kept, they would add ~10-30 MB per refit forever. The
    compiled operations (`numba_composite`, `elemwise`, ...) do not depend on the data and
    are kept: they are most of a cold start (~10-20 s)."""
    cache = base / "numba"
    if not cache.is_dir():
        return 0
    limit = time.time() - older_than.total_seconds()
    gone = 0
    for entry in cache.glob("*numba_funcified_fgraph*"):
        try:
            if entry.stat().st_mtime < limit:
                entry.unlink()
                gone += 1
        except OSError:  # another process pruned or replaced it meanwhile
            continue
    return gone


@contextmanager
def _quiet() -> Iterator[None]:
    """pymc-marketing warns about T=0 (a first purchase on the last day) and its own API moves;
    neither is actionable for the app's users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- summaries ---------------------------------------------------------------------------


def _check_orders(orders: pd.DataFrame) -> None:
    missing = [c for c in ("customer_id", "ordered_at", "total") if c not in orders.columns]
    if missing:
        raise ValueError(f"order table: missing column(s) {', '.join(missing)}")
    if not pd.api.types.is_datetime64_any_dtype(orders["ordered_at"]):
        raise ValueError(
            f"order table: ordered_at must be datetimes, got {orders['ordered_at'].dtype}"
        )
    if not pd.api.types.is_numeric_dtype(orders["total"]):
        raise ValueError(f"order table: total must be numeric, got {orders['total'].dtype}")
    bad = orders["customer_id"].isna() | orders["ordered_at"].isna() | orders["total"].isna()
    if bad.any():
        row = orders.index[bad.to_numpy()][0]
        raise ValueError(
            f"order table: {int(bad.sum())} order(s) without customer_id, ordered_at or "
            f"total (first at row {row})"
        )


def _period_end(as_of: date) -> pd.Timestamp:
    return pd.Timestamp(as_of) + pd.Timedelta(days=1)


def _micros(moment: pd.Timestamp) -> int:
    return int(moment.to_datetime64().astype("datetime64[us]").view(np.int64))


class History(Protocol):
    """What the models read of an order history: the per-customer summary as of a day, the
    positive orders of a window, the first purchase day. `_History` computes them from an order
    table in memory; the Spark engine's `db.spark_refit.SparkHistory` in Spark, the same way."""

    def first_purchase_day(self, as_of: date) -> date | None: ...

    def summary(self, as_of: date) -> pd.DataFrame: ...

    def window(self, after: date, as_of: date) -> pd.DataFrame: ...


@dataclass
class _History:
    """An order table as integer customer codes (in customer_id order), with every order
    sorted by customer, time and total: one sort serves the summaries of any as-of date, and
    "the first purchase" is the same whatever order the rows came in (two orders with one
    timestamp: the smaller total first)."""

    ids: pd.Index  # customer_id of each code
    codes: np.ndarray
    stamps: np.ndarray  # microseconds since the epoch
    totals: np.ndarray

    @classmethod
    def of(cls, orders: pd.DataFrame) -> _History:
        _check_orders(orders)
        codes, ids = pd.factorize(orders["customer_id"], sort=True)
        stamps = orders["ordered_at"].to_numpy(dtype="datetime64[us]").view(np.int64)
        totals = orders["total"].to_numpy(dtype=float)
        order = np.lexsort((totals, stamps, codes))
        return cls(pd.Index(ids, name="customer_id"), codes[order], stamps[order], totals[order])

    def first_purchase_day(self, as_of: date) -> date | None:
        mask = (self.totals > 0) & (self.stamps < _micros(_period_end(as_of)))
        if not mask.any():
            return None
        return pd.Timestamp(int(self.stamps[mask].min()), unit="us").date()

    def summary(self, as_of: date) -> pd.DataFrame:
        """rfm_summary, with `code` (the customer's integer code) beside customer_id."""
        end = _micros(_period_end(as_of))
        past = self.stamps < end
        seen = np.flatnonzero(np.bincount(self.codes[past], minlength=len(self.ids)))
        buy = past & (self.totals > 0)
        codes, stamps, totals = self.codes[buy], self.stamps[buy], self.totals[buy]
        n = len(self.ids)
        frequency = np.full(n, np.nan)
        recency = np.full(n, np.nan)
        t_obs = np.full(n, np.nan)
        monetary = np.full(n, np.nan)
        if len(codes):
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
            counts = np.diff(np.r_[starts, len(codes)])
            repeat = totals.copy()
            repeat[starts] = 0.0
            repeat_sum = np.add.reduceat(repeat, starts)
            first, last = stamps[starts], stamps[starts + counts - 1]
            who = codes[starts]
            frequency[who] = counts - 1
            recency[who] = (last - first) / _DAY_US
            t_obs[who] = (end - first) / _DAY_US
            monetary[who] = np.where(counts > 1, repeat_sum / np.maximum(counts - 1, 1), 0.0)
        out = pd.DataFrame(
            {
                "customer_id": self.ids.take(seen),
                "code": seen,
                "frequency": frequency[seen],
                "recency": recency[seen],
                "T": t_obs[seen],
                "monetary_value": monetary[seen],
            }
        )
        reason = pd.Series(None, index=out.index, dtype=object)
        reason[out["frequency"].isna()] = NO_POSITIVE_ORDER
        out["unscored_reason"] = reason
        return out

    def window(self, after: date, as_of: date) -> pd.DataFrame:
        """Positive orders after the `after` day up to the `as_of` day, per customer code:
        code, orders, revenue."""
        lo, hi = _micros(_period_end(after)), _micros(_period_end(as_of))
        mask = (self.stamps >= lo) & (self.stamps < hi) & (self.totals > 0)
        codes = self.codes[mask]
        n = len(self.ids)
        orders = np.bincount(codes, minlength=n)
        revenue = np.bincount(codes, weights=self.totals[mask], minlength=n)
        who = np.flatnonzero(orders)
        return pd.DataFrame(
            {"code": who, "orders": orders[who].astype(float), "revenue": revenue[who]}
        )


def rfm_summary(orders: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """One row per customer with an order up to `as_of` (day inclusive), in customer_id order:
    customer_id, frequency, recency, T (days), monetary_value, and unscored_reason (None, or
    why no model can score the customer: no positive order; the figures are then NaN)."""
    return _History.of(orders).summary(as_of).drop(columns=["code"])


# --- models ------------------------------------------------------------------------------


def _params(model: Any, names: tuple[str, ...]) -> dict[str, float]:
    post = model.fit_result
    return {n: float(np.asarray(post[n].values).ravel()[0]) for n in names}


_PARAM_NAMES = {BG_NBD: ("a", "b", "alpha", "r"), PARETO_NBD: ("r", "alpha", "s", "beta")}


def _sample(data: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """At most `n` rows, drawn at random with `seed` (the same rows for the same data)."""
    if n is None or len(data) <= n:
        return data.reset_index(drop=True)
    return data.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def _fit_purchase(
    name: str, rfm: pd.DataFrame, seed: int, sample: int | None
) -> tuple[Any, ModelFit]:
    from pymc_marketing.clv import BetaGeoModel, ParetoNBDModel

    cls = BetaGeoModel if name == BG_NBD else ParetoNBDModel
    data = _sample(rfm[["customer_id", "frequency", "recency", "T"]], sample, seed)
    model = cls()
    started = time.perf_counter()
    with _quiet():
        # method="map": the data go to fit() in 1.x, and an unknown keyword such as the old
        # fit_method= is silently ignored and runs full MCMC instead.
        model.fit(data, method="map", progressbar=False, random_seed=seed)
    seconds = time.perf_counter() - started
    return model, ModelFit(name, _params(model, _PARAM_NAMES[name]), round(seconds, 3), len(data))


def _fit_spend(
    rfm: pd.DataFrame, seed: int, sample: int | None
) -> tuple[GammaGammaModel | None, ModelFit | None]:
    """Gamma-Gamma on the repeat buyers (its data: customers with repeat purchases of positive
    mean value), by maximum likelihood (flat priors).

    pymc-marketing's default priors (v ~ Weibull(2, 10) among them) assume order values of a
    few units: on the Online Retail sample (hundreds of pounds) they pulled q to 0.99 at the
    backtest's cutoff, where the model has no finite mean and every prediction is meaningless,
    and the population mean to 1,154 against 381 observed. The likelihood alone does not
    depend on the currency. Returns no model (spend is then each customer's mean repeat order)
    when there are fewer than two repeat buyers or the fit has no finite mean (q <= 1)."""
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import GammaGammaModel

    repeat = rfm[(rfm["frequency"] > 0) & (rfm["monetary_value"] > 0)]
    if len(repeat) < 2:
        return None, None
    data = _sample(repeat[["customer_id", "frequency", "monetary_value"]], sample, seed)
    model = GammaGammaModel(model_config={n: Prior("HalfFlat") for n in ("p", "q", "v")})
    started = time.perf_counter()
    with _quiet():
        model.fit(data, method="map", progressbar=False, random_seed=seed)
    seconds = time.perf_counter() - started
    params = _params(model, ("p", "q", "v"))
    usable = all(math.isfinite(v) for v in params.values()) and params["q"] > 1
    note = None if usable else "no finite mean order value (q <= 1): observed means used"
    fit = ModelFit(GAMMA_GAMMA, params, round(seconds, 3), len(data), note)
    return (model if usable else None), fit


@contextmanager
def _likelihood_once(model: Any) -> Iterator[None]:
    """Within the block, Pareto/NBD's likelihood of a history is computed once.

    pymc-marketing's Pareto/NBD predictions each compile and evaluate the likelihood of every
    customer's history (`_logp`), the same for each call on the same data: the CLV calls
    `expected_purchases` once per month (12 times at a 12-month horizon). That evaluation is
    most of their cost (hypergeometric functions), so its result is kept for the block.
    """
    original = model._logp
    memo: dict[tuple[Any, ...], Any] = {}

    def logp(*args: Any) -> Any:
        key = tuple(hash(np.asarray(a.values).tobytes()) for a in args)
        if key not in memo:
            memo[key] = original(*args)
        return memo[key]

    model._logp = logp
    try:
        yield
    finally:
        del model._logp


def _values(array: Any, ids: pd.Series) -> np.ndarray:
    """An xarray result (chain, draw, customer_id), MAP: one chain and one draw, in `ids` order
    (xarray may reorder coordinates when it combines them)."""
    squeezed = array.squeeze(("chain", "draw"), drop=True)
    wanted = ids.to_numpy()
    if np.array_equal(squeezed["customer_id"].to_numpy(), wanted):
        return np.asarray(squeezed.to_numpy(), dtype=float)
    return squeezed.to_series().reindex(wanted).to_numpy(dtype=float)


def _bg_nbd_no_purchase(model: Any, data: pd.DataFrame, days: float) -> np.ndarray:
    """P(no purchase in the next `days`) under BG/NBD.

    pymc-marketing 1.3's `expected_probability_no_purchase` follows eq. 34 of Fader & Hardie's
    BG/NBD derivation but drops its indicator δ(x > 0) on the term for having dropped out after
    the last repeat purchase, which a customer without repeat purchases cannot have done: their
    values come out too high (0.97 instead of 0.93 on average on the CDNOW sample). For them
    the exact value is E[exp(-λ·days)] under the posterior Gamma(r, α + T) of their purchase
    rate: ((α + T) / (α + T + days))^r. The library's value is kept for repeat buyers.
    """
    with _quiet():
        lib = _values(
            model.expected_probability_no_purchase(t=days, data=data), data["customer_id"]
        )
    p = _params(model, ("alpha", "r"))
    T = data["T"].to_numpy(dtype=float)
    one_time = ((p["alpha"] + T) / (p["alpha"] + T + days)) ** p["r"]
    return np.where(data["frequency"].to_numpy() > 0, lib, one_time)


def _purchase_predictions(
    name: str, model: Any, data: pd.DataFrame, days: float
) -> tuple[np.ndarray, np.ndarray]:
    """Expected purchases in the next `days` and P(no purchase in them), per row of `data`."""
    ids = data["customer_id"]
    with _quiet():
        expected = _values(model.expected_purchases(data=data, future_t=days), ids)
        if name == BG_NBD:
            none = _bg_nbd_no_purchase(model, data, days)
        else:
            none = _values(
                model.expected_purchase_probability(data=data, n_purchases=0, future_t=days), ids
            )
    return expected, np.clip(none, 0.0, 1.0)


def _expected_spend(gg: Any, data: pd.DataFrame) -> np.ndarray:
    """Expected value of a future order per customer: Gamma-Gamma's estimate (the population
    mean for customers without repeat purchases), or without a fitted model the mean repeat
    order where there is one."""
    if gg is None:
        values = data["monetary_value"].to_numpy(dtype=float)
        fallback = float(values[values > 0].mean()) if (values > 0).any() else 0.0
        return np.where(values > 0, values, fallback)
    with _quiet():
        return _values(gg.expected_customer_spend(data=data), data["customer_id"])


def _clv(gg: Any, model: Any, data: pd.DataFrame, settings: PredictionSettings) -> np.ndarray:
    """Discounted value of the next `clv_months` months (pymc-marketing's
    customer_lifetime_value: `future_t` is in months, whatever the time unit of the data)."""
    from pymc_marketing.clv.utils import customer_lifetime_value

    spend = _expected_spend(gg, data)
    with _quiet():
        clv = customer_lifetime_value(
            transaction_model=model,
            data=data.assign(future_spend=spend),
            future_t=settings.clv_months,
            discount_rate=settings.monthly_discount_rate,
            time_unit="D",
        )
    return _values(clv, data["customer_id"])


# --- predictions -------------------------------------------------------------------------


def _model_data(summary: pd.DataFrame) -> pd.DataFrame:
    """The scored rows, keyed for the models by integer code (xarray coordinates of integers
    are cheaper than of strings at a million customers)."""
    scored = summary[summary["unscored_reason"].isna()]
    data = scored[["code", "frequency", "recency", "T", "monetary_value"]]
    return data.rename(columns={"code": "customer_id"}).reset_index(drop=True)


def predict(
    orders: pd.DataFrame,
    as_of: date,
    settings: PredictionSettings | None = None,
    purchase_model: str | None = None,
    choice: str | None = None,
) -> Predictions:
    """Fit the purchase model (`purchase_model`, else the settings', else BG/NBD) and
    Gamma-Gamma on the history up to `as_of`, and predict every customer's next
    `horizon_days` and `clv_months`. `choice` records why that model serves."""
    return _predict(
        _History.of(orders), as_of, settings or PredictionSettings(), purchase_model, choice
    )


def _predict(
    history: History,
    as_of: date,
    settings: PredictionSettings,
    purchase_model: str | None = None,
    choice: str | None = None,
) -> Predictions:
    name = purchase_model or settings.purchase_model or DEFAULT_PURCHASE_MODEL
    if name not in PURCHASE_MODELS:
        raise ValueError(
            f"purchase_model must be one of {', '.join(PURCHASE_MODELS)}, got {name!r}"
        )
    configure_compile_dir(settings.compile_dir)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    summary = history.summary(as_of)
    data = _model_data(summary)
    timings["summary"] = round(time.perf_counter() - clock, 3)
    if len(data) < 2:
        raise ValueError(
            f"only {len(data)} customer(s) with a positive order up to {as_of}: "
            "the models need at least 2"
        )

    model, fit = _fit_purchase(name, data, settings.seed, settings.fit_sample)
    gg, gg_fit = _fit_spend(data, settings.seed, settings.fit_sample)
    timings["fit"] = round(fit.fit_seconds + (gg_fit.fit_seconds if gg_fit else 0.0), 3)

    clock = time.perf_counter()
    with _likelihood_once(model) if name == PARETO_NBD else nullcontext():
        expected, no_purchase = _purchase_predictions(name, model, data, settings.horizon_days)
        clv = _clv(gg, model, data, settings)
    timings["predict"] = round(time.perf_counter() - clock, 3)

    out = summary.drop(columns=["code"])
    scored = out["unscored_reason"].isna().to_numpy()
    for column, values in zip(PREDICTION_COLUMNS, (expected, no_purchase, clv), strict=True):
        full = np.full(len(out), np.nan)
        full[scored] = values
        out[column] = full
    models = {name: fit}
    if gg_fit is not None:
        models[GAMMA_GAMMA] = gg_fit
    return Predictions(
        as_of=as_of,
        purchase_model=name,
        choice=choice or ("set in the settings" if settings.purchase_model else "default"),
        customers=out,
        models=models,
        settings=settings,
        timings=timings,
    )


# --- backtest ----------------------------------------------------------------------------


def default_holdout_days(first_day: date, as_of: date) -> int:
    """90 days, or a quarter of the history (first purchase day to as-of day, both counted)
    when that is shorter: a short history keeps three quarters to fit on."""
    history = (as_of - first_day).days + 1
    return min(90, history // 4)


def compare(predicted: pd.DataFrame, actual: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
    """Score predictions for a window against what happened in it.

    `predicted`: customer_id, expected_orders, churn_risk, expected_revenue (one row per
    customer known before the window). `actual`: customer_id, orders, revenue (positive orders
    in the window; customers without any may be missing). Returns the summary (predicted and
    actual orders and revenue, Pearson correlation of predicted and actual orders per customer,
    mean absolute error of the orders and of the "nobody buys" baseline, and the AUC of
    churn_risk as a ranking of who did not buy) and the deciles of predicted orders.
    """
    from sklearn.metrics import roc_auc_score

    act = actual.set_index("customer_id").reindex(predicted["customer_id"])
    act = act.fillna(0.0)
    pred_orders = predicted["expected_orders"].to_numpy(dtype=float)
    act_orders = act["orders"].to_numpy(dtype=float)
    act_revenue = act["revenue"].to_numpy(dtype=float)
    pred_revenue = predicted["expected_revenue"].to_numpy(dtype=float)
    churned = act_orders == 0
    both = 0 < churned.sum() < len(churned)
    varies = len(pred_orders) > 1 and pred_orders.std() > 0 and act_orders.std() > 0
    summary = {
        "customers": int(len(predicted)),
        "predicted_orders": float(pred_orders.sum()),
        "actual_orders": float(act_orders.sum()),
        "predicted_revenue": float(pred_revenue.sum()),
        "actual_revenue": float(act_revenue.sum()),
        "correlation": float(np.corrcoef(pred_orders, act_orders)[0, 1]) if varies else math.nan,
        "mae": float(np.abs(pred_orders - act_orders).mean()) if len(act_orders) else math.nan,
        "baseline_mae": float(act_orders.mean()) if len(act_orders) else math.nan,
        "auc": (
            float(roc_auc_score(churned, predicted["churn_risk"].to_numpy(dtype=float)))
            if both
            else math.nan
        ),
    }
    bins = min(10, len(predicted))
    if bins:
        # Ranks, ties broken by row order: equal predictions (many one-time buyers) would
        # otherwise make qcut drop bins.
        ranks = pd.Series(pred_orders).rank(method="first").to_numpy()
        decile = pd.qcut(ranks, bins, labels=False) + 1
    else:
        decile = np.array([], dtype=int)
    frame = pd.DataFrame(
        {
            "decile": decile,
            "predicted_orders": pred_orders,
            "actual_orders": act_orders,
            "predicted_revenue": pred_revenue,
            "actual_revenue": act_revenue,
        }
    )
    g = frame.groupby("decile")
    deciles = g.sum().assign(customers=g.size()).reset_index()
    deciles = deciles[list(DECILE_COLUMNS)]
    return summary, deciles


def backtest(
    orders: pd.DataFrame, as_of: date, settings: PredictionSettings | None = None
) -> Backtest:
    """Fit the purchase models (both, or the one the settings force) and Gamma-Gamma on the
    history up to as_of - holdout, predict the holdout window, and compare with what happened.
    The best model is the one whose churn risk ranks the window's non-buyers best (AUC; within
    AUC_TIE, BG/NBD)."""
    return _backtest(_History.of(orders), as_of, settings or PredictionSettings())


def _backtest(history: History, as_of: date, settings: PredictionSettings) -> Backtest:
    configure_compile_dir(settings.compile_dir)
    clock = time.perf_counter()
    first_day = history.first_purchase_day(as_of)
    if first_day is None:
        raise BacktestUnavailable(f"no positive order up to {as_of}: nothing to backtest")
    holdout = settings.holdout_days or default_holdout_days(first_day, as_of)
    cutoff = as_of - timedelta(days=holdout)
    if holdout < 1 or cutoff < first_day:
        raise BacktestUnavailable(
            f"history from {first_day} to {as_of} is too short for a backtest "
            f"(holdout of {holdout} days)"
        )
    summary = history.summary(cutoff)
    unscored = summary["unscored_reason"].dropna().value_counts()
    data = _model_data(summary)
    if len(data) < 2:
        raise BacktestUnavailable(
            f"only {len(data)} customer(s) with a positive order up to {cutoff}: "
            "the models need at least 2"
        )
    actual = history.window(cutoff, as_of).rename(columns={"code": "customer_id"})
    known = actual["customer_id"].isin(data["customer_id"])
    # Customers with only returns up to the cutoff and a purchase in the window are "new" here
    # too: the models had nothing to predict them from.
    new = actual[~known]
    customers_known = len(data)
    compared = _sample(data, settings.backtest_sample, settings.seed)
    timings = {"summary": round(time.perf_counter() - clock, 3)}

    gg, gg_fit = _fit_spend(data, settings.seed, settings.fit_sample)
    spend = _expected_spend(gg, compared)
    rows = []
    decile_frames = {}
    fits: dict[str, ModelFit] = {}
    names = (settings.purchase_model,) if settings.purchase_model else PURCHASE_MODELS
    for name in names:
        model, fit = _fit_purchase(name, data, settings.seed, settings.fit_sample)
        fits[name] = fit
        clock = time.perf_counter()
        with _likelihood_once(model) if name == PARETO_NBD else nullcontext():
            expected, no_purchase = _purchase_predictions(name, model, compared, holdout)
        predicted = pd.DataFrame(
            {
                "customer_id": compared["customer_id"],
                "expected_orders": expected,
                "churn_risk": no_purchase,
                "expected_revenue": expected * spend,
            }
        )
        scores, deciles = compare(predicted, actual[known])
        timings[f"predict_{name}"] = round(time.perf_counter() - clock, 3)
        rows.append({"model": name, "fit_seconds": fit.fit_seconds, **scores})
        decile_frames[name] = deciles
    if gg_fit is not None:
        fits[GAMMA_GAMMA] = gg_fit
    table = pd.DataFrame(rows)
    best = _best(table)
    return Backtest(
        as_of=as_of,
        cutoff=cutoff,
        holdout_days=holdout,
        best=best,
        models=table,
        deciles=decile_frames[best],
        customers_known=customers_known,
        new_customers=int(len(new)),
        new_customer_orders=int(new["orders"].sum()),
        unscored={str(k): int(v) for k, v in unscored.items()},
        fits=fits,
        timings=timings,
    )


def _best(table: pd.DataFrame) -> str:
    auc = dict(zip(table["model"], table["auc"], strict=True))
    if len(auc) == 1:
        return next(iter(auc))
    if any(math.isnan(v) for v in auc.values()):
        return DEFAULT_PURCHASE_MODEL
    if auc[PARETO_NBD] > auc[BG_NBD] + AUC_TIE:
        return PARETO_NBD
    return BG_NBD


def run(
    orders: pd.DataFrame, as_of: date, settings: PredictionSettings | None = None
) -> tuple[Predictions, Backtest | None]:
    """The prediction stage of a refit: the backtest, then the predictions from the purchase
    model it ranks best (or the one the settings force). A history too short to backtest
    gives predictions from the default model and no backtest."""
    return run_history(_History.of(orders), as_of, settings)


def run_history(
    history: History, as_of: date, settings: PredictionSettings | None = None
) -> tuple[Predictions, Backtest | None]:
    """`run` on a history that is not an order table in memory (the Spark engine's)."""
    settings = settings or PredictionSettings()
    try:
        bt: Backtest | None = _backtest(history, as_of, settings)
    except BacktestUnavailable:
        bt = None
    if settings.purchase_model:
        name, choice = settings.purchase_model, "set in the settings"
    elif bt is None:
        name, choice = DEFAULT_PURCHASE_MODEL, "default: history too short to backtest"
    else:
        aucs = dict(zip(bt.models["model"], bt.models["auc"], strict=True))
        shown = ", ".join(f"{m} {a:.3f}" for m, a in aucs.items())
        name, choice = bt.best, f"best churn ranking in the backtest (AUC {shown})"
    return _predict(history, as_of, settings, purchase_model=name, choice=choice), bt
