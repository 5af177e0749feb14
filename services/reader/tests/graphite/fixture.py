"""The fixture series of the Graphite golden tests, and a graphite-web finder that
serves them the way carat's reader does (docs/graphite.md, "The step"): per series
and request, the step is the median gap between the raw points in the range (at
least 1 s; 60 s when fewer than two points), slots are whisper's (the first slot
after `from`, through the slot holding `until`), and a slot holds the average of
the raw points whose time falls in it.

Imported by graphite-web (STORAGE_FINDERS in gw_settings.py) and by gen_golden.py.
"""

import math

# 2025-11-30 12:00:00 UTC: the fixed "now" of every render case.
NOW = 1764504000
STEP = 60


def _gauge(i, phase):
    # Multiples of 1/8 so every input is exact in binary and in JSON.
    return round((50 + 30 * math.sin((i + phase) / 7.0)) * 8) / 8


def _series():
    start = NOW - 4 * 3600
    n = 4 * 60 + 1
    out = {}

    def grid(name, values):
        out[name] = [(start + i * STEP, v) for i, v in enumerate(values) if v is not None]

    # Counters: increments vary; web1 resets once and has a gap; web2 is steady.
    c, vals = 1000.0, []
    for i in range(n):
        c += (i * 7) % 13 + 0.5
        if i == 150:
            c = 3.0  # a reset
        vals.append(None if 200 <= i < 204 else c)
    grid("app.web1.requests", vals)
    grid("app.web2.requests", [5000.0 + 4.25 * i for i in range(n)])
    grid("app.db1.requests", [None if i % 17 == 5 else 200.0 + (i * 3) % 11 for i in range(n)])
    # Gauges, with gaps of different lengths.
    grid("app.web1.cpu", [None if 180 <= i < 186 or i == 230 else _gauge(i, 0) for i in range(n)])
    grid("app.web2.cpu", [_gauge(i, 11) for i in range(n)])
    grid("app.db1.cpu", [None if i % 29 == 3 else _gauge(i, 23) / 2 for i in range(n)])
    # A node that is a leaf and a branch at once.
    grid("app.web1.latency", [10.0 + (i % 5) for i in range(n)])
    grid("app.web1.latency.p99", [100.0 + (i % 9) * 2.5 for i in range(n)])
    grid("host.h1.loadavg5", [(i % 16) / 4.0 for i in range(n)])
    # Every 5 minutes, 17 s past: its step is 300 s.
    out["sparse.every5"] = [(start + 17 + i * 300, float(i % 7)) for i in range(4 * 12 + 1)]
    # Off the grid: a point a minute at :10, and every 4th minute a second one at :40,
    # which the median gap (60 s) leaves in the same slot, averaged.
    jit = []
    for i in range(4 * 60):
        jit.append((start + i * 60 + 10, float(i % 5)))
        if i % 4 == 0:
            jit.append((start + i * 60 + 40, float(i % 5) + 2.0))
    out["jitter.extra"] = jit
    return out


SERIES = _series()


def step_of(points):
    """carat's step: the median gap between consecutive points, at least 1 s."""
    if len(points) < 2:
        return STEP
    gaps = sorted(b[0] - a[0] for a, b in zip(points, points[1:]))
    m = len(gaps)
    med = gaps[m // 2] if m % 2 else (gaps[m // 2 - 1] + gaps[m // 2]) // 2
    return max(1, med)


def fetch(name, start, end):
    """(start, end, step), values of `name` over `start..end` as carat places them."""
    pts = SERIES[name]
    step = step_of([p for p in pts if start <= p[0] <= end])
    first = start - start % step + step
    last = end - end % step + step  # exclusive
    sums = {}
    for t, v in pts:
        if first <= t <= end:
            slot = t - t % step
            s, k = sums.get(slot, (0.0, 0))
            sums[slot] = (s + v, k + 1)
    values = []
    for slot in range(first, last, step):
        if slot in sums:
            s, k = sums[slot]
            values.append(s / k)
        else:
            values.append(None)
    return (first, last, step), values


try:
    from graphite.finders import match_entries
    from graphite.finders.utils import BaseFinder
    from graphite.node import BranchNode, LeafNode
except ImportError:  # used without graphite-web (listing the fixture only)
    BaseFinder = object


class FixtureReader(object):
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def fetch(self, startTime, endTime, now=None, requestContext=None):
        return fetch(self.name, int(startTime), int(endTime))

    def get_intervals(self):
        from graphite.intervals import Interval, IntervalSet

        return IntervalSet([Interval(0, 2 ** 31)])


class FixtureFinder(BaseFinder):
    def find_nodes(self, query):
        parts = query.pattern.split(".")
        seen = set()
        for name in sorted(SERIES):
            segs = name.split(".")
            if len(segs) < len(parts):
                continue
            if all(match_entries([s], p) for s, p in zip(segs, parts)):
                path = ".".join(segs[: len(parts)])
                leaf = len(segs) == len(parts)
                if (path, leaf) in seen:
                    continue
                seen.add((path, leaf))
                yield LeafNode(path, FixtureReader(path)) if leaf else BranchNode(path)
