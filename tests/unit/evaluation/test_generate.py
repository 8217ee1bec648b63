"""The synthetic-world generator keeps its promises: determinism, contract, ground truth.

Small worlds only (a couple of hundred organisations, two weeks at a fifth of normal
volume); each test states what it proves.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from pydantic import ValidationError

from evaluation.generate import generate_world, real_feed_config
from pipeline.ingest.uln import is_valid_uln
from schemas import Agreement, LrsEvent, NpdEvent, Organisation
from schemas.generate import DECOYS, SCENARIOS, WorldConfig, WorldSummary
from schemas.geography import AREA_REGION

LONDON = ZoneInfo("Europe/London")
START = date(2026, 8, 24)
DAYS = 14
CONFIG = WorldConfig(
    orgs=220,
    days=DAYS,
    start=START,
    seed=11,
    malformed_rate=0.01,
    html_agent_rate=0.003,
    late_rate=0.02,
    duplicate_rate=0.01,
    volume_scale=0.2,
)
ACCOUNT_SCENARIOS = {"enumeration", "shared_credentials", "plr_browsing"}


@dataclass(frozen=True)
class Row:
    delivery: str
    file: str
    fields: dict[str, Any] | None  # None: the line cannot be split into fields
    raw: str


def read_rows(landing: Path, source: str) -> list[Row]:
    """Every data line of every delivery file of ``source``, parsed with the stdlib only."""
    rows: list[Row] = []
    for path in sorted((landing / source).rglob("*")):
        if not path.is_file():
            continue
        data = (
            gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        )
        text = data.decode("utf-8")
        delivery = path.parent.name
        if ".jsonl" in path.name:
            for line in text.splitlines():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    obj = None
                rows.append(Row(delivery, path.name, obj if isinstance(obj, dict) else None, line))
        else:
            lines = text.splitlines()
            header = next(csv.reader([lines[0]]))
            for line, values in zip(lines[1:], csv.reader(lines[1:]), strict=True):
                ok = len(values) == len(header)
                fields = {h: (v if v != "" else None) for h, v in zip(header, values, strict=False)}
                rows.append(Row(delivery, path.name, fields if ok else None, line))
    return rows


def is_valid(row: Row, model: type[LrsEvent] | type[NpdEvent]) -> bool:
    if row.fields is None:
        return False
    try:
        model.model_validate(row.fields)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    out = tmp_path_factory.mktemp("world")
    calls: list[tuple[int, int]] = []
    summary = generate_world(out, CONFIG, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i + 1, DAYS) for i in range(DAYS)], "progress is reported once a day"
    return out, summary


@pytest.fixture(scope="module")
def lrs_rows(world: tuple[Path, WorldSummary]) -> list[Row]:
    return read_rows(world[0] / "landing", "lrs")


@pytest.fixture(scope="module")
def npd_rows(world: tuple[Path, WorldSummary]) -> list[Row]:
    return read_rows(world[0] / "landing", "npd")


@pytest.fixture(scope="module")
def register(world: tuple[Path, WorldSummary]) -> pl.DataFrame:
    return pl.read_csv(world[0] / "landing" / "reference" / "organisations.csv", infer_schema=False)


@pytest.fixture(scope="module")
def labels(world: tuple[Path, WorldSummary]) -> pl.DataFrame:
    return pl.read_csv(world[0] / "truth" / "labels.csv", infer_schema=False)


def good_lrs(rows: list[Row]) -> list[dict[str, Any]]:
    return [r.fields for r in rows if r.fields is not None and is_valid(r, LrsEvent)]


def org_rows(
    rows: list[dict[str, Any]], register: pl.DataFrame, org_id: str
) -> list[dict[str, Any]]:
    ukprn = register.filter(pl.col("org_id") == org_id)["ukprn"][0]
    return [r for r in rows if r["ukprn"] == ukprn]


def files_digest(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    small = CONFIG.model_copy(update={"orgs": 120, "days": 3, "volume_scale": 0.05})
    generate_world(tmp_path / "a", small)
    generate_world(tmp_path / "b", small)
    generate_world(tmp_path / "c", small.model_copy(update={"seed": 12}))
    a, b, c = (files_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) > 10
    differing = [k for k in a if c.get(k) != a[k]]
    assert len(differing) >= len(a) // 2, "a different seed changes most files"


def test_every_scenario_and_decoy_is_in_truth_with_onsets_inside_the_window(
    labels: pl.DataFrame, register: pl.DataFrame, world: tuple[Path, WorldSummary]
) -> None:
    assert set(labels["scenario"]) == set(SCENARIOS)
    decoys = pl.read_csv(world[0] / "truth" / "decoys.csv", infer_schema=False)
    assert set(decoys["kind"]) == set(DECOYS)
    assert set(labels["org_id"]) <= set(register["org_id"])
    assert not set(labels["org_id"]) & set(decoys["org_id"]), "an org plays one role"
    end = START + timedelta(days=DAYS - 1)
    for r in labels.iter_rows(named=True):
        onset = date.fromisoformat(r["start_date"])
        assert START < onset <= date.fromisoformat(r["end_date"]) <= end
        assert bool(r["user_name"]) == (r["scenario"] in ACCOUNT_SCENARIOS)


def test_reference_files_follow_the_contract(
    world: tuple[Path, WorldSummary], register: pl.DataFrame
) -> None:
    orgs = [
        Organisation.model_validate(r)
        for r in _csv_dicts(world[0] / "landing/reference/organisations.csv")
    ]
    agreements = [
        Agreement.model_validate(r)
        for r in _csv_dicts(world[0] / "landing/reference/agreements.csv")
    ]
    assert len(orgs) == CONFIG.orgs
    assert len({o.org_id for o in orgs}) == len(orgs)
    types = Counter(o.org_type.value for o in orgs)
    assert types.most_common(2)[0][0] in ("school", "academy")
    assert all(o.ukprn for o in orgs if o.org_type.value not in ("research", "government"))
    assert {o.status.value for o in orgs} >= {"active"}
    assert all(o.status_changed_on for o in orgs if o.status.value != "active")
    assert any(o.previous_name and o.name_changed_on for o in orgs)
    assert {a.org_id for a in agreements} <= {o.org_id for o in orgs}
    assert any(a.purpose.startswith("home_office_match") for a in agreements)


def _csv_dicts(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [{k: (v or None) for k, v in r.items()} for r in csv.DictReader(f)]


def test_only_the_deliberately_malformed_rows_break_the_contract(
    world: tuple[Path, WorldSummary], lrs_rows: list[Row], npd_rows: list[Row]
) -> None:
    summary = world[1]
    bad_lrs = sum(not is_valid(r, LrsEvent) for r in lrs_rows)
    bad_npd = sum(not is_valid(r, NpdEvent) for r in npd_rows)
    assert bad_lrs + bad_npd == summary.malformed_rows
    assert len(lrs_rows) + len(npd_rows) == sum(summary.rows_written.values())
    rate = bad_lrs / len(lrs_rows)
    assert 0.5 * CONFIG.malformed_rate < rate < 1.5 * CONFIG.malformed_rate
    assert len(summary.malformed_by_kind) >= 8, "several kinds of defect"


def test_normal_learners_have_valid_ulns_and_consistent_birth_dates(
    lrs_rows: list[Row], labels: pl.DataFrame, register: pl.DataFrame
) -> None:
    good = good_lrs(lrs_rows)
    enum_orgs = labels.filter(pl.col("scenario") == "enumeration")["org_id"].to_list()
    enum_ukprns = set(register.filter(pl.col("org_id").is_in(enum_orgs))["ukprn"])
    ulns = [r["uln"] for r in good if r["uln"] and r["ukprn"] not in enum_ukprns]
    assert len(ulns) > 1000
    assert all(is_valid_uln(u) for u in ulns)
    ages = [
        (date.fromisoformat(r["occurred_at"][:10]) - date.fromisoformat(r["dob"])).days / 365.25
        for r in good
        if r["dob"]
    ]
    assert min(ages) > 3 and max(ages) < 81
    enum = [r for r in good if r["ukprn"] in enum_ukprns and r["operation"] == "learnerByULN"]
    invalid = sum(not is_valid_uln(r["uln"]) for r in enum)
    assert invalid / len(enum) > 0.4, "the enumerator sends many invalid check digits"


def test_late_events_and_duplicates_are_delivered(
    lrs_rows: list[Row], world: tuple[Path, WorldSummary]
) -> None:
    good = [r for r in lrs_rows if r.fields is not None and is_valid(r, LrsEvent)]
    late = 0
    for r in good:
        assert r.fields is not None
        local = datetime.fromisoformat(r.fields["occurred_at"]).astimezone(LONDON).date()
        late += local < date.fromisoformat(r.delivery)
    assert late > 0.5 * world[1].late_events
    by_id: dict[str, set[tuple[str, str]]] = {}
    for r in good:
        assert r.fields is not None
        by_id.setdefault(r.fields["event_id"], set()).add((r.delivery, r.file))
    copies = sum(len(v) > 1 for v in by_id.values())
    across = sum(len({d for d, _ in v}) > 1 for v in by_id.values())
    assert copies > 0 and across > 0, "repeats within and across deliveries"
    assert world[1].duplicate_rows > 0


def test_files_mix_formats_column_orders_and_extra_columns(
    world: tuple[Path, WorldSummary],
) -> None:
    files = [p for p in (world[0] / "landing" / "lrs").rglob("*") if p.is_file()]
    suffixes = Counter(
        "".join(p.suffixes[-2:]) if p.name.endswith(".gz") else p.suffix for p in files
    )
    assert suffixes[".csv.gz"] and suffixes[".jsonl.gz"]
    headers = set()
    extra = 0
    for p in files:
        if ".csv" in p.name:
            raw = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
            header = tuple(next(csv.reader(io.StringIO(raw.decode()))))
            headers.add(header)
            extra += len(set(header) - set(LrsEvent.model_fields)) > 0
    assert len(headers) > 3 and extra > 0


def test_html_user_agents_are_valid_rows(lrs_rows: list[Row]) -> None:
    html = [r for r in good_lrs(lrs_rows) if "<" in (r["user_agent"] or "")]
    assert html
    assert any('"' in r["user_agent"] for r in html), "quotes survive CSV quoting"


def test_reseller_runs_tens_of_adult_searches_a_day_nationwide(
    lrs_rows: list[Row], labels: pl.DataFrame, register: pl.DataFrame
) -> None:
    label = labels.filter(pl.col("scenario") == "age_verification_reseller").row(0, named=True)
    org = register.filter(pl.col("org_id") == label["org_id"]).row(0, named=True)
    assert org["org_type"] == "training_provider" and org["previous_name"]
    rows = [
        r
        for r in org_rows(good_lrs(lrs_rows), register, label["org_id"])
        if r["occurred_at"][:10] >= label["start_date"]
    ]
    days = (date.fromisoformat(label["end_date"]) - date.fromisoformat(label["start_date"])).days
    per_day = len(rows) / (days + 1)
    assert 15 <= per_day <= 100
    assert {r["operation"] for r in rows} <= {"learnerByDemographics", "verifyLearner"}
    ages = [
        (date.fromisoformat(r["occurred_at"][:10]) - date.fromisoformat(r["dob"])).days / 365.25
        for r in rows
    ]
    assert min(ages) >= 24
    regions = {AREA_REGION[_area(r["postcode"])] for r in rows if r["postcode"]}
    assert len(regions) >= 6
    assert all(not r["user_agent"].startswith("Mozilla") for r in rows)


def _area(postcode: str) -> str:
    head = postcode.split(" ")[0]
    return "".join(ch for ch in head if ch.isalpha())


def test_shared_account_is_used_from_many_addresses(
    lrs_rows: list[Row], labels: pl.DataFrame, register: pl.DataFrame
) -> None:
    label = labels.filter(pl.col("scenario") == "shared_credentials").row(0, named=True)
    rows = org_rows(good_lrs(lrs_rows), register, label["org_id"])
    mine = [
        r
        for r in rows
        if r["user_name"] == label["user_name"] and r["occurred_at"][:10] > label["start_date"]
    ]
    others = [r for r in rows if r["user_name"] != label["user_name"]]
    by_user: dict[str, set[str]] = {}
    for r in others:
        by_user.setdefault(r["user_name"], set()).add(r["client_ip"])
    assert len({r["client_ip"] for r in mine}) >= 10
    assert all(len(v) <= 2 for v in by_user.values()), "normal accounts keep their addresses"


def test_weekends_and_bank_holidays_are_quieter_than_weekdays(lrs_rows: list[Row]) -> None:
    per_day = Counter(r["occurred_at"][:10] for r in good_lrs(lrs_rows))
    bank_holiday = "2026-08-31"
    days = {date.fromisoformat(d): n for d, n in per_day.items() if d >= START.isoformat()}
    weekend = [n for d, n in days.items() if d.weekday() >= 5]
    weekday = [n for d, n in days.items() if d.weekday() < 5 and d.isoformat() != bank_holiday]
    assert weekend and weekday
    assert max(weekend) < 0.35 * min(weekday)
    assert per_day[bank_holiday] < 0.35 * min(weekday)


def test_npd_overreach_goes_beyond_the_agreement(
    npd_rows: list[Row], labels: pl.DataFrame, world: tuple[Path, WorldSummary]
) -> None:
    agreements = {
        a.agreement_ref: a
        for a in (
            Agreement.model_validate(r)
            for r in _csv_dicts(world[0] / "landing/reference/agreements.csv")
        )
    }
    over = set(labels.filter(pl.col("scenario") == "npd_overreach")["org_id"])
    outside: Counter[bool] = Counter()
    for r in npd_rows:
        if not is_valid(r, NpdEvent):
            continue
        e = NpdEvent.model_validate(r.fields)
        a = agreements.get(e.agreement_ref or "")
        breach = (
            a is None
            or e.dataset not in a.datasets.split(";")
            or e.min_identifiability < a.min_identifiability
            or e.max_sensitivity < a.max_sensitivity
            or e.rows_returned > a.max_rows
            or not a.valid_from <= e.occurred_at.date() <= a.valid_to
        )
        outside[e.org_id in over] += breach
    assert outside[True] > 0, "the over-reaching org breaches its agreement"
    assert outside[False] == 0, "nobody else does"


def test_config_bounds_are_enforced() -> None:
    with pytest.raises(ValidationError):
        WorldConfig(malformed_rate=0.5)
    with pytest.raises(ValidationError):
        WorldConfig(orgs=10)
    assert CONFIG.onset_day(date(2026, 9, 1), 3) == 8
    assert CONFIG.onset_day(None, 3) == 3


# --- Real-feed quirks -------------------------------------------------------------------------


def test_the_committed_sample_is_what_its_readme_command_makes(tmp_path: Path) -> None:
    """Quirks are off by default: the README command still makes data/sample byte for byte
    (regression guard for every generator change; about 3 s)."""
    sample = Path(__file__).resolve().parents[3] / "data" / "sample"
    config = WorldConfig(
        orgs=400, days=42, start=date(2026, 8, 10), seed=7,
        malformed_rate=0.002, volume_scale=0.04, scenario_scale=0.2,
    )  # fmt: skip
    generate_world(tmp_path, config)
    for part in ("landing", "truth"):
        assert files_digest(tmp_path / part) == files_digest(sample / part), part


@pytest.fixture(scope="module")
def real_feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldSummary]:
    out = tmp_path_factory.mktemp("real-feed")
    return out, generate_world(out, real_feed_config())


def test_real_feed_world_is_deterministic(tmp_path: Path) -> None:
    generate_world(tmp_path / "a", real_feed_config())
    generate_world(tmp_path / "b", real_feed_config())
    assert files_digest(tmp_path / "a") == files_digest(tmp_path / "b")


def test_real_feed_quiet_days_are_header_only_files(real_feed: tuple[Path, WorldSummary]) -> None:
    out, summary = real_feed
    npd_days = sorted(p.name for p in (out / "landing" / "npd").iterdir())
    assert len(npd_days) == summary.days, "every day has an NPD delivery, quiet or not"
    header_only = [
        p for p in (out / "landing" / "npd").rglob("*.csv") if len(p.read_bytes().splitlines()) == 1
    ]
    assert len(header_only) == summary.header_only_files >= 2
    weekend = [p for p in header_only if date.fromisoformat(p.parent.name).weekday() >= 5]
    assert weekend, "weekends are quiet"
    assert header_only[0].read_text().strip().split(",") == list(NpdEvent.model_fields)


def test_real_feed_register_has_empty_optional_fields_and_shuffled_columns(
    real_feed: tuple[Path, WorldSummary],
) -> None:
    ref = real_feed[0] / "landing" / "reference"
    orgs = pl.read_csv(ref / "organisations.csv", infer_schema=False)
    assert orgs.columns != list(Organisation.model_fields)
    assert set(orgs.columns) - set(Organisation.model_fields) == {"register_version"}
    npd_only = orgs.filter(pl.col("ukprn").is_null())
    assert npd_only.height and npd_only["expected_learners"].null_count() == npd_only.height
    assert set(npd_only["org_type"]) <= {"research", "government", "commercial"}
    assert orgs["region"].null_count() > 0 and orgs["registered_on"].null_count() > 0
    agreements = pl.read_csv(ref / "agreements.csv", infer_schema=False)
    assert "register_version" in agreements.columns


def test_real_feed_has_labelled_callers_missing_from_the_register(
    real_feed: tuple[Path, WorldSummary],
) -> None:
    out, summary = real_feed
    orgs = pl.read_csv(out / "landing" / "reference" / "organisations.csv", infer_schema=False)
    labels = pl.read_csv(out / "truth" / "labels.csv", infer_schema=False)
    unregistered = labels.filter(pl.col("scenario") == "unregistered_caller")["org_id"].to_list()
    assert unregistered == summary.unregistered and len(unregistered) == 3
    lrs_ids = [u.removeprefix("UKPRN-") for u in unregistered if u.startswith("UKPRN-")]
    npd_ids = [u for u in unregistered if not u.startswith("UKPRN-")]
    assert len(lrs_ids) == 2 and len(npd_ids) == 1
    assert not set(lrs_ids) & set(orgs["ukprn"].drop_nulls())
    assert not set(npd_ids) & set(orgs["org_id"])
    lrs = [r.fields for r in read_rows(out / "landing", "lrs") if r.fields]
    npd_q = [r.fields for r in read_rows(out / "landing", "npd") if r.fields]
    assert all(any(r.get("ukprn") == u for r in lrs) for u in lrs_ids)
    assert all(any(r.get("org_id") == o for r in npd_q) for o in npd_ids)
