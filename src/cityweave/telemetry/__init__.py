"""Device telemetry: latest state per capability, raw time series, rollups, range queries.

``store`` writes (batch inserts, state upserts, incremental rollups, retention); ``query`` reads
(latest values of a place or device, downsampled series). Domain code: no web imports.
"""
