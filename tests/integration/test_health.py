"""GET /health (docs/api.md "Health")."""

import re


def test_health_shape(client):
    r = client.health()
    assert r.status == 200, r.describe()
    assert r.content_type == "application/json"
    doc = r.json()
    assert doc["status"] == "ok"
    assert isinstance(doc["version"], str) and re.match(r"^\d+\.\d+\.\d+", doc["version"])
    assert isinstance(doc["isolators"], list) and "ns" in doc["isolators"]
    assert doc["default_isolator"] in doc["isolators"]
    assert isinstance(doc["sandboxes"], int) and not isinstance(doc["sandboxes"], bool)


def test_health_counts_sandboxes(client, make_sandbox):
    before = client.health().json()["sandboxes"]
    assert before == len(client.list_ids())
    sb = make_sandbox()
    assert client.health().json()["sandboxes"] == before + 1
    assert client.delete(sb.id).status == 204
    assert client.health().json()["sandboxes"] == before


def test_health_keep_alive(client):
    """Several requests on one HTTP/1.1 connection (what every fetch client does)."""
    import http.client
    conn = http.client.HTTPConnection(client.host, client.port, timeout=10)
    try:
        for _ in range(5):
            conn.request("GET", "/health")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200
            assert b'"ok"' in body
    finally:
        conn.close()
