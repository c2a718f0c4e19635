"""Why a message, a field or a command was refused.

The values are stable, lower-case strings because they become metric labels
(``cityweave_device_rejections_total{reason="out_of_range"}``) and log fields; renaming one
breaks dashboards, so add new codes instead of changing old ones.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    # The message as a whole could not be read.
    OVERSIZE = "oversize"
    BAD_ENCODING = "bad_encoding"
    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNEXPECTED_TOPIC = "unexpected_topic"
    # The message came from the wrong place.
    UNKNOWN_DEVICE = "unknown_device"
    TOPIC_MISMATCH = "topic_mismatch"
    # One value inside an otherwise fine message.
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    INVALID_VALUE = "invalid_value"
    UNIT_MISMATCH = "unit_mismatch"
    UNKNOWN_CAPABILITY = "unknown_capability"
    # Counted, but the data is kept with the raw message rather than dropped.
    UNKNOWN_FIELD = "unknown_field"
    # Announcements and replies.
    INVALID_DISCOVERY = "invalid_discovery"
    DEVICE_ERROR = "device_error"
    # Commands.
    NOT_WRITABLE = "not_writable"
    NOT_SUPPORTED = "not_supported"
    # A bug in an adapter, caught so that one bad message cannot stop ingestion.
    ADAPTER_ERROR = "adapter_error"
