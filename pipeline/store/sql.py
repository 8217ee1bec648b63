"""Load the SQL that lives beside the code: each stage keeps its queries in its own
``sql/`` folder (one relation per file) and reads them through a :class:`SqlFolder`."""

from __future__ import annotations

from functools import cache
from pathlib import Path


class SqlFolder:
    """The ``sql/`` folder beside a stage's package: ``SqlFolder(__file__)("name")`` is the
    text of ``sql/name.sql``."""

    def __init__(self, anchor: str) -> None:
        self.folder = Path(anchor).resolve().parent / "sql"

    def __call__(self, name: str) -> str:
        return _read(self.folder / f"{name}.sql")


@cache
def _read(path: Path) -> str:
    return path.read_text()
