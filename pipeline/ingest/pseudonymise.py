"""Replace personal data by what detection needs: a keyed pseudonym, an age, an area.

The ULN becomes an HMAC-SHA256 pseudonym (hex, first 128 bits) under a secret key, so the
same learner looks the same across days and organisations but cannot be looked up without
the key. Its first seven digits get a pseudonym of their own (``uln_block_pid``) so that
sweeps through number ranges stay visible. The date of birth becomes the age in whole years
at the time of the query; the postcode becomes its area (the leading letters, ``LS``).
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

from pipeline.ingest.uln import valid_uln_expr

PID_HEX_CHARS = 32
BLOCK_DIGITS = 7


def pseudonym(key: bytes, value: str, domain: str = "uln") -> str:
    """HMAC-SHA256 of ``domain:value`` under ``key``, hex, truncated to 128 bits."""
    digest = hmac.digest(key, f"{domain}:{value}".encode(), "sha256")
    return digest.hex()[:PID_HEX_CHARS]


def pseudonyms(key: bytes, values: list[str], domain: str) -> list[str]:
    """:func:`pseudonym` of many values, about twice as fast.

    The HMAC's keyed inner and outer SHA-256 states are computed once and copied per
    value, which is what ``hmac`` does internally on every call.
    """
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block)).copy
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block)).copy
    prefix = f"{domain}:".encode()
    out: list[str] = []
    for value in values:
        i = inner()
        i.update(prefix + value.encode())
        o = outer()
        o.update(i.digest())
        out.append(o.hexdigest()[:PID_HEX_CHARS])
    return out


def pseudonymise_column(values: pl.Series, key: bytes, domain: str) -> pl.Series:
    """Pseudonyms of a string column; hashes each distinct value once."""
    uniques = values.drop_nulls().unique()
    mapping = pl.DataFrame(
        {"value": uniques, "pid": pl.Series(pseudonyms(key, uniques.to_list(), domain))},
        schema={"value": pl.String, "pid": pl.String},
    )
    frame = values.rename("value").to_frame()
    return frame.join(mapping, on="value", how="left", maintain_order="left")["pid"]


def age_at(dob: pl.Expr, on: pl.Expr) -> pl.Expr:
    """Whole years between ``dob`` and the date ``on`` (a birthday counts on the day)."""
    before_birthday = (on.dt.month() < dob.dt.month()) | (
        (on.dt.month() == dob.dt.month()) & (on.dt.day() < dob.dt.day())
    )
    return (on.dt.year() - dob.dt.year() - before_birthday.cast(pl.Int32)).cast(pl.Int64)


def postcode_area(postcode: pl.Expr) -> pl.Expr:
    return postcode.str.to_uppercase().str.extract(r"^([A-Z]{1,2})[0-9]", 1)


def pseudonymise_lrs(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    """Derive ``learner_pid``, ``uln_block_pid``, ``uln_valid``, ``learner_age`` and
    ``postcode_area`` from the parsed ``uln``, ``dob``, ``postcode`` and ``event_date``,
    and drop the personal columns. Nothing personal survives in the result."""
    uln = frame.get_column("uln")
    blocks = uln.str.slice(0, BLOCK_DIGITS)
    out = frame.with_columns(
        pseudonymise_column(uln, key, "uln").alias("learner_pid"),
        pseudonymise_column(blocks, key, "uln-block").alias("uln_block_pid"),
        valid_uln_expr("uln").alias("uln_valid"),
        age_at(pl.col("dob"), pl.col("event_date")).alias("learner_age"),
        postcode_area(pl.col("postcode")).alias("postcode_area"),
    )
    return out.drop("uln", "dob", "postcode")
