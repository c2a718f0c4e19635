"""Every string of the pages goes through the catalogues, and Chinese has them all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from cityweave.web import i18n

WEB = Path(i18n.__file__).parent


def _ids(path: Path) -> set[str]:
    with path.open("rb") as handle:
        return {m.id for m in read_po(handle) if m.id}


def test_the_catalogue_template_is_up_to_date(tmp_path):
    fresh = tmp_path / "messages.pot"
    pybabel = str(Path(sys.executable).with_name("pybabel"))
    subprocess.run([pybabel, "extract", "-F", str(WEB / "babel.cfg"), "-k", "_", "--no-location", "--sort-output",
                    "-o", str(fresh), str(WEB)], check=True, capture_output=True)
    assert _ids(fresh) == _ids(WEB / "locale" / "messages.pot"), \
        "run: .venv/bin/python scripts/update-web-catalogues.py"


def test_chinese_translates_every_message_and_english_knows_them_all():
    template = _ids(WEB / "locale" / "messages.pot")
    with (WEB / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        zh = {m.id: m.string for m in read_po(handle) if m.id}
    assert set(zh) == template
    assert [key for key, value in zh.items() if not value] == []
    assert _ids(WEB / "locale" / "en" / "LC_MESSAGES" / "messages.po") == template
    assert i18n.translations("zh-CN").gettext("Sign in") == "登录"
    assert i18n.translations("en").gettext("Sign in") == "Sign in"


def test_locale_negotiation_and_formatting():
    assert i18n.negotiate(None, None, None) == "zh-CN"
    assert i18n.negotiate(None, None, "en-GB,en;q=0.8") == "en"
    assert i18n.negotiate("en", "zh-CN", "zh") == "en"  # the viewer's own choice wins
    assert i18n.negotiate("xx", "en", None) == "en"
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 22, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai
    assert "10:30" in i18n.format_datetime(moment, "zh-CN") and "10:30" in i18n.format_datetime(moment, "en")
    assert i18n.format_number(1234567, "en") == "1,234,567"
