"""A snapshot's orders as per-segment sorted arrays, for filter changes in milliseconds at any size.

`analytics.metrics` and `analytics.aggregates` define the figures on DataFrames (the reference);
this module computes the same figures for a date range and segments without group-bys.

In a snapshot every customer is in one segment, so every figure of several segments is the sum
of the figures of each (distinct customers included). The index keeps one `_Block` per segment:
its positive orders and its returns, each sorted by day, with running sums, so a date range is
two binary searches and the orders, returns, gross and net revenue of any range are differences
of running sums. Distinct customers (and those with two or more orders) come from each
customer's first, second, second-to-last and last order day, sorted: for a range that reaches
the segment's last order (every preset of the date filter) or starts before its first one, the
count is one binary search; only a range inside the data counts its orders with `np.bincount`
over the segment's own customer codes. `tests/test_orderindex.py` checks every figure against
the reference on random shops.

An index is a set of flat arrays (`arrays` / `from_arrays`): `db/snapshot_files.py` writes them
once per machine into an Arrow file that every web worker maps, so the arrays are views of the
same pages of memory and are never written to after `complete`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analytics.metrics import Kpis

EPOCH = date(1970, 1, 1)
GRANULARITIES = ("day", "week", "month")
ROLLUP_COLUMNS = ["orders", "customers", "returns", "gross_revenue", "net_revenue"]


def day_number(day: date) -> int:
    return (day - EPOCH).days


def period_start(days: np.ndarray, granularity: str) -> np.ndarray:
    """The first day (as a day number) of each day's period: the day, its Monday, its month."""
    if granularity == "day":
        return days
    if granularity == "week":
        return days - (days + 3) % 7  # 1970-01-01 was a Thursday
    if granularity == "month":
        months = days.astype("datetime64[D]").astype("datetime64[M]")
        return months.astype("datetime64[D]").astype(np.int64)
    raise ValueError(f"granularity must be day, week or month, not {granularity!r}")


def _distinct(ordered: np.ndarray) -> np.ndarray:
    """The distinct values of a sorted array."""
    if not len(ordered):
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def period_end(starts: np.ndarray, granularity: str) -> np.ndarray:
    """The last day of the periods starting at `starts`."""
    if granularity == "day":
        return starts
    if granularity == "week":
        return starts + 6
    nxt = starts.astype("datetime64[D]").astype("datetime64[M]") + 1
    return nxt.astype("datetime64[D]").astype(np.int64) - 1


QUANTILES = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
DIRECT = 100_000  # ranges with fewer orders than this: np.quantile over their totals


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's linear interpolation between order statistics, as `np.quantile` computes it."""
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


@dataclass
class _Values:
    """A segment's positive order totals, for order statistics of any date range.

    `code`: each order's (day order) rank of its value among the segment's sorted totals
    (equal values share one). `keyed`: month * n + code, sorted, so each month's codes are a
    sorted run at the month's own positions (`bounds`). The k-th smallest total of a range is
    found by a binary search on the code: the orders of the range with a code <= c are, per
    whole month, one `searchsorted` (all months and all the ranks sought in one call); a month
    the range cuts adds its part's codes, sorted, or, when that part is the larger one, counts
    the month whole and takes off the sorted codes of the rest.
    """

    sorted_totals: np.ndarray
    code: np.ndarray
    bounds: np.ndarray  # first position of each month of orders, then len
    keyed: np.ndarray

    ARRAYS = ("sorted_totals", "code", "bounds", "keyed")

    @classmethod
    def make(cls, day: np.ndarray, total: np.ndarray) -> _Values:
        ordered = np.sort(total)
        code = np.searchsorted(ordered, total, "left").astype(np.int64)
        month = period_start(day, "month")
        starts = np.flatnonzero(np.concatenate(([True], month[1:] != month[:-1])))
        bounds = np.append(starts, len(day)).astype(np.int64)
        rank = np.repeat(np.arange(len(starts), dtype=np.int64), np.diff(bounds))
        return cls(ordered, code, bounds, np.sort(rank * len(ordered) + code))

    def at_ranks(self, i: int, j: int, ranks: np.ndarray) -> np.ndarray:
        """The totals of positions [i, j) (day order, i < j) at 0-based `ranks`, ascending."""
        n, bounds = len(self.sorted_totals), self.bounds
        first = int(np.searchsorted(bounds, i, "right")) - 1  # the month holding position i
        last = int(np.searchsorted(bounds, j - 1, "right")) - 1  # and j - 1
        whole = list(range(first + 1, last))
        plus: list[np.ndarray] = []  # codes of partial months, counted one by one
        minus: list[np.ndarray] = []  # codes left out of a month counted whole
        for m in sorted({first, last}):
            a, b = max(i, int(bounds[m])), min(j, int(bounds[m + 1]))
            size = int(bounds[m + 1] - bounds[m])
            if b - a == size:
                whole.append(m)
            elif 2 * (b - a) <= size:  # sort the smaller side: the part in the range ...
                plus.append(self.code[a:b])
            else:  # ... or the rest of its month
                whole.append(m)
                minus += [self.code[bounds[m] : a], self.code[b : bounds[m + 1]]]
        added = np.sort(np.concatenate(plus)) if plus else np.zeros(0, dtype=np.int64)
        taken = np.sort(np.concatenate(minus)) if minus else np.zeros(0, dtype=np.int64)
        months = np.asarray(sorted(whole), dtype=np.int64)
        month_base = bounds[months][:, None]
        lo = np.zeros(len(ranks), dtype=np.int64)
        hi = np.full(len(ranks), n - 1, dtype=np.int64)
        while (lo < hi).any():
            mid = (lo + hi) // 2
            count = np.searchsorted(added, mid, "right") - np.searchsorted(taken, mid, "right")
            if len(months):
                found = np.searchsorted(self.keyed, months[:, None] * n + mid[None, :], "right")
                count += (found - month_base).sum(axis=0)
            enough = count >= ranks + 1
            hi = np.where(enough, mid, hi)
            lo = np.where(enough, lo, mid + 1)
        return self.sorted_totals[lo]


def _running(values: np.ndarray) -> np.ndarray:
    """Running sums with a leading 0: the sum of values[i:j] is out[j] - out[i]."""
    out = np.zeros(len(values) + 1)
    np.cumsum(values, out=out[1:])
    return out


@dataclass
class Range:
    """Day numbers, both included; None: open."""

    lo: int | None
    hi: int | None

    @classmethod
    def of(cls, start: date | None, end: date | None) -> Range:
        return cls(
            None if start is None else day_number(start), None if end is None else day_number(end)
        )


def _span(days: np.ndarray, r: Range) -> tuple[int, int]:
    lo = 0 if r.lo is None else int(np.searchsorted(days, r.lo, "left"))
    hi = len(days) if r.hi is None else int(np.searchsorted(days, r.hi, "right"))
    return lo, max(lo, hi)


@dataclass
class _Block:
    """One segment's orders. Customer codes are local: 0 .. n_customers - 1."""

    segment_id: int
    first_code: int  # its customers' codes in the index are first_code + local code
    n_customers: int
    day: np.ndarray  # positive orders: int64 day numbers, ascending (int32 would make every
    customer: np.ndarray  # searchsorted copy the array); int64 local customer code of each
    total: np.ndarray  # float64 totals
    running: np.ndarray  # _running(total)
    ret_day: np.ndarray  # returns (total <= 0): day numbers, ascending
    ret_customer: np.ndarray
    ret_total: np.ndarray
    ret_running: np.ndarray
    first1: np.ndarray  # each buying customer's first positive order day, sorted
    first2: np.ndarray  # second order day of those with two or more, sorted
    last1: np.ndarray  # last positive order day, sorted
    last2: np.ndarray  # second-to-last, of those with two or more, sorted
    _values: _Values | None = field(default=None, repr=False)

    @classmethod
    def make(
        cls,
        segment_id: int,
        first_code: int,
        n_customers: int,
        day: np.ndarray,
        customer: np.ndarray,
        total: np.ndarray,
    ) -> _Block:
        """day, customer (local), total: the segment's orders sorted by day."""
        pos = total > 0
        d, c = day[pos], customer[pos]
        by_customer = np.argsort(c, kind="stable")  # then by day: the input is day-sorted
        cs, ds = c[by_customer], d[by_customer]
        if len(cs):
            starts = np.flatnonzero(np.concatenate(([True], cs[1:] != cs[:-1])))
            ends = np.append(starts[1:], len(cs))
        else:  # a segment whose customers only returned goods
            starts = ends = np.zeros(0, dtype=np.int64)
        multi = ends - starts >= 2
        return cls(
            segment_id=segment_id,
            first_code=first_code,
            n_customers=n_customers,
            day=d.astype(np.int64),
            customer=c.astype(np.int64),
            total=total[pos],
            running=_running(total[pos]),
            ret_day=day[~pos].astype(np.int64),
            ret_customer=customer[~pos].astype(np.int64),
            ret_total=total[~pos],
            ret_running=_running(total[~pos]),
            first1=np.sort(ds[starts]),
            first2=np.sort(ds[starts[multi] + 1]),
            last1=np.sort(ds[ends - 1]),
            last2=np.sort(ds[ends[multi] - 2]),
        )

    def figures(self, r: Range) -> tuple[int, int, float, float]:
        """Orders, returns, gross and net revenue in the range."""
        i, j = _span(self.day, r)
        k, m = _span(self.ret_day, r)
        gross = float(self.running[j] - self.running[i])
        return j - i, m - k, gross, gross + float(self.ret_running[m] - self.ret_running[k])

    def buyers(self, r: Range) -> tuple[int, int]:
        """Customers with a positive order in the range, and those with two or more."""
        if not len(self.day):
            return 0, 0
        lo, hi = r.lo, r.hi
        reaches_end = hi is None or hi >= self.day[-1]
        from_start = lo is None or lo <= self.day[0]
        if reaches_end and from_start:
            return len(self.first1), len(self.first2)
        if reaches_end and lo is not None:  # bought <=> last (second-to-last) order day >= lo
            return (
                len(self.last1) - int(np.searchsorted(self.last1, lo, "left")),
                len(self.last2) - int(np.searchsorted(self.last2, lo, "left")),
            )
        if from_start and hi is not None:  # <=> first (second) order day <= hi
            return (
                int(np.searchsorted(self.first1, hi, "right")),
                int(np.searchsorted(self.first2, hi, "right")),
            )
        i, j = _span(self.day, r)
        if i == j:
            return 0, 0
        counts = np.bincount(self.customer[i:j], minlength=self.n_customers)
        return int(np.count_nonzero(counts)), int(np.count_nonzero(counts > 1))

    def distribution(self, r: Range) -> list[float] | None:
        """Orders, mean, min, the QUANTILES and max of the positive totals in the range."""
        i, j = _span(self.day, r)
        n = j - i
        if not n:
            return None
        mean = float(self.running[j] - self.running[i]) / n
        if n < DIRECT:
            part = self.total[i:j]
            return [n, mean, float(part.min()), *np.quantile(part, QUANTILES), float(part.max())]
        if self._values is None:
            self._values = _Values.make(self.day, self.total)
        h = (n - 1) * QUANTILES
        below = np.floor(h).astype(np.int64)
        above = np.minimum(below + 1, n - 1)
        v = self._values.at_ranks(i, j, np.concatenate(([0, n - 1], below, above)))
        k = len(QUANTILES)
        return [n, mean, float(v[0]), *_lerp(v[2 : 2 + k], v[2 + k :], h - below), float(v[1])]

    def last_day(self, r: Range) -> int | None:
        """The day of the last order (return or not) in the range."""
        i, j = _span(self.day, r)
        k, m = _span(self.ret_day, r)
        days = [int(self.day[j - 1])] if j > i else []
        days += [int(self.ret_day[m - 1])] if m > k else []
        return max(days) if days else None

    ARRAYS = (
        "day",
        "customer",
        "total",
        "running",
        "ret_day",
        "ret_customer",
        "ret_total",
        "ret_running",
        "first1",
        "first2",
        "last1",
        "last2",
    )

    def orders(self) -> dict[str, np.ndarray]:
        """Every order of the segment (positive first, then returns), global customer codes."""
        return {
            "day": np.concatenate((self.day, self.ret_day)).astype(np.int64),
            "customer": np.concatenate((self.customer, self.ret_customer)).astype(np.int64)
            + self.first_code,
            "segment": np.full(len(self.day) + len(self.ret_day), self.segment_id, np.int64),
            "total": np.concatenate((self.total, self.ret_total)),
        }


@dataclass
class OrderIndex:
    blocks: list[_Block]  # one per segment with orders, by segment id
    customer_ids: pa.Array  # code -> customer id (each segment's customers contiguous)
    _rollups: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, orders: pd.DataFrame) -> OrderIndex:
        """orders: customer_id, segment_id, day, total (one row per order)."""
        codes, uniques = pd.factorize(orders["customer_id"])
        seg = orders["segment_id"].to_numpy(dtype=np.int64)
        seg_of = np.zeros(len(uniques), dtype=np.int64)
        seg_of[codes] = seg
        if len(seg) and (seg_of[codes] != seg).any():
            bad = uniques[codes[np.flatnonzero(seg_of[codes] != seg)[0]]]
            raise ValueError(f"customer {bad!r} has orders in two segments of one snapshot")
        # Number the customers segment by segment, then sort the orders by segment and day.
        by_segment = np.argsort(seg_of, kind="stable")
        renumber = np.empty_like(by_segment)
        renumber[by_segment] = np.arange(len(by_segment))
        customer = renumber[codes]
        seg_of = seg_of[by_segment]
        days = pd.to_datetime(orders["day"]).to_numpy().astype("datetime64[D]").astype(np.int64)
        total = orders["total"].to_numpy(dtype=float)
        order = np.lexsort((days, seg))
        seg, days, customer, total = seg[order], days[order], customer[order], total[order]
        blocks = []
        for s in _distinct(seg):
            a, b = np.searchsorted(seg, s, "left"), np.searchsorted(seg, s, "right")
            c0, c1 = np.searchsorted(seg_of, s, "left"), np.searchsorted(seg_of, s, "right")
            blocks.append(
                _Block.make(
                    int(s), int(c0), int(c1 - c0), days[a:b], customer[a:b] - c0, total[a:b]
                )
            )
        ids = pa.array(np.asarray(uniques, dtype=object), type=pa.large_string())
        return cls(blocks=blocks, customer_ids=ids.take(pa.array(by_segment)))

    # --- as flat arrays (db/snapshot_files.py) ------------------------------------------------

    def complete(self) -> OrderIndex:
        """Compute now what queries would otherwise compute on first use (the order-value runs
        of segments large enough to need them, the rollup of each granularity), so that the
        index never changes after it is written out."""
        for b in self.blocks:
            if len(b.day) >= DIRECT and b._values is None:
                b._values = _Values.make(b.day, b.total)
        for granularity in GRANULARITIES:
            self._full_rollup(granularity)
        return self

    def arrays(self) -> dict[str, np.ndarray | pa.Array]:
        """Every array of the index by name (`from_arrays` makes the index again)."""
        out: dict[str, np.ndarray | pa.Array] = {
            "customer_ids": self.customer_ids,
            "block.segment_id": np.array([b.segment_id for b in self.blocks], np.int64),
            "block.first_code": np.array([b.first_code for b in self.blocks], np.int64),
            "block.n_customers": np.array([b.n_customers for b in self.blocks], np.int64),
        }
        for i, b in enumerate(self.blocks):
            for name in _Block.ARRAYS:
                out[f"block{i}.{name}"] = getattr(b, name)
            if b._values is not None:
                for name in _Values.ARRAYS:
                    out[f"block{i}.values.{name}"] = getattr(b._values, name)
        for granularity, table in self._rollups.items():
            if len(table):  # an empty rollup is made again on use (its columns have no dtype)
                for col in table.columns:
                    out[f"rollup.{granularity}.{col}"] = table[col].to_numpy()
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray | pa.Array]) -> OrderIndex:
        """The index of `arrays` (as `arrays` gave them): numpy arrays are used as they are,
        so views of a mapped file stay views."""

        def num(name: str) -> np.ndarray:
            value = arrays[name]
            assert isinstance(value, np.ndarray), name
            return value

        blocks = []
        segment_ids, first_codes = num("block.segment_id"), num("block.first_code")
        for i, n in enumerate(num("block.n_customers")):
            parts: list[Any] = [num(f"block{i}.{name}") for name in _Block.ARRAYS]
            block = _Block(int(segment_ids[i]), int(first_codes[i]), int(n), *parts)
            if f"block{i}.values.code" in arrays:
                block._values = _Values(**{k: num(f"block{i}.values.{k}") for k in _Values.ARRAYS})
            blocks.append(block)
        ids = arrays["customer_ids"]
        assert isinstance(ids, pa.Array)
        index = cls(blocks=blocks, customer_ids=ids)
        for granularity in GRANULARITIES:
            if f"rollup.{granularity}.period" in arrays:
                index._rollups[granularity] = pd.DataFrame(
                    {
                        c: num(f"rollup.{granularity}.{c}")
                        for c in ("period", "segment_id", *ROLLUP_COLUMNS)
                    }
                )
        return index

    def _of(self, segments: tuple[int, ...]) -> list[_Block]:
        if not segments:
            return self.blocks
        wanted = set(segments)
        return [b for b in self.blocks if b.segment_id in wanted]

    # --- the headline KPIs --------------------------------------------------------------------

    def kpis(
        self,
        start: date | None,
        end: date | None,
        segments: tuple[int, ...] = (),
        active_days: int = 90,
    ) -> Kpis:
        """As `analytics.metrics.kpis` for the orders of `segments` in [start, end]."""
        r = Range.of(start, end)
        blocks = self._of(segments)
        n_orders = n_returns = n_customers = n_repeat = 0
        gross = net = 0.0
        for b in blocks:
            o, ret, g, n = b.figures(r)
            c, rep = b.buyers(r)
            n_orders, n_returns, gross, net = n_orders + o, n_returns + ret, gross + g, net + n
            n_customers, n_repeat = n_customers + c, n_repeat + rep
        last = r.hi
        if last is None:
            found = [d for d in (b.last_day(r) for b in blocks) if d is not None]
            last = max(found) if found else None
        active = 0
        if last is not None and n_orders:
            since = last - (active_days - 1)
            recent = Range(since if r.lo is None else max(r.lo, since), r.hi)
            active = sum(b.buyers(recent)[0] for b in blocks)
        return Kpis(
            customers=n_customers,
            active_customers=active,
            orders=n_orders,
            returns=n_returns,
            gross_revenue=round(gross, 2),
            net_revenue=round(net, 2),
            aov=gross / n_orders if n_orders else None,
            repeat_rate=n_repeat / n_customers if n_customers else None,
        )

    # --- sales by period x segment ------------------------------------------------------------

    @staticmethod
    def _rollup(o: dict[str, np.ndarray], periods: np.ndarray) -> pd.DataFrame:
        """orders, customers (distinct, positive orders), returns, gross, net per period x seg.

        numpy only (sorts and bincounts; np.unique's hash path in numpy 2.4 took ~8 s for 4.3M
        values). Used once per snapshot and granularity for the whole snapshot.
        """
        if not len(periods):
            return pd.DataFrame(columns=["period", "segment_id", *ROLLUP_COLUMNS])
        seg, total, customer = o["segment"], o["total"], o["customer"]
        positive = total > 0
        p_values = _distinct(np.sort(periods))
        low = int(seg.min())  # segment ids: a few small integers
        s_values = np.flatnonzero(np.bincount(seg - low)) + low
        dense = np.searchsorted(p_values, periods) * len(s_values) + np.searchsorted(s_values, seg)
        present = np.bincount(dense, minlength=len(p_values) * len(s_values))
        keys = np.flatnonzero(present)  # (period, segment) pairs in a sorted group-by's order
        n = len(keys)
        remap = np.zeros(len(present), dtype=np.int64)
        remap[keys] = np.arange(n)
        group = remap[dense]
        orders = np.bincount(group[positive], minlength=n)
        returns = np.bincount(group[~positive], minlength=n)
        gross = np.bincount(group, weights=np.where(positive, total, 0.0), minlength=n)
        net = np.bincount(group, weights=total, minlength=n)
        width = int(customer.max()) + 1
        pairs = _distinct(np.sort(group[positive].astype(np.int64) * width + customer[positive]))
        customers = np.bincount(pairs // width, minlength=n)
        return pd.DataFrame(
            {
                "period": p_values[keys // len(s_values)].astype(np.int64),
                "segment_id": s_values[keys % len(s_values)].astype(np.int64),
                "orders": orders.astype(np.int64),
                "customers": customers.astype(np.int64),
                "returns": returns.astype(np.int64),
                "gross_revenue": gross,
                "net_revenue": net,
            }
        )

    def _full_rollup(self, granularity: str) -> pd.DataFrame:
        """Every period x segment of the snapshot: computed once per granularity."""
        if granularity not in self._rollups:
            parts = [b.orders() for b in self.blocks]
            every = {
                k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.int64)
                for k in ("day", "customer", "segment", "total")
            }
            self._rollups[granularity] = self._rollup(
                every, period_start(every["day"], granularity)
            )
        return self._rollups[granularity]

    def sales(
        self,
        start: date | None,
        end: date | None,
        segments: tuple[int, ...],
        granularity: str,
    ) -> pd.DataFrame:
        """As the `sales` export's rollup: period (first day) x segment_id, for [start, end].

        Whole periods come from the snapshot-wide table; a period the range cuts is counted
        from each segment's running sums and buyers in the part of it inside the range.
        """
        r = Range.of(start, end)
        full = self._full_rollup(granularity)
        if segments:
            full = full[full["segment_id"].isin(segments)]
        starts = full["period"].to_numpy()
        ends = period_end(starts, granularity)
        whole = np.ones(len(full), dtype=bool)
        if r.lo is not None:
            whole &= starts >= r.lo
        if r.hi is not None:
            whole &= ends <= r.hi
        parts = [full[whole]]
        cut_periods = set()
        for bound in (r.lo, r.hi):
            if bound is not None:
                cut_periods.add(int(period_start(np.array([bound]), granularity)[0]))
        rows = []
        for p in sorted(cut_periods):
            p_end = int(period_end(np.array([p]), granularity)[0])
            if (r.lo is None or p >= r.lo) and (r.hi is None or p_end <= r.hi):
                continue  # not cut: already whole
            a = p if r.lo is None else max(p, r.lo)
            z = p_end if r.hi is None else min(p_end, r.hi)
            if a > z:
                continue
            part = Range(a, z)
            for b in self._of(segments):
                n_orders, n_returns, gross, net = b.figures(part)
                if n_orders + n_returns:
                    rows.append(
                        (p, b.segment_id, n_orders, b.buyers(part)[0], n_returns, gross, net)
                    )
        if rows:
            parts.append(pd.DataFrame(rows, columns=["period", "segment_id", *ROLLUP_COLUMNS]))
        out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
        out = out.sort_values(["period", "segment_id"]).reset_index(drop=True)
        out["period"] = [EPOCH + timedelta(days=int(d)) for d in out["period"]]
        return out

    # --- per segment ---------------------------------------------------------------------------

    def repeat_rate(
        self, start: date | None, end: date | None, segments: tuple[int, ...]
    ) -> pd.DataFrame:
        """Per segment: customers with a positive order in the range, those with two or more."""
        r = Range.of(start, end)
        cols = ["segment_id", "customers", "repeat_customers", "repeat_rate"]
        rows = [(b.segment_id, *b.buyers(r)) for b in self._of(segments)]
        out = pd.DataFrame([row for row in rows if row[1]], columns=cols[:3])
        out["repeat_rate"] = (out["repeat_customers"] / out["customers"]).round(6)
        return out[cols]

    def aov_distribution(
        self, start: date | None, end: date | None, segments: tuple[int, ...]
    ) -> pd.DataFrame:
        """Per segment with a positive order in the range: orders, mean, min, p05, q1, median,
        q3, p95, max of the positive order totals (np.quantile's linear interpolation)."""
        r = Range.of(start, end)
        cols = ["segment_id", "orders", "mean", "min", "p05", "q1", "median", "q3", "p95", "max"]
        rows = []
        for b in self._of(segments):
            figures = b.distribution(r)
            if figures is not None:
                rows.append([b.segment_id, *figures])
        return pd.DataFrame(rows, columns=cols)

    def customer_orders(self, customer_id: str) -> pd.DataFrame:
        """One customer's orders, by day and total (day as a timestamp)."""
        # A scan of the ids (a few ms at 1M customers) rather than a hash table of them, which
        # would cost every worker tens of MB of its own.
        ids = self.customer_ids
        found = pc.index(ids, pa.scalar(customer_id, ids.type)).as_py() if len(ids) else -1
        days, totals, segment = np.zeros(0, np.int64), np.zeros(0), 0
        if found >= 0:
            block = next(
                b for b in self.blocks if b.first_code <= found < b.first_code + b.n_customers
            )
            local = found - block.first_code
            bought, returned = block.customer == local, block.ret_customer == local
            days = np.concatenate((block.day[bought], block.ret_day[returned]))
            totals = np.concatenate((block.total[bought], block.ret_total[returned]))
            segment = block.segment_id
        order = np.lexsort((totals, days))
        return pd.DataFrame(
            {
                "customer_id": customer_id,
                "day": days[order].astype("datetime64[D]").astype("datetime64[ns]"),
                "segment_id": np.full(len(days), segment, dtype=np.int64),
                "total": totals[order],
            }
        )
