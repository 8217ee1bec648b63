"""Evidence packs (``accesswatch evidence``): their settings, manifest and outcomes."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

PACK_FORMAT: Final = "accesswatch-evidence/1"


class EvidenceConfig(BaseModel):
    """What goes into a pack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(
        default=7, ge=1, le=366, description="Days of events included, ending on the pack's day"
    )
    timeline_days: int = Field(
        default=28, ge=1, le=3_660, description="Days of score and volume history included"
    )
    max_events: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Most events per source; events behind a fired rule are kept first",
    )


class VerifyLimits(BaseModel):
    """What ``evidence --verify`` reads before it refuses a pack (folder or zip) as unsafe.

    A pack from elsewhere is untrusted input: a zip bomb declares small sizes and inflates
    to gigabytes, so the declared size is checked and every member is also read in a
    stream that stops at the limit. The defaults hold a pack of the largest
    ``EvidenceConfig.max_events`` with room to spare.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_members: int = Field(
        default=1_000, ge=1, le=100_000, description="Most files (and folders) in a pack"
    )
    max_member_bytes: int = Field(
        default=2 * 1024**3,
        ge=1024,
        le=64 * 1024**3,
        description="Largest file in a pack, as declared and as read (uncompressed)",
    )
    max_total_bytes: int = Field(
        default=8 * 1024**3,
        ge=1024,
        le=256 * 1024**3,
        description="Most bytes read from all files of a pack together (uncompressed)",
    )
    max_manifest_bytes: int = Field(
        default=16 * 1024**2, ge=1024, le=1024**3, description="Largest manifest.json"
    )
    max_ratio: float = Field(
        default=200.0,
        gt=1,
        le=100_000,
        description="Most a zip member may inflate (uncompressed / compressed bytes) once "
        "it is larger than 1 MiB (pack files deflate 3 to 20 times; a bomb of zeros ~1,000)",
    )


class ManifestEntry(BaseModel):
    """One file of a pack: its path relative to the pack folder, size and SHA-256."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(min_length=1)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    """``manifest.json``: every other file of the pack with its SHA-256."""

    model_config = ConfigDict(frozen=True)

    format: Literal["accesswatch-evidence/1"] = PACK_FORMAT
    org_id: str
    day: date
    generated_at: datetime
    code_version: str
    algorithm: Literal["sha256"] = "sha256"
    files: list[ManifestEntry]


class PackReport(BaseModel):
    """What ``build_pack`` wrote. ``manifest_sha256`` fingerprints the whole pack: record it
    outside the pack (case file, referral letter) to show later that nothing changed."""

    org_id: str
    day: date
    folder: Path
    zip_path: Path
    manifest_sha256: str
    files: list[str]
    lrs_events: int = Field(ge=0)
    npd_events: int = Field(ge=0)
    events_truncated: bool = False
    verdicts: int | None = Field(description="Decisions included; None when triage is unavailable")
    notes: list[str] = Field(default_factory=list)


class Verification(BaseModel):
    """The outcome of re-hashing a pack (folder or zip) against its manifest.

    Findings are data: ``ok`` is False when any list is non-empty or the manifest's own
    hash differs from the one expected.
    """

    path: Path
    ok: bool
    manifest_sha256: str | None = None
    expected_sha256: str | None = None
    checked: int = 0
    missing: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unexpected: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
