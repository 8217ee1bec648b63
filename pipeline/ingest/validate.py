"""Vectorised validation of raw rows against the pydantic input models.

Every check is derived from a model field (its type, required-ness and constraints), so the
models in ``schemas/`` stay the single definition. Findings about rows are returned as data:
each row gets the first field that fails and a reason; nothing is raised for bad rows.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

import polars as pl
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from schemas.events import personal_fields
from schemas.frames import _base_type

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"
ERROR_FIELD = "_error_field"
ERROR_REASON = "_error_reason"
RAW_VALUE_CHARS = 200
"""Quarantined raw values are cut to this many characters (a 10 MB field stays out)."""


@dataclass(frozen=True)
class Constraints:
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    ge: typing.Any = None
    gt: typing.Any = None
    le: typing.Any = None
    lt: typing.Any = None
    choices: tuple[str, ...] | None = None


def constraints_of(field: FieldInfo) -> Constraints:
    """Collect length, pattern, bound and enum constraints from a field and its annotation."""
    found: dict[str, typing.Any] = {}
    metadata = list(field.metadata)

    def walk(annotation: typing.Any) -> None:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            metadata.extend(args[1:])
            walk(args[0])
        elif origin is not None:
            for arg in typing.get_args(annotation):
                walk(arg)
        elif isinstance(annotation, type) and issubclass(annotation, Enum):
            found["choices"] = tuple(str(m.value) for m in annotation)

    walk(field.annotation)
    for item in metadata:
        for name in ("min_length", "max_length", "pattern", "ge", "gt", "le", "lt"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return Constraints(**found)


def field_checks(name: str, field: FieldInfo) -> tuple[pl.Expr, list[tuple[pl.Expr, str]]]:
    """The parsed-value expression for one field and its (failure condition, reason) list.

    The raw column is a nullable string, with empty strings already turned into nulls.
    """
    raw = pl.col(name)
    kind = _base_type(field.annotation)
    c = constraints_of(field)
    checks: list[tuple[pl.Expr, str]] = []
    if field.is_required():
        checks.append((raw.is_null(), "is missing"))
    checks.append((raw.str.contains("\x00", literal=True), "contains a NUL character"))
    parsed: pl.Expr
    if kind is datetime:
        parsed = raw.str.to_datetime(TIMESTAMP_FORMAT, strict=False, time_zone="UTC")
        checks.append(
            (
                raw.is_not_null() & parsed.is_null(),
                "is not an ISO 8601 timestamp with a UTC offset (e.g. 2026-03-02T14:05:11Z)",
            )
        )
    elif kind is date:
        parsed = raw.str.to_date("%Y-%m-%d", strict=False)
        checks.append((raw.is_not_null() & parsed.is_null(), "is not a date (YYYY-MM-DD)"))
    elif kind is int:
        parsed = raw.str.strip_chars().cast(pl.Int64, strict=False)
        checks.append((raw.is_not_null() & parsed.is_null(), "is not a whole number"))
    elif kind is bool:
        parsed = raw.str.to_lowercase().replace_strict(
            {"true": True, "false": False, "1": True, "0": False}, default=None
        )
        checks.append((raw.is_not_null() & parsed.is_null(), "is not true or false"))
    else:
        parsed = raw
    in_bounds: pl.Expr = pl.lit(True)
    if c.ge is not None:
        checks.append((parsed < c.ge, f"must be at least {_shown(c.ge)}"))
        in_bounds = in_bounds & (parsed >= c.ge)
    if c.gt is not None:
        checks.append((parsed <= c.gt, f"must be after {_shown(c.gt)}"))
        in_bounds = in_bounds & (parsed > c.gt)
    if c.le is not None:
        checks.append((parsed > c.le, f"must be at most {_shown(c.le)}"))
        in_bounds = in_bounds & (parsed <= c.le)
    if c.lt is not None:
        checks.append((parsed >= c.lt, f"must be before {_shown(c.lt)}"))
        in_bounds = in_bounds & (parsed < c.lt)
    if kind is not str:
        # Out-of-bounds values become null, so that cross-field checks and time-zone
        # arithmetic never see them (a year-1 timestamp overflowed the conversion to
        # Europe/London and stopped the whole run).
        parsed = pl.when(in_bounds.fill_null(True)).then(parsed).otherwise(None)
    if c.choices is not None:
        checks.append(
            (
                raw.is_not_null() & ~raw.is_in(list(c.choices)),
                f"is not one of {', '.join(c.choices)}",
            )
        )
    if c.min_length is not None:
        checks.append(
            (raw.str.len_chars() < c.min_length, f"is shorter than {c.min_length} characters")
        )
    if c.max_length is not None:
        checks.append(
            (raw.str.len_chars() > c.max_length, f"is longer than {c.max_length} characters")
        )
    if c.pattern is not None:
        # A model may say in words what a long pattern expects (json_schema_extra "expected").
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        expected = extra.get("expected")
        reason = f"is not {expected}" if expected else f"does not match the pattern {c.pattern}"
        checks.append((~raw.str.contains(ascii_digits(c.pattern)), reason))
    return parsed, checks


def ascii_digits(pattern: str) -> str:
    """``pattern`` with ``\\d`` meaning ASCII 0-9 only (in Rust's regex it is any Unicode
    digit, so full-width digits passed as a UKPRN)."""
    return pattern.replace("\\d", "[0-9]")


def _shown(bound: typing.Any) -> str:
    if isinstance(bound, datetime | date):
        return bound.isoformat()
    return f"{bound:g}"


def null_empty(frame: pl.DataFrame) -> pl.DataFrame:
    """Trim surrounding blanks of string columns and turn empty strings into nulls.

    Trimming matters: an ``event_id`` of ``" e1 "`` is the event ``e1`` (it escaped
    deduplication before).
    """
    return frame.with_columns(
        pl.when(pl.col(c).str.strip_chars() == "")
        .then(None)
        .otherwise(pl.col(c).str.strip_chars())
        .alias(c)
        for c, dtype in frame.schema.items()
        if dtype == pl.String and not c.startswith("_")
    )


def validate(
    frame: pl.DataFrame,
    model: type[BaseModel],
    extra_checks: list[tuple[str, pl.Expr, str]] | None = None,
) -> pl.DataFrame:
    """Parse every field of ``model`` and mark the first failing field of each row.

    ``frame`` holds the raw values as strings (one column per model field). Returns the
    frame with parsed, typed columns plus ``_error_field`` and ``_error_reason`` (null on a
    good row). ``extra_checks`` are (field, condition on parsed columns, reason) triples for
    rules that span fields or need context, e.g. "occurred_at is after the delivery day".
    """
    frame = null_empty(frame)
    parsed: list[pl.Expr] = []
    field_expr: pl.Expr = pl.lit(None, dtype=pl.String)
    reason_expr: pl.Expr = pl.lit(None, dtype=pl.String)
    conditions: list[tuple[str, pl.Expr, str]] = []
    for name, field in model.model_fields.items():
        value, checks = field_checks(name, field)
        parsed.append(value.alias(name))
        conditions.extend((name, cond, reason) for cond, reason in checks)
    out = frame.with_columns(parsed)
    # Raw-level checks run on the raw strings; evaluate them before the parsed columns replace
    # them, then apply checks on parsed values (extra checks) afterwards.
    raw_flags = frame.select(
        [cond.fill_null(False).alias(f"_c{i}") for i, (_, cond, _) in enumerate(conditions)]
    )
    for i, (name, _, reason) in reversed(list(enumerate(conditions))):
        flag = pl.col(f"_c{i}")
        field_expr = pl.when(flag).then(pl.lit(name)).otherwise(field_expr)
        reason_expr = pl.when(flag).then(pl.lit(f"{name} {reason}")).otherwise(reason_expr)
    errors = raw_flags.select(field_expr.alias(ERROR_FIELD), reason_expr.alias(ERROR_REASON))
    out = pl.concat([out, errors], how="horizontal")
    for name, cond, reason in extra_checks or []:
        bad = pl.col(ERROR_FIELD).is_null() & cond.fill_null(False)
        out = out.with_columns(
            pl.when(bad).then(pl.lit(name)).otherwise(pl.col(ERROR_FIELD)).alias(ERROR_FIELD),
            pl.when(bad).then(pl.lit(reason)).otherwise(pl.col(ERROR_REASON)).alias(ERROR_REASON),
        )
    return out


def masked_raw(frame: pl.DataFrame, model: type[BaseModel]) -> pl.Expr:
    """The raw row as JSON with personal fields replaced by a length note (for quarantine)."""
    hidden = set(personal_fields(model))
    cap = RAW_VALUE_CHARS

    def shown(n: str) -> pl.Expr:
        value = pl.col(n)
        return (
            pl.when(value.str.len_chars() > cap)
            .then(
                pl.format("{}… (+{} chars)", value.str.slice(0, cap), value.str.len_chars() - cap)
            )
            .otherwise(value)
        )

    parts = [
        (
            pl.when(pl.col(n).is_null() | (pl.col(n).str.strip_chars() == ""))
            .then(None)
            .otherwise(pl.format("<masked: {} chars>", pl.col(n).str.len_chars()))
            if n in hidden
            else shown(n)
        ).alias(n)
        for n in model.model_fields
        if n in frame.columns
    ]
    return pl.struct(parts).struct.json_encode()
