"""Deterministic randomness: per-day generators and counter-based hashes.

Two kinds of randomness are used. Streams (``numpy.random.Generator``) come from a
``SeedSequence`` keyed on (seed, purpose, day), so day ``d`` draws the same numbers whatever
else changes. Stable attributes (a learner's ULN, birth date and postcode; a user's address)
come from a SplitMix64 hash of (seed, salt, key), so the same learner looks the same every
time they are drawn, without keeping learner pools in memory.
"""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def purpose_key(name: str) -> int:
    """A stable small integer for a purpose name (CRC32, not Python's salted hash)."""
    return zlib.crc32(name.encode())


def day_rng(seed: int, purpose: str, day: int = 0) -> np.random.Generator:
    """The generator for one purpose on one day; independent of every other (purpose, day)."""
    return np.random.default_rng(np.random.SeedSequence([seed, purpose_key(purpose), day]))


def mix64(x: U64) -> U64:
    """SplitMix64 finaliser: a bijective, well-mixed 64-bit hash (vectorised, wraps mod 2^64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def salt(seed: int, name: str) -> np.uint64:
    """The hash salt for one named attribute in one world."""
    base = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    mixed = mix64(base ^ mix64(np.array([purpose_key(name)], dtype=np.uint64) * _GOLDEN))
    return np.uint64(mixed[0])


def hash_u64(keys: U64, salt_value: np.uint64) -> U64:
    """64 well-mixed bits per key."""
    return mix64(keys ^ salt_value)


def hash_unit(keys: U64, salt_value: np.uint64) -> F64:
    """A uniform number in [0, 1) per key, stable for (world, attribute, key)."""
    bits = hash_u64(keys, salt_value) >> np.uint64(11)
    return bits.astype(np.float64) * (1.0 / 9007199254740992.0)


def pack_keys(high: npt.ArrayLike, low: npt.ArrayLike) -> U64:
    """Combine two non-negative integer arrays (high < 2^31, low < 2^32) into one key."""
    h = np.asarray(high).astype(np.uint64)
    lo = np.asarray(low).astype(np.uint64)
    return (h << np.uint64(32)) | lo


def categorical(u: F64, weights: npt.ArrayLike) -> I64:
    """Indices drawn from ``weights`` (normalised here) using uniforms ``u``."""
    w = np.asarray(weights, dtype=np.float64)
    cum = np.cumsum(w / w.sum())
    cum[-1] = 1.0
    return np.searchsorted(cum, u, side="right").astype(np.int64)
