"""Jinja2 rendering with the gettext catalogues: one environment per language.

One environment per language (not one switched per request) keeps rendering thread-safe:
pages render in the server's thread pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from cityweave.web import i18n

TEMPLATES = Path(__file__).parent / "templates"


class Renderer:
    def __init__(self) -> None:
        self.environments = {locale: self._environment(locale) for locale in i18n.LOCALES}

    @staticmethod
    def _environment(locale: str) -> Environment:
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                          extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
        env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
        env.filters["datetime"] = lambda value, form="short": i18n.format_datetime(value, locale, form)
        env.filters["number"] = lambda value: i18n.format_number(value, locale)
        env.globals["locale"] = locale
        env.globals["html_lang"] = locale
        return env

    def render(self, template: str, locale: str, **values: Any) -> str:
        return self.environments[locale].get_template(template).render(**values)
