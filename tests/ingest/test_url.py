"""Broker URLs as people write them."""

from __future__ import annotations

import pytest

from cityweave.ingest.mqtt_client import BrokerUrl, MqttSubscriber


def test_plain_url_defaults_to_mqtt5_on_1883():
    url = BrokerUrl.parse("mqtt://127.0.0.1")
    assert (url.host, url.port, url.tls, url.protocol) == ("127.0.0.1", 1883, False, 5)


def test_tls_credentials_and_ipv6():
    url = BrokerUrl.parse("mqtts://ingest:p%40ss%3Aword@[::1]")
    assert (url.host, url.port, url.tls) == ("::1", 8883, True)
    assert (url.username, url.password) == ("ingest", "p@ss:word")
    assert str(url) == "mqtts://ingest@[::1]:8883"  # never the password


@pytest.mark.parametrize(("text", "protocol"), [("mqtt://h:1884?protocol=311", 311),
                                                ("mqtt://h:1884?protocol=3.1.1", 311),
                                                ("tcp://h:1884?protocol=5", 5)])
def test_protocol_choice(text, protocol):
    url = BrokerUrl.parse(text)
    assert (url.port, url.protocol) == (1884, protocol)


@pytest.mark.parametrize("text", ["http://h:1883", "mqtt://", "mqtt://h:99999", "mqtt://h?protocol=4"])
def test_bad_urls_are_refused(text):
    with pytest.raises(ValueError):
        BrokerUrl.parse(text)


def test_shared_group_prefixes_every_filter():
    subscriber = MqttSubscriber("mqtt://127.0.0.1:1", topics=lambda: ["a/#"], on_message=print,
                                shared_group="cw")
    assert subscriber._filters(["a/#", "b/+/c"]) == [("$share/cw/a/#", 1), ("$share/cw/b/+/c", 1)]
    with pytest.raises(ValueError):
        MqttSubscriber("mqtt://127.0.0.1:1", topics=list, on_message=print, shared_group="a/b")


def test_acks_go_only_to_the_connection_the_message_came_on():
    subscriber = MqttSubscriber("mqtt://127.0.0.1:1", topics=list, on_message=print)
    sent: list[list[int]] = []
    subscriber.client.ack_many = lambda mids: sent.append(list(mids))
    subscriber.ack([(1, 0), (2, 0)])
    subscriber._on_disconnect(subscriber.client, None, None, "lost", None)  # connection 0 ends
    subscriber.ack([(3, 0), (4, 1)])  # 3 came on the old connection: its redelivery gets the ack
    assert sent == [[1, 2], [4]]
    assert subscriber.stale_acks == 1
