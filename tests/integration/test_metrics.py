"""GET /metrics (Prometheus text format 0.0.4) and JSON log lines (docs/observability.md).

The counters are process-wide, so every check here compares two scrapes of one forged
that only this module uses, and expects exact deltas."""

import json
import re
import time

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')

HISTOGRAMS = ("forge_create_seconds", "forge_exec_seconds", "forge_resume_seconds")
COUNTERS = ("forge_sandbox_creates_total", "forge_sandbox_create_failures_total",
            "forge_sandbox_destroys_total", "forge_sandbox_suspends_total",
            "forge_sandbox_resumes_total", "forge_http_requests_total", "forge_api_errors_total")
GAUGES = ("forge_sandboxes", "forge_pool_size", "forge_build_info")


def parse(text):
    """Exposition text -> ({(name, frozenset(labels)): value}, {family: type}).
    Fails on anything the 0.0.4 format does not allow."""
    samples, types, helped = {}, {}, set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in helped, "two HELP lines for " + name
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name in helped and name not in types, line
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, _, labeltext, value = m.groups()
        labels = []
        if labeltext:
            pos = 0
            while pos < len(labeltext):
                lm = LABEL.match(labeltext, pos)
                assert lm, "bad labels in %r" % line
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert family in types or name in types, "sample before its TYPE: %r" % line
        key = (name, frozenset(labels))
        assert key not in samples, "duplicate sample %r" % line
        samples[key] = float(value)
    return samples, types


def scrape(client):
    r = client.request("GET", "/metrics")
    assert r.status == 200, r.describe()
    assert r.header("content-type") == "text/plain; version=0.0.4"
    return parse(r.body.decode("utf-8"))


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def check_histogram(samples, name):
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in samples.items()
                     if k[0] == name + "_bucket")
    assert buckets[-1][0] == float("inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets of %s are not cumulative" % name
    assert counts[-1] == value(samples, name + "_count")
    assert value(samples, name + "_sum") >= 0


def test_format_and_families(client):
    samples, types = scrape(client)
    for name in HISTOGRAMS:
        assert types[name] == "histogram"
        check_histogram(samples, name)
    for name in COUNTERS:
        assert types[name] == "counter"
    for name in GAUGES:
        assert types[name] == "gauge"
    for state in ("creating", "running", "suspended", "failed"):
        assert value(samples, "forge_sandboxes", state=state) >= 0
    assert value(samples, "forge_pool_size") == 0
    version = client.health().json()["version"]
    assert value(samples, "forge_build_info", version=version) == 1


def test_counters_and_histograms_move(client):
    before, _ = scrape(client)
    a = client.create()
    b = client.create()
    res = a.shell("echo hi")
    assert res["stdout"] == "hi\n"
    mid, _ = scrape(client)
    assert a.delete().status == 204
    assert b.delete().status == 204
    after, _ = scrape(client)

    def delta(name, now=mid, **labels):
        return value(now, name, **labels) - value(before, name, **labels)

    assert delta("forge_sandbox_creates_total") == 2
    assert delta("forge_sandbox_create_failures_total") == 0
    assert delta("forge_create_seconds_count") == 2
    assert delta("forge_create_seconds_bucket", le="+Inf") == 2
    assert delta("forge_create_seconds_sum") > 0
    assert delta("forge_exec_seconds_count") == 1
    assert delta("forge_exec_seconds_sum") > 0
    assert delta("forge_sandbox_destroys_total") == 0
    assert delta("forge_sandboxes", state="running") == 2
    # two creates, one shell, and the scrape that reports them
    assert delta("forge_http_requests_total") == 4
    assert delta("forge_sandbox_destroys_total", now=after) == 2
    assert delta("forge_sandboxes", now=after, state="running") == 0
    assert delta("forge_http_requests_total", now=after) == 7
    assert delta("forge_sandbox_suspends_total", now=after) == 0
    assert delta("forge_resume_seconds_count", now=after) == 0
    for name in HISTOGRAMS:
        check_histogram(after, name)


def test_errors_by_code(client):
    before, _ = scrape(client)
    assert client.get("nosuchsandbox").status == 404
    assert client.get("nosuchsandbox").status == 404
    assert client.request("GET", "/no/such/route").status == 404
    after, _ = scrape(client)

    def errors(samples, code):
        return samples.get(("forge_api_errors_total", frozenset({("code", code)})), 0)

    assert errors(after, "sandbox_not_found") - errors(before, "sandbox_not_found") == 2
    assert errors(after, "not_found") - errors(before, "not_found") == 1


def read_json_lines(path):
    lines = []
    with open(path, "rb") as f:
        for raw in f:
            text = raw.decode("utf-8").rstrip("\n")
            if not text or text.startswith("===== start"):
                continue  # the fixture's own marker between starts
            obj = json.loads(text)
            assert isinstance(obj, dict), text
            assert {"ts", "level", "msg"} <= obj.keys(), text
            lines.append(obj)
    return lines


def test_log_json_lines_parse(forged_factory):
    f = forged_factory(["--log-json"])
    sb = f.client.create()
    assert sb.shell("echo hi")["exitCode"] == 0
    assert f.client.get("nosuchsandbox").status == 404
    assert sb.delete().status == 204
    deadline = time.monotonic() + 10
    while True:
        lines = read_json_lines(f.log_path)
        msgs = [o["msg"] for o in lines if o.get("sandbox") == sb.id]
        if "destroyed" in msgs or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "creating" in msgs, msgs
    assert any(m.startswith("running") for m in msgs), msgs
    assert "destroyed" in msgs, msgs
    for o in lines:
        assert o["level"] in ("error", "warn", "info", "debug"), o
        if "sandbox" in o:
            assert isinstance(o["sandbox"], str) and o["sandbox"], o


def test_suspend_and_resume_are_counted(client):
    sb = client.create()
    try:
        before, _ = scrape(client)
        assert sb.req("POST", "/suspend").status == 200
        assert sb.sh("echo awake") == "awake\n"  # resumes it transparently
        after, _ = scrape(client)
        for name in ("forge_sandbox_suspends_total", "forge_sandbox_resumes_total",
                     "forge_resume_seconds_count"):
            assert value(after, name) - value(before, name) == 1, name
        check_histogram(after, "forge_resume_seconds")
    finally:
        sb.delete()
