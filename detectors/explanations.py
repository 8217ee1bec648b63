"""Legitimate explanations: declared patterns of lawful use that account for unusual features.

The models flag whatever is far from peers, and the legitimate look-alikes (an online
provider enrolling adults nationwide, an adult college teaching in the evenings, an awarding
organisation verifying its candidates overnight) are far from their peers by nature. An
explanation (``[[explanations]]`` in ``detectors/rules.toml``) says which evidence accounts
for which features: an org that goes on to register or revisit the learners it looks up is
doing provider work, so who it looks up and when are its provision's business.

Where an explanation holds for an org (all ``when`` conditions on its org-level features),
the models see the features it ``explains`` at the peer norm (0 on the suspicious side) for
that org and for its accounts. Rules read the raw values, so an explanation never hides a
rule hit or a hard fact; and it never lowers features it does not name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

import polars as pl

from detectors.rules import all_of, plain_format
from schemas.detection import ExplanationConfig

_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")


def holding(
    features: pl.DataFrame, explanations: Sequence[ExplanationConfig]
) -> dict[str, list[str]]:
    """org_id -> ids of the explanations that hold for it (read from org-level rows).

    Raises ``KeyError`` when an explanation reads a feature the frame does not have (a
    misspelt feature in ``rules.toml`` must not silently switch an explanation off)."""
    out: dict[str, list[str]] = {}
    if not explanations:
        return out
    for e in explanations:
        missing = [c.feature for c in e.when if c.feature not in features.columns]
        if missing:
            raise KeyError(
                f"explanation {e.id} reads features that are not in the frame: {missing}"
            )
        for org in features.filter(all_of(e.when)).get_column("org_id").to_list():
            out.setdefault(org, []).append(e.id)
    return out


def explained_columns(
    explanations: Sequence[ExplanationConfig], columns: Iterable[str]
) -> dict[str, set[str]]:
    """Explanation id -> the given columns its patterns name."""
    cols = list(columns)
    return {
        e.id: {c for c in cols if any(fnmatchcase(c, p) for p in e.explains)} for e in explanations
    }


def neutralise(
    features: pl.DataFrame,
    by_org: Mapping[str, Sequence[str]],
    explanations: Sequence[ExplanationConfig],
    directions: Mapping[str, int],
    columns: Iterable[str],
) -> pl.DataFrame:
    """``features`` with each explained column set to 0 where it is on the suspicious side,
    on the rows of orgs whose explanation names it. Nulls stay null; rows of orgs without
    an explanation are unchanged. Works for org rows and account rows (keyed by org_id)."""
    if features.is_empty() or not by_org:
        return features
    named = explained_columns(explanations, columns)
    exprs = []
    for col in sorted(set().union(*named.values()) & set(features.columns)):
        ids = {i for i, cols in named.items() if col in cols}
        orgs = [o for o, got in by_org.items() if ids.intersection(got)]
        if not orgs:
            continue
        c = pl.col(col)
        suspicious = (c.cast(pl.Float64) * directions.get(col, 1)) > 0
        exprs.append(
            pl.when(pl.col("org_id").is_in(orgs) & suspicious)
            .then(pl.lit(0.0))
            .otherwise(c.cast(pl.Float64))
            .alias(col)
        )
    return features.with_columns(exprs) if exprs else features


def model_view(
    by_org: Mapping[str, Sequence[str]],
    explanations: Sequence[ExplanationConfig],
    directions: Mapping[str, int],
    columns: Sequence[str],
) -> Callable[[pl.DataFrame], pl.DataFrame]:
    """The transform an ensemble applies to what its models see (see :func:`neutralise`)."""

    def view(features: pl.DataFrame) -> pl.DataFrame:
        return neutralise(features, by_org, explanations, directions, columns)

    return view


def describe(
    e: ExplanationConfig,
    row: Mapping[str, object],
    formatter: Callable[[str, float], str] = plain_format,
) -> str:
    """``e``'s message with ``{feature}`` placeholders filled from ``row``."""

    def fill(m: re.Match[str]) -> str:
        v = row.get(m.group(1))
        if isinstance(v, int | float) and v == v:
            return formatter(m.group(1), float(v))
        return "n/a"

    return f"{e.id}: {_PLACEHOLDER.sub(fill, e.message)}"
