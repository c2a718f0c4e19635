"""One process raising the same alarm N times, each raise its own transaction
(``python -m tests.alarms.raise_worker URL N``): several of these run at once in the tests."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from cityweave.alarms.service import raise_alarm
from cityweave.db.engine import Database
from tests.alarms.support import smoke


def main() -> None:
    url, times = sys.argv[1], int(sys.argv[2])
    db = Database(url)
    try:
        for _ in range(times):
            with db.session() as session:
                raise_alarm(session, smoke(), datetime.now(UTC))
    finally:
        db.dispose()


if __name__ == "__main__":
    main()
