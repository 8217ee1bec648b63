"""The ULN check digit (LRS rules, as in the public DC-ILR validation service).

Weights 10, 9, ..., 2 on digits 1-9; ``r = sum mod 11``; ``r == 0`` is invalid, otherwise
digit 10 must equal ``10 - r``. ``9999999999`` is a placeholder used in returns and is
treated as invalid here (it names no learner).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

PLACEHOLDER_ULN = "9999999999"
_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine leading digits, or None when no digit can make them valid."""
    if len(first_nine) != 9 or not (first_nine.isascii() and first_nine.isdigit()):
        raise ValueError(f"expected 9 digits, got {first_nine!r}")
    r = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS.tolist(), strict=True)) % 11
    return None if r == 0 else 10 - r


def is_valid_uln(uln: str) -> bool:
    """True when ``uln`` is ten digits with a correct check digit (and not the placeholder)."""
    # isdigit() alone accepts full-width and other Unicode digits, which are not ULNs.
    if len(uln) != 10 or not (uln.isascii() and uln.isdigit()) or uln == PLACEHOLDER_ULN:
        return False
    r = sum(int(d) * w for d, w in zip(uln[:9], _WEIGHTS.tolist(), strict=True)) % 11
    return r != 0 and int(uln[9]) == 10 - r


def valid_uln_expr(col: str | pl.Expr) -> pl.Expr:
    """Vectorised :func:`is_valid_uln` over a string column (null stays null)."""
    c = pl.col(col) if isinstance(col, str) else col
    digits = [c.str.slice(i, 1).cast(pl.Int64, strict=False) for i in range(10)]
    total = pl.sum_horizontal([d * int(w) for d, w in zip(digits[:9], _WEIGHTS, strict=True)])
    r = total % 11
    well_formed = c.str.contains(r"^[0-9]{10}$")
    return (
        pl.when(c.is_null())
        .then(None)
        .otherwise(well_formed & (c != PLACEHOLDER_ULN) & (r != 0) & (digits[9] == 10 - r))
    )


def make_valid_ulns(first_nine: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Turn nine-digit stems (100000000-999999999) into valid ULNs where possible.

    Stems whose remainder is 0 admit no valid check digit; they are returned as -1 so the
    caller can draw again. Vectorised for the generator.
    """
    stems = np.asarray(first_nine, dtype=np.int64)
    digits = (stems[:, None] // (10 ** np.arange(8, -1, -1, dtype=np.int64))) % 10
    r = (digits * _WEIGHTS).sum(axis=1) % 11
    ok = r != 0
    out = stems * 10 + (10 - r)
    return np.where(ok, out, -1)
