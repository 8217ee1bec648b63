"""polars and DuckDB schemas derived from the pydantic models (never typed twice)."""

from __future__ import annotations

import types
import typing
from datetime import date, datetime
from enum import Enum

import polars as pl
from pydantic import AwareDatetime, BaseModel

_SCALARS: dict[type, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    date: pl.Date(),
    datetime: pl.Datetime("us", "UTC"),
    dict: pl.String(),  # stored as JSON text
}

_DUCKDB: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMPTZ",
}


def _base_type(annotation: typing.Any) -> type:
    """The scalar type behind ``X | None``, ``Annotated[X, ...]`` and enums."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"cannot map union {annotation!r} to one column type")
        return _base_type(args[0])
    if annotation is AwareDatetime:
        return datetime
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return str
    if origin is dict or annotation is dict:
        return dict
    if isinstance(annotation, type):
        for scalar in (bool, int, float, str, datetime, date):
            if issubclass(annotation, scalar):
                return scalar
    raise TypeError(f"no column type for {annotation!r}")


def polars_schema(model: type[BaseModel]) -> pl.Schema:
    """Column names and polars types of ``model``, in field order."""
    return pl.Schema(
        {name: _SCALARS[_base_type(f.annotation)] for name, f in model.model_fields.items()}
    )


def duckdb_columns(model: type[BaseModel]) -> str:
    """A ``CREATE TABLE`` column list for ``model``."""
    schema = polars_schema(model)
    return ", ".join(f"{name} {_DUCKDB[type(dtype)]}" for name, dtype in schema.items())


def required_fields(model: type[BaseModel]) -> list[str]:
    """Fields the input must carry a value for."""
    return [n for n, f in model.model_fields.items() if f.is_required()]
