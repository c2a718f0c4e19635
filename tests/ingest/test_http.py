"""HTTP ingest: device token, same decoding and sink as MQTT, problem details on bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cityweave.api.app import create_app
from cityweave.devices.binding import DeviceBinding
from cityweave.ingest.http_ingest import HttpIngest, InMemoryTokenVerifier
from tests.ingest.test_pipeline import make

TOKEN = "cwd_test_secret"
BINDING = DeviceBinding(device_key="key-t1", adapter="native", address="t1")


@pytest.fixture
def setup(ctx) -> Iterator[tuple[TestClient, object, object]]:
    pipeline, sink, _, _ = make(queue_size=5)
    app = create_app(ctx)
    app.state.ingest_http = HttpIngest(pipeline, InMemoryTokenVerifier({TOKEN: BINDING}), queue_timeout=0.05)
    app.state.ingest_metrics = pipeline.metrics
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, pipeline, sink


def post(client: TestClient, body: bytes | dict, kind: str = "state", token: str | None = TOKEN):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"X-Device-Token": token} if token else {})}
    return client.post(f"/api/v1/ingest/{kind}", content=data, headers=headers)


def test_accepted_readings_reach_the_sink_through_the_pipeline(setup):
    client, pipeline, sink = setup
    response = post(client, {"v": 1, "readings": [{"capability": "temperature", "value": 21.5, "unit": "°C"},
                                                    {"capability": "humidity", "value": 150}]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["device_key"] == "key-t1" and body["readings"] == 1
    assert body["rejected"][0]["reason"] == "out_of_range"
    pipeline.process([pipeline.queue.get_nowait()])
    assert [(r.device_key, r.capability, r.value) for r in sink.readings] == [("key-t1", "temperature", 21.5)]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_a_missing_or_wrong_token_is_401(setup, token):
    client, pipeline, _ = setup
    response = post(client, {"v": 1, "readings": []}, token=token)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert pipeline.queue.qsize() == 0


def test_another_devices_message_is_refused(setup):
    client, pipeline, _ = setup
    response = post(client, {"v": 1, "device": "t2", "readings": [{"capability": "temperature", "value": 20}]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["reason"] == "topic_mismatch"
    assert pipeline.queue.qsize() == 0


def test_malformed_and_oversize_bodies(setup):
    client, pipeline, _ = setup
    assert post(client, b'{"v":1,').status_code == 400
    big = post(client, b'{"v":1,"pad":"' + b"x" * 70_000 + b'"}')
    assert big.status_code == 413 and big.json()["type"] == "/problems/payload-too-large"
    wrong = post(client, {"v": 1, "readings": [{"capability": "temperature", "value": "hot"}]})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["reason"] == "wrong_type"
    assert pipeline.queue.qsize() == 0
    text = client.get("/metrics").text
    assert 'cityweave_ingest_dropped_total{reason="oversize"} 1' in text
    assert 'cityweave_ingest_dropped_total{reason="malformed_json"} 1' in text


def test_a_full_queue_answers_503_with_retry_after(setup):
    client, _, _ = setup
    message = {"v": 1, "readings": [{"capability": "temperature", "value": 20}]}
    for _ in range(5):
        assert post(client, message).status_code == 202
    busy = post(client, message)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["type"] == "/problems/ingest-busy"


def test_without_ingest_the_route_is_404(client):
    response = client.post("/api/v1/ingest/state", json={"v": 1}, headers={"X-Device-Token": TOKEN})
    assert response.status_code == 404
    assert client.get("/metrics").status_code == 200
