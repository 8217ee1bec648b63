"""``docs/features.md``, generated from the feature registry (:mod:`schemas.features`).

``python -m pipeline.profile --write-docs`` rewrites it; a test checks it against the code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.features import ACCOUNT_FEATURES, ORG_FEATURES

FEATURES_DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def feature_docs() -> str:
    """``docs/features.md``: every registered feature, generated from the registry."""
    lines = [
        "# Features",
        "",
        "Generated from `schemas/features.py` (`python -m pipeline.profile --write-docs`); "
        "a test checks this file against the code. Windows end on the profiled day "
        "(Europe/London dates). Counts are compared with peers on log(1 + x).",
        "",
    ]
    for title, feats in (
        ("Organisation features (`features`)", ORG_FEATURES),
        ("Account features (`account_features`)", ACCOUNT_FEATURES),
    ):
        lines += [f"## {title}", "", "| name | window | kind | definition | why it matters |"]
        lines += ["|---|---|---|---|---|"]
        for f in feats:
            lines.append(f"| `{f.name}` | {f.window} | {f.kind.value} | {f.definition} | {f.why} |")
        lines.append("")
    return "\n".join(lines)


def write_feature_docs(path: Path = FEATURES_DOC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(feature_docs())
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Feature registry tools")
    parser.add_argument("--write-docs", action="store_true", help="write docs/features.md")
    args = parser.parse_args(argv)
    if args.write_docs:
        print(write_feature_docs())
