"""Messages in Simplified Chinese (the default) and English.

The catalogue is a JSON file per locale so translators edit data, not code. The web issue moves
page strings to Babel/gettext catalogues; API and import messages use this small lookup.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

DEFAULT_LOCALE = "zh-CN"
LOCALES = ("zh-CN", "en")


@cache
def _catalogue(locale: str) -> dict[str, str]:
    text = resources.files(__package__).joinpath(f"{locale}.json").read_text(encoding="utf-8")
    return json.loads(text)


def negotiate(accept_language: str | None, preferred: str | None = None) -> str:
    """Pick zh-CN or en from a user preference or an Accept-Language header."""
    if preferred in LOCALES:
        return preferred  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LOCALE


def lookup(key: str, locale: str = DEFAULT_LOCALE) -> str | None:
    """The template for ``key`` in ``locale`` only (no fallback), or None if it has none."""
    return _catalogue(locale if locale in LOCALES else DEFAULT_LOCALE).get(key)


def translate(key: str, locale: str = DEFAULT_LOCALE, **params: object) -> str:
    catalogue = _catalogue(locale if locale in LOCALES else DEFAULT_LOCALE)
    template = catalogue.get(key) or _catalogue("en").get(key) or key
    return template.format(**params)
