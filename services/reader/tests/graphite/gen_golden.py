"""Writes the golden files of services/reader/tests/graphite.rs from graphite-web itself.

graphite-web (PyPI `graphite-web`, with Django) renders every case of CASES through its
own /render, /metrics/find and /metrics/expand views (Django's test client), over the
fixture series of fixture.py served by a finder that places points the way carat does.
The answers, the fixture series and attime results for fixed "now"s go to golden/*.json;
the Rust test replays the same requests against carat's router and compares.

    python3 -m venv .run/gw && .run/gw/bin/pip install graphite-web
    .run/gw/bin/python services/reader/tests/graphite/gen_golden.py
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphite.settings")
os.environ.setdefault("GRAPHITE_SETTINGS_MODULE", "gw_settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)  # /metrics/find reads the user's profile

from django.test import Client  # noqa: E402

import graphite  # noqa: E402
from graphite.render.attime import parseATTime  # noqa: E402
import pytz  # noqa: E402

import fixture  # noqa: E402
from fixture import NOW  # noqa: E402

H = "-2h"

# (case name, targets, extra params). Every render is from=-2h until=now at NOW unless
# the extra params say otherwise.
CASES = [
    ("path", ["app.web1.cpu"], {}),
    ("glob_star", ["app.*.cpu"], {}),
    ("glob_braces", ["app.{web1,db1}.requests"], {}),
    ("glob_class", ["app.web[0-9].cpu"], {}),
    ("glob_question", ["app.db?.cpu"], {}),
    ("no_match", ["nothing.here"], {}),
    ("two_targets", ["app.web1.cpu", "host.h1.loadavg5"], {}),
    ("target_brackets", [], {"target[]": ["app.web2.cpu", "app.db1.cpu"]}),
    ("step_300", ["sparse.every5"], {}),
    ("step_jitter", ["jitter.extra"], {}),
    ("epoch_range", ["app.web2.cpu"], {"from": str(NOW - 3000), "until": str(NOW - 1200)}),
    ("attime_range", ["app.web2.cpu"], {"from": "11:00_20261130", "until": "11:30_20261130"}),
    ("swapped_range", ["app.web2.cpu"], {"from": "now", "until": "-20min"}),
    ("default_range", ["app.web2.cpu"], {"from": None}),
    ("mdp_avg", ["app.*.cpu"], {"maxDataPoints": "50"}),
    ("mdp_one", ["app.web1.cpu"], {"maxDataPoints": "1"}),
    ("mdp_above", ["app.web1.cpu"], {"maxDataPoints": "1000"}),
    ("mdp_mixed_steps", ["sparse.every5", "app.web1.cpu"], {"maxDataPoints": "7"}),
    ("no_null_points", ["app.web1.cpu", "nothing.here"], {"noNullPoints": "1", "from": "-90min", "until": "-55min"}),
    # Grafana's own requests.
    ("grafana_health_100", ["constantLine(100)"], {"from": "-1h", "maxDataPoints": "100"}),
    ("grafana_health_300", ["constantLine(100)"], {"from": "-1h", "maxDataPoints": "300"}),
    ("grafana12_wrap", ['aliasSub(app.*.cpu, "(^.*$)", "\\1 A")'], {"maxDataPoints": "40"}),
    ("grafana12_wrap_nested", ['aliasSub(sumSeries(app.*.requests), "(^.*$)", "\\1 B")'], {}),
    # Functions.
    ("aliasSub", ['aliasSub(app.*.cpu, "app\\.([^.]*)\\.(.*)", "\\2 of \\1")'], {}),
    ("aliasSub_g", ["aliasSub(app.web1.cpu, 'web(?P<n>\\d)', 'w\\g<n>')"], {}),
    ("constantLine", ["constantLine(42.5)"], {}),
    ("constantLine_mdp", ["constantLine(-3)"], {"maxDataPoints": "2"}),
    ("alias", ['alias(app.web1.cpu, "CPU one")'], {}),
    ("alias_many", ["alias(app.*.cpu,'all')"], {}),
    ("aliasByNode", ["aliasByNode(app.*.cpu, 1)"], {}),
    ("aliasByNode_multi", ["aliasByNode(app.*.requests, 1, -1)"], {}),
    ("aliasByNode_nested", ["aliasByNode(scale(app.*.cpu, 2), 1)"], {}),
    ("sumSeries", ["sumSeries(app.*.cpu)"], {}),
    ("sum_multi", ["sum(app.web1.cpu, app.db1.cpu)"], {}),
    ("sumSeries_mixed_steps", ["sumSeries(sparse.every5, app.web2.cpu)"], {}),
    ("averageSeries", ["averageSeries(app.*.cpu)"], {}),
    ("avg", ["avg(app.*.requests)"], {}),
    ("maxSeries", ["maxSeries(app.*.cpu)"], {}),
    ("minSeries", ["minSeries(app.*.cpu)"], {}),
    ("scale", ["scale(app.web1.cpu, 0.5)"], {}),
    ("scale_int", ["scale(app.*.cpu, 3)"], {}),
    ("offset", ["offset(app.web1.cpu, -10)"], {}),
    ("perSecond", ["perSecond(app.*.requests)"], {}),
    ("perSecond_max", ["perSecond(app.web1.requests, 10000)"], {"until": "-45min"}),
    ("nonNegativeDerivative", ["nonNegativeDerivative(app.*.requests)"], {}),
    ("nonNegativeDerivative_max", ["nonNegativeDerivative(app.web1.requests, 5000)"], {"until": "-45min"}),
    ("nonNegativeDerivative_min_max", ["nonNegativeDerivative(app.web1.requests, 5000, 2)"], {"until": "-45min"}),
    ("derivative", ["derivative(app.*.requests)"], {}),
    ("summarize_sum", ['summarize(app.web1.cpu, "10min")'], {}),
    ("summarize_avg", ["summarize(app.*.cpu, '15min', 'avg')"], {}),
    ("summarize_max_align", ['summarize(app.web1.cpu, "7min", "max", true)'], {}),
    ("summarize_last", ['summarize(app.web2.requests, "1h", "last")'], {}),
    ("summarize_mdp", ['summarize(app.web1.cpu, "5min")'], {"maxDataPoints": "10"}),
    ("movingAverage_points", ["movingAverage(app.web1.cpu, 5)"], {}),
    ("movingAverage_time", ['movingAverage(app.*.cpu, "10min")'], {}),
    ("movingAverage_xff", ["movingAverage(app.web1.cpu, 4, 0.75)"], {}),
    ("highestCurrent", ["highestCurrent(app.*.cpu, 2)"], {}),
    ("highestAverage", ["highestAverage(app.*.cpu, 1)"], {}),
    ("highestAverage_all", ["highestAverage(app.*.requests, 5)"], {}),
    ("limit", ["limit(app.*.cpu, 2)"], {}),
    ("limit_zero", ["limit(app.*.cpu, 0)"], {}),
    ("sortByName", ["sortByName(aliasByNode(app.*.cpu, 1))"], {}),
    ("sortByName_reverse", ["sortByName(app.*.cpu, false, true)"], {}),
    ("sortByName_natural", ["sortByName(app.*.{cpu,requests}, true)"], {}),
    ("transformNull", ["transformNull(app.web1.cpu)"], {}),
    ("transformNull_value", ["transformNull(app.web1.cpu, -1.5)"], {}),
    ("keepLastValue", ["keepLastValue(app.web1.cpu)"], {}),
    ("keepLastValue_limit", ["keepLastValue(app.web1.cpu, 3)"], {}),
    ("timeShift", ['timeShift(app.web2.cpu, "1h")'], {}),
    ("timeShift_plus", ['timeShift(app.web2.cpu, "+30min")'], {"from": "-4h", "until": "-2h"}),
    ("timeShift_noreset", ['timeShift(app.web1.cpu, "90min", false)'], {}),
    ("asPercent_total", ["asPercent(app.*.cpu)"], {}),
    ("asPercent_number", ["asPercent(app.web1.cpu, 200)"], {}),
    ("asPercent_series", ["asPercent(app.*.cpu, app.web2.cpu)"], {}),
    ("asPercent_nodes", ["asPercent(app.*.{cpu,requests}, None, 2)"], {}),
    ("divideSeries", ["divideSeries(app.*.cpu, app.web2.cpu)"], {}),
    ("divideSeries_missing", ["divideSeries(app.web1.cpu, nothing.here)"], {}),
    ("groupByNode", ["groupByNode(app.*.*, 2)"], {}),
    ("groupByNode_sum", ['groupByNode(app.*.*, 1, "sum")'], {}),
    ("groupByNode_max", ['groupByNode(app.*.requests, 2, "maxSeries")'], {}),
    ("consolidateBy_max", ["consolidateBy(app.web1.cpu, 'max')"], {"maxDataPoints": "13"}),
    ("consolidateBy_sum", ['consolidateBy(app.*.requests, "sum")'], {"maxDataPoints": "20"}),
    ("consolidateBy_first", ["consolidateBy(app.web1.cpu, 'first')"], {"maxDataPoints": "9"}),
    ("consolidateBy_last", ["consolidateBy(app.web1.cpu, 'last')"], {"maxDataPoints": "9"}),
    ("consolidateBy_min", ["consolidateBy(app.web1.cpu, 'min')"], {"maxDataPoints": "31"}),
    # Combinations.
    ("combo_rate", ["aliasByNode(perSecond(sumSeries(app.*.requests)), 0)"], {}),
    ("combo_nested", ["scale(offset(movingAverage(app.web1.cpu, 3), 1), 2)"], {"maxDataPoints": "25"}),
    ("combo_shift_avg", ['movingAverage(timeShift(app.web2.cpu, "1h"), 3)'], {}),
    ("combo_keyword_args", ["summarize(app.web1.cpu, intervalString='20min', func='min')"], {}),
    ("combo_highest_alias", ['alias(highestCurrent(app.*.cpu, 1), "hot")'], {}),
]

# Errors: graphite-web's status; carat's body differs (docs/graphite.md).
ERRORS = [
    ("unknown_function", {"target": "nosuchFunc(app.web1.cpu)"}),
    ("empty_range", {"target": "app.web1.cpu", "from": "now", "until": "now"}),
    ("bad_from", {"target": "app.web1.cpu", "from": "-6m"}),
    ("unclosed_call", {"target": "sumSeries(app.*.cpu"}),
    ("wrong_arg_type", {"target": "scale(app.web1.cpu, 'x')"}),
    ("missing_arg", {"target": "alias(app.web1.cpu)"}),
    ("divide_two_divisors", {"target": "divideSeries(app.web1.cpu, app.*.cpu)"}),
]

FINDS = [
    "*",
    "app.*",
    "app.web*",
    "app.web2.*",
    "app.{web1,db1}.cpu",
    "app.db1.cp?",
    "host.*.*",
    "nothing.*",
    "app.web[12]",
]

EXPANDS = [["app.*.cpu"], ["app.web1.*", "host.h1.*"], ["nothing"]]

ATTIME_NOWS = [NOW, 1772323199, 1704067200]  # 2026-11-30 12:00, 2026-02-28 23:59:59, 2024-01-01
ATTIMES = [
    "now", "-6h", "-1d", "-1w", "-30s", "-5min", "-2mon", "-1y", "+1h", "now-1h", "now+2d",
    "-1h30min", "-1d2h", "1764460800", "20261130", "20261130+12h",
    "12:30_20261130", "12:30 20261130", "noon", "midnight", "teatime", "noon+1d", "midnight-1d",
    "yesterday", "today", "tomorrow", "noonyesterday", "8am", "8pmtomorrow", "11/30/26",
    "02/28/2024", "3:15pm", "06:00", "NOW", "-1H", "noon_tomorrow", "-1minutes", "-3hours",
    "-2weeks", "-1months", "-1years", "-10seconds", "17000000", "12345678901",
]
ATTIME_BAD = ["1764460800-1h", "-6m", "nonsense", "-1q", "25:00", "13/45/20", "now-", "-h"]


def request(path, params):
    c = Client(raise_request_exception=False)
    q = {"now": str(NOW), "from": H, "until": "now"}
    for k, v in params.items():
        if v is None:
            q.pop(k, None)
        else:
            q[k] = v
    res = c.post(path, q) if path == "/render" and "post" in params else c.get(path, q)
    body = res.content.decode()
    try:
        body = json.loads(body)
    except ValueError:
        body = None
    return q, res.status_code, body


def main():
    out_dir = os.path.join(HERE, "golden")
    render = []
    for name, targets, extra in CASES:
        params = dict(extra)
        if targets:
            params["target"] = targets
        params["format"] = "json"
        q, status, body = request("/render", params)
        assert status == 200, (name, status, body)
        render.append({"name": name, "params": q, "status": status, "body": body})
    errors = []
    for name, params in ERRORS:
        params = dict(params, format="json")
        q, status, _ = request("/render", params)
        errors.append({"name": name, "params": q, "status": status})
    finds = []
    for query in FINDS:
        q, status, body = request("/metrics/find", {"query": query, "from": None, "until": None})
        finds.append({"query": query, "status": status, "body": body})
    expands = []
    for queries in EXPANDS:
        q, status, body = request("/metrics/expand", {"query": queries, "from": None, "until": None})
        expands.append({"query": queries, "status": status, "body": body})
    utc = pytz.UTC
    attime = []
    for now in ATTIME_NOWS:
        for s in ATTIMES:
            t = parseATTime(s, utc, str(now))
            attime.append({"now": now, "at": s, "epoch": int(t.timestamp())})
        for s in ATTIME_BAD:  # errors in graphite-web (None), or values when not
            try:
                t = parseATTime(s, utc, str(now))
                attime.append({"now": now, "at": s, "epoch": int(t.timestamp())})
            except Exception:
                attime.append({"now": now, "at": s, "epoch": None})
    series = {n: [[t, v] for t, v in pts] for n, pts in sorted(fixture.SERIES.items())}
    meta = {"graphite_web": graphite.__version__ if hasattr(graphite, "__version__") else None,
            "now": NOW, "generator": "services/reader/tests/graphite/gen_golden.py"}
    for fname, data in [
        ("series.json", {"meta": meta, "series": series}),
        ("render.json", {"meta": meta, "cases": render, "errors": errors}),
        ("find.json", {"meta": meta, "find": finds, "expand": expands}),
        ("attime.json", {"meta": meta, "cases": attime}),
    ]:
        with open(os.path.join(out_dir, fname), "w") as f:
            json.dump(data, f, indent=None, sort_keys=True, separators=(",", ":"))
            f.write("\n")
    print("wrote %d render, %d error, %d find, %d attime cases" % (len(render), len(errors), len(finds), len(attime)))


if __name__ == "__main__":
    main()
