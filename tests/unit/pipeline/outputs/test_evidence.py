"""Evidence packs: built from the sample home, sealed by a manifest that catches any change,
and free of personal data; plus the verifier and the event selection on literal data."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.outputs.evidence import (
    MANIFEST,
    PackExistsError,
    _neutralise,
    build_pack,
    npd_events,
    peer_distribution,
    verdict_history,
    verify_pack,
)
from pipeline.rank.listing import NotProfiledError
from pipeline.rank.story import explain
from pipeline.store.version import code_version
from schemas.evidence import EvidenceConfig, PackReport
from schemas.settings import Settings, load_settings
from tests.conftest import SAMPLE, SampleRun
from tests.contract.test_privacy import assert_no_personal_data, personal_values
from tests.unit.cli.test_cli import run

DAY = date(2026, 9, 20)
ENUMERATION = "ORG00190"  # labelled enumeration: LRS rules at org and account level
NPD_OVERREACH = "ORG00117"  # labelled npd_overreach: NPD agreement rules, no LRS events
EXPECTED_FILES = {
    "README.md", "summary.json", "features.csv", "peers.csv", "rule_hits.json",
    "timeline.csv", "events_lrs.csv", "events_npd.csv", "deliveries.csv", "verdicts.json",
    "versions.json", MANIFEST,
}  # fmt: skip

sample_only = pytest.mark.skipif(
    not (SAMPLE / "landing").is_dir(), reason="data/sample not generated yet"
)


@dataclass(frozen=True)
class Packs:
    settings: Settings
    root: Path
    enumeration: PackReport
    npd: PackReport


@pytest.fixture(scope="module")
def packs(sample_home: SampleRun, tmp_path_factory: pytest.TempPathFactory) -> Packs:
    """Two packs from a copy of the sample home, the first after a verdict was recorded."""
    from pipeline.triage.verdicts import record

    root = tmp_path_factory.mktemp("evidence")
    home = root / "home"
    shutil.copytree(sample_home.home, home)
    settings = load_settings(home=home)
    record(settings, ENUMERATION, "needs_info", "asked the academy about h.moore", "ana", day=DAY)
    now = datetime(2026, 9, 21, 9, 30, tzinfo=UTC)
    return Packs(
        settings=settings,
        root=root,
        enumeration=build_pack(settings, ENUMERATION, DAY, root / "packs" / "enum", now=now),
        npd=build_pack(settings, NPD_OVERREACH, DAY, root / "packs" / "npd", now=now),
    )


def _read(report: PackReport, name: str) -> bytes:
    return (report.folder / name).read_bytes()


def _csv(report: PackReport, name: str) -> pl.DataFrame:
    return pl.read_csv(report.folder / name, infer_schema=False)


@sample_only
def test_a_pack_on_the_sample_holds_every_part_of_the_case(packs: Packs) -> None:
    rep = packs.enumeration
    assert set(rep.files) == EXPECTED_FILES == {p.name for p in rep.folder.iterdir()}
    ex = explain(packs.settings, ENUMERATION, DAY)
    summary = json.loads(_read(rep, "summary.json"))
    assert summary["org_id"] == ENUMERATION and summary["day"] == DAY.isoformat()
    assert summary["score"] == ex.score and summary["rank"] == ex.rank
    assert summary["rules"] == sorted({h.rule_id for h in ex.rule_hits})
    assert {"ENU-01", "ACC-03"} <= set(summary["rules"])
    assert [r["text"] for r in summary["reasons"]] == [r.text for r in ex.reasons]
    # features against peers, and the peer group's distribution of the same features
    features = _csv(rep, "features.csv")
    assert features["feature"].to_list() == [f.feature for f in ex.features]
    peers = _csv(rep, "peers.csv")
    assert set(peers["feature"]) == set(features["feature"])
    assert (peers["group_size"].cast(pl.Int64) > 1).any()
    # rule evidence: every fired rule, with its definition and the events behind it
    hits = json.loads(_read(rep, "rule_hits.json"))
    assert {h["rule_id"] for h in hits} == set(summary["rules"])
    for h in hits:
        assert h["rule"]["id"] == h["rule_id"] and h["evidence"]["counts"]
        assert h["events_behind"] > 0, h["rule_id"]
    account = next(h for h in hits if h["rule_id"] == "ACC-03")
    # the pseudonymised events: the org's own, inside the window, each tagged with its rules
    events = _csv(rep, "events_lrs.csv")
    assert events.height == rep.lrs_events > 0
    assert set(events["ukprn"]) == {summary["ukprn"]}
    assert events["event_date"].str.to_date().is_between(date(2026, 9, 14), DAY).all()
    assert events["event_id"].n_unique() == events.height
    acc03 = events.filter(pl.col("rules").str.contains("ACC-03"))
    assert acc03.height == account["events_behind"]
    assert set(acc03["user_name"]) == {account["user_name"]}  # an account rule: its events only
    assert (acc03["event_date"] == DAY.isoformat()).all()  # a 1-day rule: the day's events only
    examples = {e["event_id"] for e in account["evidence"]["examples"]}
    assert examples <= set(acc03["event_id"])
    # every event traces back to a raw delivery file and its hash at ingest
    deliveries = _csv(rep, "deliveries.csv")
    assert set(events["source_file"]) <= set(deliveries["source_file"])
    assert deliveries["file_sha256"].str.len_chars().eq(64).all()
    # score timeline, verdicts, versions
    timeline = _csv(rep, "timeline.csv")
    assert timeline.height == 28 and timeline["day"][-1] == DAY.isoformat()
    assert float(timeline["score"][-1]) == ex.score
    assert timeline["calls"].cast(pl.Int64).sum() > 0
    verdicts = json.loads(_read(rep, "verdicts.json"))
    assert verdicts["available"] and [d["verdict"] for d in verdicts["decisions"]] == ["needs_info"]
    assert rep.verdicts == 1
    assert summary["triage_status"] == ex.triage_status == "needs_info"
    versions = json.loads(_read(rep, "versions.json"))
    assert versions["code_version"] == code_version()
    assert "ENU-01" in versions["rules"]["ids"] and len(versions["rules"]["sha256"]) == 64
    assert {"rules", "iforest", "ecod", "ensemble"} <= set(versions["detectors"])


@sample_only
def test_an_npd_pack_tags_each_query_with_the_agreement_rule_it_breaks(packs: Packs) -> None:
    rep = packs.npd
    hits = {h["rule_id"]: h for h in json.loads(_read(rep, "rule_hits.json"))}
    assert set(hits) >= {"ENT-06"}
    queries = _csv(rep, "events_npd.csv")
    assert rep.lrs_events == 0 and queries.height == rep.npd_events > 0
    ent06 = queries.filter(pl.col("rules").str.contains("ENT-06"))
    assert (ent06["beyond_identifiability"] == "true").all()
    assert ent06.height == hits["ENT-06"]["events_behind"]
    assert ent06.height == hits["ENT-06"]["evidence"]["counts"]["npd_beyond_identifiability_7d"]


@sample_only
def test_npd_checks_per_query_reconcile_with_the_profile_counts(packs: Packs) -> None:
    """The per-query checks of the pack and the daily counts of profile_npd_day.sql agree."""
    queries = npd_events(packs.settings, NPD_OVERREACH, DAY, window_days=7)
    assert queries.height > 0
    with duckdb.connect(str(packs.settings.warehouse), read_only=True) as con:
        counts = con.sql(
            "SELECT day, npd_queries_1d AS npd_queries, npd_beyond_identifiability_1d AS "
            "npd_beyond_identifiability, npd_beyond_sensitivity_1d AS npd_beyond_sensitivity, "
            "npd_no_agreement_1d AS npd_no_agreement FROM features "
            "WHERE org_id = $o AND day BETWEEN $lo AND $d",
            params={"o": NPD_OVERREACH, "lo": date(2026, 9, 14), "d": DAY},
        ).pl()
    per_day = queries.group_by("event_date").agg(
        pl.len().alias("q"),
        pl.col("beyond_identifiability").sum().alias("bi"),
        pl.col("beyond_sensitivity").sum().alias("bs"),
        pl.col("no_agreement").sum().alias("na"),
    )
    joined = counts.join(per_day, left_on="day", right_on="event_date", how="left").fill_null(0)
    assert joined["npd_queries"].sum() == queries.height
    for ours, theirs in (("q", "npd_queries"), ("bi", "npd_beyond_identifiability"),
                         ("bs", "npd_beyond_sensitivity"), ("na", "npd_no_agreement")):  # fmt: skip
        assert joined[ours].cast(pl.Float64).to_list() == joined[theirs].to_list(), theirs


@sample_only
def test_the_manifest_lists_every_file_and_the_zip_holds_the_same_bytes(packs: Packs) -> None:
    rep = packs.enumeration
    manifest = json.loads(_read(rep, MANIFEST))
    listed = {e["path"]: e for e in manifest["files"]}
    assert set(listed) == EXPECTED_FILES - {MANIFEST}
    for name, entry in listed.items():
        data = _read(rep, name)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    assert rep.manifest_sha256 == hashlib.sha256(_read(rep, MANIFEST)).hexdigest()
    with zipfile.ZipFile(rep.zip_path) as z:
        assert sorted(z.namelist()) == sorted(f"enum/{n}" for n in EXPECTED_FILES)
        for name in EXPECTED_FILES:
            assert z.read(f"enum/{name}") == _read(rep, name)
    for target in (rep.folder, rep.zip_path):
        result = verify_pack(target, rep.manifest_sha256)
        assert result.ok and result.checked == len(EXPECTED_FILES) - 1, result


@sample_only
def test_verify_detects_a_tampered_added_or_removed_file(packs: Packs, tmp_path: Path) -> None:
    rep = packs.enumeration
    cases = {
        "changed": lambda d: (d / "events_lrs.csv").write_bytes(
            _read(rep, "events_lrs.csv").replace(b"h.moore", b"x.other", 1)
        ),
        "missing": lambda d: (d / "verdicts.json").unlink(),
        "unexpected": lambda d: (d / "extra.txt").write_text("added later"),
    }
    for kind, tamper in cases.items():
        copy = tmp_path / kind
        shutil.copytree(rep.folder, copy)
        tamper(copy)
        result = verify_pack(copy)
        assert not result.ok and getattr(result, kind), (kind, result)
    # the zip: one member re-written with a changed byte
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(rep.zip_path) as src, zipfile.ZipFile(forged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("summary.json"):
                data = data.replace(b'"rank": ', b'"rank": 1', 1)
            dst.writestr(info, data)
    result = verify_pack(forged, rep.manifest_sha256)
    assert not result.ok and result.changed == ["summary.json"]


@sample_only
def test_a_rewritten_manifest_is_caught_only_by_the_fingerprint(
    packs: Packs, tmp_path: Path
) -> None:
    """A forger who re-hashes the manifest makes a consistent pack: the fingerprint kept
    apart from the pack is what catches it (and why the CLI prints it)."""
    rep = packs.enumeration
    copy = tmp_path / "rehashed"
    shutil.copytree(rep.folder, copy)
    (copy / "summary.json").write_text("{}\n")
    manifest = json.loads((copy / MANIFEST).read_text())
    for entry in manifest["files"]:
        if entry["path"] == "summary.json":
            entry["sha256"] = hashlib.sha256(b"{}\n").hexdigest()
            entry["bytes"] = 3
    (copy / MANIFEST).write_text(json.dumps(manifest))
    assert verify_pack(copy).ok
    caught = verify_pack(copy, rep.manifest_sha256)
    assert not caught.ok and "not the expected" in caught.problems[0]


@sample_only
def test_no_personal_data_from_the_sample_landing_is_in_any_file_of_a_pack(
    packs: Packs, tmp_path: Path
) -> None:
    values = personal_values(SAMPLE / "landing")
    for rep in (packs.enumeration, packs.npd):
        assert_no_personal_data(rep.folder, values)
        unzipped = tmp_path / rep.folder.name
        with zipfile.ZipFile(rep.zip_path) as z:
            z.extractall(unzipped)
        assert_no_personal_data(unzipped, values)
    # and the pack does carry the pseudonyms that stand in for them
    events = _csv(packs.enumeration, "events_lrs.csv")
    assert events["learner_pid"].drop_nulls().str.contains(r"^[0-9a-f]{16,}$").all()


@sample_only
def test_a_pack_is_never_overwritten_and_errors_are_clear(packs: Packs) -> None:
    rep = packs.enumeration
    with pytest.raises(PackExistsError, match="never overwritten"):
        build_pack(packs.settings, ENUMERATION, DAY, rep.folder)
    with pytest.raises(KeyError, match="unknown organisation"):
        build_pack(packs.settings, "ORG99999", DAY, packs.root / "none")
    with pytest.raises(NotProfiledError, match="run detect first"):
        build_pack(packs.settings, ENUMERATION, date(2031, 1, 1), packs.root / "none")
    assert not (packs.root / "none").exists()
    assert not [p for p in (packs.root / "packs").iterdir() if p.name.startswith(".")]


@sample_only
def test_the_event_cap_keeps_the_events_behind_rules_first(packs: Packs) -> None:
    rep = build_pack(
        packs.settings, ENUMERATION, DAY, packs.root / "packs" / "capped",
        evidence=EvidenceConfig(max_events=5),
    )  # fmt: skip
    events = _csv(rep, "events_lrs.csv")
    assert rep.events_truncated and events.height == 5 and (events["rules"] != "").all()
    summary = json.loads(_read(rep, "summary.json"))
    assert summary["events"]["lrs_in_window"] == packs.enumeration.lrs_events
    assert any("capped at 5" in n for n in summary["notes"])


@sample_only
def test_the_peer_group_is_the_one_the_org_was_compared_with(packs: Packs) -> None:
    dist = peer_distribution(packs.settings, ENUMERATION, DAY, ["search_share_7d"])
    ex = explain(packs.settings, ENUMERATION, DAY)
    wanted = next(f for f in ex.features if f.feature == "search_share_7d")
    assert dist.filter(pl.col("is_org")).height == 1 and dist.height >= 5
    assert dist["value"].median() == pytest.approx(wanted.peer_median)  # the org is a peer too


@sample_only
def test_cli_builds_prints_the_fingerprint_and_verifies(packs: Packs) -> None:
    out = packs.root / "packs" / "cli"
    home = ["--home", str(packs.settings.home)]
    built = run("evidence", NPD_OVERREACH, "--day", DAY.isoformat(), "--out", str(out), *home)
    assert built.returncode == 0, built.stderr
    fingerprint = built.stdout.split("fingerprint (SHA-256 of manifest.json): ")[1].split()[0]
    assert fingerprint == hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    ok = run("evidence", "--verify", f"{out}.zip", "--expect", fingerprint)
    assert ok.returncode == 0 and "matches the expected fingerprint" in ok.stdout, ok.stderr
    (out / "timeline.csv").write_text("day,score\n2026-09-20,0\n")
    bad = run("evidence", "--verify", str(out), "--expect", fingerprint)
    assert bad.returncode == 1 and "changed: timeline.csv" in bad.stderr
    again = run("evidence", NPD_OVERREACH, "--day", DAY.isoformat(), "--out", str(out), *home)
    assert again.returncode == 2 and "never overwritten" in again.stderr
    usage = run("evidence", NPD_OVERREACH, *home)
    assert usage.returncode == 2 and "--day and --out" in usage.stderr


# --- Literal data -------------------------------------------------------------------------


def _hand_made_pack(folder: Path, files: dict[str, bytes]) -> str:
    folder.mkdir(parents=True)
    entries = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        entries.append(
            {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    manifest = {"org_id": "ORG1", "day": "2026-09-20", "generated_at": "2026-09-21T00:00:00Z",
                "code_version": "test", "files": entries}  # fmt: skip
    raw = json.dumps(manifest).encode()
    (folder / MANIFEST).write_bytes(raw)
    return hashlib.sha256(raw).hexdigest()


def test_verify_on_a_literal_pack(tmp_path: Path) -> None:
    fingerprint = _hand_made_pack(tmp_path / "p", {"a.txt": b"alpha", "b.csv": b"x,y\n1,2\n"})
    assert verify_pack(tmp_path / "p", fingerprint.upper()).ok
    (tmp_path / "p" / "a.txt").write_bytes(b"alphA")  # same size, other bytes
    assert verify_pack(tmp_path / "p").changed == ["a.txt"]
    assert verify_pack(tmp_path / "nowhere").problems == [f"{tmp_path / 'nowhere'} does not exist"]
    (tmp_path / "p" / MANIFEST).write_text("not json")
    assert "not a valid manifest" in verify_pack(tmp_path / "p").problems[0]


def test_verify_refuses_a_manifest_that_points_outside_the_pack(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("outside")
    _hand_made_pack(tmp_path / "p", {"a.txt": b"alpha"})
    manifest = json.loads((tmp_path / "p" / MANIFEST).read_text())
    data = b"outside"
    manifest["files"].append(
        {"path": "../secret", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    )
    (tmp_path / "p" / MANIFEST).write_text(json.dumps(manifest))
    result = verify_pack(tmp_path / "p")
    assert not result.ok and "invalid path '../secret'" in result.problems[0]


def test_text_a_spreadsheet_would_run_gets_an_apostrophe() -> None:
    frame = pl.DataFrame(
        {"ua": ["=HYPERLINK(1)", "+1", "-cmd", "@SUM(A1)", "curl/8", None], "n": [1] * 6}
    )
    assert _neutralise(frame)["ua"].to_list() == [
        "'=HYPERLINK(1)", "'+1", "'-cmd", "'@SUM(A1)", "curl/8", None
    ]  # fmt: skip


def test_verdict_history_with_no_decisions_is_empty_and_says_so(settings: Settings) -> None:
    decisions, note = verdict_history(settings, "ORG1")
    assert decisions == [] and note == "0 decision(s) recorded"
