"""Device ingest: MQTT (embedded or external broker) and HTTP in, decoded readings out.

``mqtt_client`` receives with QoS 1 on a persistent session and acknowledges only after a batch
is committed; ``pipeline`` is the bounded queue and the batching worker; ``receipts`` makes a
redelivery after a crash harmless; ``broker`` is the embedded broker for installs without one;
``service`` composes them. See ``docs/ingest.md``.
"""
