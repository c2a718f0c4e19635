"""Extract the pages' messages and merge them into the zh_CN and en catalogues.

    .venv/bin/python scripts/update-web-catalogues.py

New message ids appear in the .po files with empty translations (shown in English until a
translator fills them); the test ``tests/web/test_i18n.py`` fails while zh_CN lacks any.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "src" / "cityweave" / "web"
PYBABEL = str(Path(sys.executable).with_name("pybabel"))


def main() -> None:
    pot = WEB / "locale" / "messages.pot"
    subprocess.run([PYBABEL, "extract", "-F", str(WEB / "babel.cfg"), "-k", "_", "--no-location",
                    "--sort-output", "--project", "CityWeave", "-o", str(pot), str(WEB)], check=True)
    for lang in ("zh_CN", "en"):
        po = WEB / "locale" / lang / "LC_MESSAGES" / "messages.po"
        command = "update" if po.exists() else "init"
        subprocess.run([PYBABEL, command, "-i", str(pot), "-d", str(WEB / "locale"), "-l", lang,
                        *(["--no-fuzzy-matching"] if command == "update" else [])], check=True)


if __name__ == "__main__":
    main()
