"""Pydantic's validation errors in the caller's language, for the API's problems and the pages'
error texts alike.

Each Pydantic error type has a catalogue entry ``errors.field.<type>`` (en mirrors Pydantic's own
wording), filled from the error's ``ctx``. A validator may raise
``PydanticCustomError("<type>", "<English text>", ctx)`` with a matching catalogue key to be
translated the same way. ``<key>.one`` is the English singular (count 1).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from cityweave.i18n import lookup

log = logging.getLogger(__name__)

#: types worded alike
_SAME_AS = {
    "model_attributes_type": "model_type",
    "dataclass_type": "model_type",
    "frozen_set_type": "set_type",
    "decimal_type": "decimal_parsing",
    "iterable_type": "list_type",
}
#: the ctx entry that decides between ``<key>`` and ``<key>.one``
_COUNT = {
    "string_too_short": "min_length",
    "string_too_long": "max_length",
    "too_short": "min_length",
    "too_long": "max_length",
    "too_long_unknown": "max_length",
}
#: Pydantic's container names (too_short/too_long ``field_type``) in Chinese
_ZH_FIELD_TYPES = {"List": "列表", "Tuple": "数组", "Set": "集合", "Frozenset": "集合", "Dictionary": "对象",
                   "Deque": "列表", "Data": "数据", "Value": "取值", "Generator": "序列"}
_OWN_MESSAGE = ("value_error", "assertion_error")
_PYDANTIC_PREFIX = re.compile(r"^(Value error|Assertion failed), ")


def field_error_message(err: Mapping[str, Any], locale: str) -> str:
    """One Pydantic error (an item of ``ValidationError.errors()``) as text in ``locale``.

    Never empty: without a catalogue entry, English keeps Pydantic's message and Chinese gets
    a generic phrase followed by it."""
    kind = str(err.get("type") or "")
    message = str(err.get("msg") or "") or kind or "invalid"
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind in _OWN_MESSAGE:
        # Our validators' hand-written text: kept; Chinese says what kind of problem it is.
        error = ctx.get("error")
        own = str(error) if error is not None and str(error) else _PYDANTIC_PREFIX.sub("", message)
        return _fill(f"errors.field.{kind}", locale, {"message": own}) or own
    key = f"errors.field.{_SAME_AS.get(kind, kind)}"
    if kind == "too_long" and ctx.get("actual_length") is None:
        key = "errors.field.too_long_unknown"
    if locale == "zh-CN":
        for name in ("expected", "expected_schemes", "expected_tags"):
            if isinstance(ctx.get(name), str):
                ctx[name] = _zh_alternatives(ctx[name])
        if "field_type" in ctx:
            ctx["field_type"] = _ZH_FIELD_TYPES.get(str(ctx["field_type"]), "")
    text = None
    count = _COUNT.get(key.removeprefix("errors.field."))
    if locale == "en" and count and ctx.get(count) == 1:
        text = _fill(key + ".one", locale, ctx)
    text = text or _fill(key, locale, ctx)
    if text:
        return text
    if locale == "en":
        return message
    return _fill("errors.field.unknown", locale, {"message": message}) or message


def _fill(key: str, locale: str, params: Mapping[str, Any]) -> str | None:
    template = lookup(key, locale)
    if not template:
        return None
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError, AttributeError):
        log.warning("catalogue entry %s (%s) does not fit the error's context %s", key, locale, sorted(params))
        return None


def _zh_alternatives(expected: str) -> str:
    """Pydantic joins choices as "'a', 'b' or 'c'"; in Chinese they read 'a'、'b'、'c'."""
    if "'" in expected:
        if "' or '" in expected:
            head, tail = expected.rsplit("' or '", 1)
            expected = f"{head}', '{tail}"
        return expected.replace("', '", "'、'")
    if " or " in expected:  # numbers: 1, 2 or 3
        head, tail = expected.rsplit(" or ", 1)
        return "、".join([*head.split(", "), tail])
    return expected
