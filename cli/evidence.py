"""``accesswatch evidence``: build an evidence pack for referral, or verify one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from cli.options import ConfigOpt, fail, lookup_message, parse_day, settings
from pipeline.outputs.safe_text import console as make_console
from pipeline.outputs.safe_text import line, text

# Printed unwrapped (soft_wrap), errors too: a pack's paths and fingerprint stay whole on one
# line. Data (org ids, paths, zip entry names, notes) goes through pipeline/outputs/safe_text.py.
console = make_console(soft_wrap=True)
err = make_console(stderr=True, soft_wrap=True)

EvidenceHomeOpt = Annotated[
    Path | None, typer.Option("--home", help="State folder. Env ACCESSWATCH_HOME.")
]


def _fail(message: str, code: int = 2) -> NoReturn:
    fail(message, code, soft_wrap=True)


def evidence_cmd(
    org: Annotated[
        str | None, typer.Argument(help="Organisation id, e.g. ORG00050 (not with --verify).")
    ] = None,
    day: Annotated[str | None, typer.Option("--day", help="Day YYYY-MM-DD of the flag.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Pack folder to create (the zip goes beside it: DIR.zip)."),
    ] = None,
    verify: Annotated[
        Path | None,
        typer.Option("--verify", help="Check a pack folder or zip against its manifest."),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option("--expect", help="With --verify: the fingerprint given when it was built."),
    ] = None,
    max_events: Annotated[
        int | None,
        typer.Option("--max-events", min=1, help="Most events per source (default 100,000)."),
    ] = None,
    home: EvidenceHomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Build an evidence pack for referral, or check one has not changed.

    `accesswatch evidence ORG --day D --out DIR` writes DIR/ and DIR.zip: the org's
    features against its peers, rule evidence, the pseudonymised events behind it, the
    score timeline, verdict history and versions, with a manifest of SHA-256 hashes. It
    prints the pack's fingerprint (the manifest's SHA-256): keep it apart from the pack.

    `accesswatch evidence --verify DIR|DIR.zip [--expect FINGERPRINT]` re-hashes every file;
    exits 1 when anything was changed, added or removed.
    """
    if verify is not None:
        if org or day or out:
            _fail("--verify takes only a pack (and --expect); not ORG, --day or --out")
        _verify(verify, expect)
        return
    if expect is not None:
        _fail("--expect goes with --verify")
    if not (org and day and out):
        _fail("give ORG, --day and --out to build a pack, or --verify PATH to check one")
    assert org and day and out
    _build(org, day, out, max_events, home, config)


def _build(
    org: str, day_text: str, out: Path, max_events: int | None, home: Path | None, cfg: Path | None
) -> None:
    from pydantic import ValidationError

    from pipeline.outputs.evidence import PackExistsError, build_pack
    from schemas.evidence import EvidenceConfig

    day = parse_day(day_text, soft_wrap=True)
    effective = settings(cfg, soft_wrap=True, home=home)
    try:
        evidence = EvidenceConfig(**({"max_events": max_events} if max_events else {}))
    except ValidationError as e:
        _fail(f"--max-events: {e.errors()[0]['msg']}")
    try:
        report = build_pack(effective, org, day, out, evidence=evidence)
    except PackExistsError as e:
        _fail(str(e))
    except OSError as e:  # a missing, read-only or full output folder
        _fail(f"cannot write the pack {out}: {e.strerror or e} ({e.filename or out})")
    except LookupError as e:  # an unknown organisation, or a day not detected yet
        _fail(lookup_message(e))
    verdicts = "unavailable" if report.verdicts is None else str(report.verdicts)
    console.print(
        line(
            f"evidence pack for {report.org_id} on {report.day}: {report.folder} and "
            f"{report.zip_path} ({len(report.files)} files; {report.lrs_events:,} LRS events, "
            f"{report.npd_events:,} NPD queries; verdicts: {verdicts})"
        ),
        highlight=False,
    )
    for note in report.notes:
        console.print(line(f"note: {note}"), highlight=False)
    console.print(line(f"fingerprint (SHA-256 of manifest.json): {report.manifest_sha256}"))


def _verify(path: Path, expect: str | None) -> None:
    from pipeline.outputs.evidence import verify_pack

    result = verify_pack(path, expect)
    for label, names in (
        ("changed", result.changed),
        ("missing", result.missing),
        ("not in the manifest", result.unexpected),
    ):
        for name in names:
            err.print(line((f"{label}:", "bold red"), " ", name), highlight=False)
    for problem in result.problems:
        err.print(
            line(("problem:", "bold red"), " ", text(problem, newlines=True)), highlight=False
        )
    if not result.ok:
        err.print(line(("NOT VERIFIED", "bold red"), " ", str(path)), highlight=False)
        raise typer.Exit(1)
    matched = " (matches the expected fingerprint)" if result.expected_sha256 else ""
    console.print(
        line(
            f"verified {path}: {result.checked} files match manifest.json; fingerprint "
            f"{result.manifest_sha256}{matched}"
        ),
        highlight=False,
    )
    if not result.expected_sha256:
        console.print(
            "note: without --expect this shows the pack is consistent with its own manifest, "
            "not that the manifest is the one issued",
            highlight=False,
        )
