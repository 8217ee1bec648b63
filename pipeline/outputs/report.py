"""The HTML report of one day: one self-contained, offline file for analysts.

It holds the ranked list, a card per suspect (score, rules, reasons in words, accounts,
user agents, example events, the latest triage verdict, a score timeline and the org
against its peers as inline SVG), the day's data quality and the run metadata. There is no
JavaScript, no external font, image or style sheet, and a Content-Security-Policy that
forbids loading anything, so the file opens the same offline, from a mail attachment or
from an evidence folder.

Everything that comes from the logs or the register (org names, user names, user agents,
event ids, file names, notes) is text to the report: the template autoescapes it and the
SVG builders escape every string they write. Control and bidi characters in it are shown
as escapes (``\\x1b``, ``\\u202e``, :func:`pipeline.outputs.safe_text.visible`): a right-to-left
override would otherwise make a name read backwards.

The body of the page (between :data:`BODY_BEGIN` and :data:`BODY_END`) is hashed with
SHA-256 and the hash is printed in the footer (:func:`body_hash` recomputes it), so a copy
can be shown unaltered later. The same data and code give the same body and hash; only the
generation time in the footer differs.

Data comes from :func:`pipeline.rank.listing.suspects`, :func:`pipeline.rank.story.explain_many`,
:func:`pipeline.outputs.summary.day_summary`, the ``ingest_ledger``, :func:`unregistered_orgs`
(callers the register does not hold) and :func:`pipeline.ingest.reference.reference_problems`
(register rows quarantined by the reference load in force); :func:`collect` reads it,
:func:`render` is pure and :func:`write_report` does both and writes the file.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
from markupsafe import Markup, escape

from detectors.registry import configured_models
from detectors.rules import load_config
from pipeline.ingest.reference import reference_problems
from pipeline.outputs import sql
from pipeline.outputs.safe_text import visible
from pipeline.outputs.summary import day_summary
from pipeline.rank.listing import org_directory, suspects
from pipeline.rank.story import explain_many
from pipeline.store.lake import partition_dir
from pipeline.store.version import code_version
from pipeline.store.warehouse import connect
from pipeline.triage.verdicts import history
from schemas.detection import (
    REPORT_TOP,
    SEVERITY_ORDER,
    TIMELINE_DAYS,
    DetectionConfig,
    ExampleEvent,
    FeatureComparison,
    OrgExplanation,
    Suspect,
    TimelinePoint,
)
from schemas.features import FEATURES, WINDOW_DAYS, Kind, format_value
from schemas.flows import DaySummary
from schemas.reference import ReferenceProblem
from schemas.settings import Settings
from schemas.triage import TriageDecision

TEMPLATES = Path(__file__).with_name("templates")
TEMPLATE = "report.html.j2"
BODY_BEGIN = "<!-- report-body:begin -->"
BODY_END = "<!-- report-body:end -->"
HASH_PATTERN = re.compile(r'<meta name="report-body-sha256" content="([0-9a-f]{64})">')

PEER_FEATURES = 5  # features in a card's peer chart
AGENTS = 5  # user agents listed per card
EXAMPLES = 5  # example events listed per rule
QUALITY_DAYS = 7  # delivery days in the data-quality table
AGENT_CHARS = 160  # longer user agents are cut (the full text stays in the lake)


# --- What the template shows --------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The latest triage decision on an organisation (``pipeline.triage.verdicts``)."""

    verdict: str
    analyst: str
    decided_at: datetime
    note: str = ""
    until: date | None = None
    score_at_decision: float | None = None


@dataclass(frozen=True)
class RuleView:
    """One rule that fired for the org or one of its accounts, with its evidence."""

    rule_id: str
    severity: str
    description: str
    hard_fact: bool
    messages: list[str]
    examples: list[ExampleEvent]


@dataclass(frozen=True)
class AgentView:
    """A user agent of the org's LRS calls over the last 7 days."""

    user_agent: str
    calls: int
    accounts: int
    script: bool


@dataclass(frozen=True)
class Card:
    """Everything one suspect's card shows."""

    anchor: str
    suspect: Suspect
    explanation: OrgExplanation
    status: str
    rules: list[RuleView]
    agents: list[AgentView]
    verdict: Verdict | None
    timeline_svg: Markup
    peers_svg: Markup


@dataclass(frozen=True)
class DeliveryDay:
    """Totals of one delivery day's files from the ``ingest_ledger``."""

    day: date
    files: int
    refused: int
    events_in: int
    duplicates: int
    quarantined: int
    late_events: int


@dataclass(frozen=True)
class UnregisteredOrg:
    """An organisation whose events the register does not explain (rule REG-01): what is
    known about it on the report's day (7-day window)."""

    org_id: str
    name: str
    first_seen: date | None
    last_seen: date | None
    lrs_calls_7d: int
    npd_queries_7d: int
    accounts_7d: int
    rank: int | None


@dataclass(frozen=True)
class RunMetadata:
    first_delivery: date | None
    last_delivery: date | None
    first_scored: date | None
    last_scored: date | None
    scored_days: int
    rules_version: str
    detector_version: str
    code_version: str
    triage: str


@dataclass(frozen=True)
class ReportData:
    """Everything :func:`render` needs; read by :func:`collect`."""

    day: date
    top: int
    cards: list[Card]
    summary: DaySummary
    deliveries: list[DeliveryDay]
    meta: RunMetadata
    rule_descriptions: dict[str, str] = field(default_factory=dict)
    unregistered: list[UnregisteredOrg] = field(default_factory=list)
    reference_problems: list[ReferenceProblem] = field(default_factory=list)


# --- Charts (inline SVG, every string escaped) ---------------------------------------------


def _e(value: object) -> str:
    return str(escape(visible(value)))


def _shown(value: object) -> object:
    """Jinja's ``finalize``: data text made visible before it is autoescaped (markup we
    built, such as the SVG charts, is left as it is)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value, newlines=True)
    return value


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def timeline_svg(
    points: list[TimelinePoint],
    day: date,
    top: int = REPORT_TOP,
    days: int = TIMELINE_DAYS,
    width: int = 440,
) -> Markup:
    """The daily score (0-100) over the ``days`` days to ``day``; days without a score are
    gaps; filled dots are days the org ranked within the ``top``."""
    height, left, right, pad_top, bottom = 130, 30, 10, 10, 22
    plot_w, plot_h = width - left - right, height - pad_top - bottom
    first = day - timedelta(days=days - 1)

    def x(d: date) -> float:
        return left + plot_w * (d - first).days / max(days - 1, 1)

    def y(score: float) -> float:
        return pad_top + plot_h * (1 - min(max(score, 0.0), 100.0) / 100)

    title = f"Score over the {days} days to {day}"
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{_e(title)}</title>'
    ]
    for level in (0, 50, 100):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{_num(y(level))}" y2="{_num(y(level))}" '
            f'class="grid"/><text x="{left - 4}" y="{_num(y(level) + 4)}" '
            f'text-anchor="end" class="tick">{level}</text>'
        )
    for d, anchor in ((first, "start"), (day, "end")):
        parts.append(
            f'<text x="{_num(x(d))}" y="{height - 6}" text-anchor="{anchor}" class="tick">'
            f"{_e(d.strftime('%d %b'))}</text>"
        )
    shown = sorted((p for p in points if first <= p.day <= day), key=lambda p: p.day)
    runs: list[list[TimelinePoint]] = []
    for p in shown:
        if runs and (p.day - runs[-1][-1].day).days == 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    for run in runs:
        if len(run) > 1:
            coords = " ".join(f"{_num(x(p.day))},{_num(y(p.score))}" for p in run)
            parts.append(f'<polyline points="{coords}" class="line"/>')
    for p in shown:
        ranked = p.rank is not None and p.rank <= top
        label = f"{p.day}: score {p.score:.1f}" + (f", rank {p.rank}" if p.rank else "")
        r = 4 if p.day == day else 2.5
        parts.append(
            f'<circle cx="{_num(x(p.day))}" cy="{_num(y(p.score))}" r="{r}" '
            f'class="{"dot ranked" if ranked else "dot"}"><title>{_e(label)}</title></circle>'
        )
    if not shown:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{pad_top + plot_h / 2}" text-anchor="middle" '
            'class="tick">no scores in this window</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _feature_label(name: str) -> str:
    f = FEATURES.get(name)
    if f is None:
        return name.replace("_", " ")
    base = (f.base or f.name).replace("_", " ")
    if f.window in WINDOW_DAYS:
        n = WINDOW_DAYS[f.window]
        return f"{base}, {'today' if n == 1 else f'{n} days'}"
    return base


def top_features(
    features: Iterable[FeatureComparison], n: int = PEER_FEATURES
) -> list[FeatureComparison]:
    """The ``n`` features furthest from the peers (largest |peer z|), one per feature family
    (``sweep_share_1d`` and ``_7d`` say the same thing), known values only."""
    out: list[FeatureComparison] = []
    families: set[str] = set()
    for c in sorted(features, key=lambda c: -abs(c.peer_z or 0.0)):
        f = FEATURES.get(c.feature)
        family = (f.base or f.name) if f is not None else c.feature
        if c.value is None or family in families:
            continue
        families.add(family)
        out.append(c)
        if len(out) == n:
            break
    return out


def peers_svg(features: list[FeatureComparison], peer_group: str, width: int = 440) -> Markup:
    """The org (red bar) against its peer group's median (grey bar) for each feature; the
    two bars of a row share one scale (shares: 0-100 %)."""
    row_h, label_h, bar_h, legend_h, value_w = 44, 15, 9, 22, 70
    bar_w = width - value_w
    height = legend_h + row_h * max(len(features), 1)
    group = peer_group or "peers"
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{_e(f'The organisation against the median of {group}')}</title>",
        '<rect x="0" y="4" width="10" height="10" class="org"/>'
        '<text x="14" y="13" class="tick">this organisation</text>'
        '<rect x="130" y="4" width="10" height="10" class="peer"/>'
        f'<text x="144" y="13" class="tick">median of {_e(group)}</text>',
    ]
    if not features:
        parts.append(f'<text x="0" y="{legend_h + 16}" class="tick">no feature values</text>')
    for i, c in enumerate(features):
        f = FEATURES.get(c.feature)
        value, peer = c.value or 0.0, c.peer_median or 0.0
        share = f is not None and f.kind is Kind.share
        scale = 1.0 if share else max(abs(value), abs(peer), 1e-9)
        y0 = legend_h + i * row_h
        z = f"peer z {c.peer_z:+.1f}" if c.peer_z is not None else ""
        shown_v = format_value(f, c.value) if f is not None else _num(value)
        shown_p = format_value(f, c.peer_median) if f is not None else _num(peer)
        parts.append(
            f"<g><title>{_e(c.definition)}: {_e(c.text)}</title>"
            f'<text x="0" y="{y0 + 11}" class="label">{_e(_feature_label(c.feature))}</text>'
            f'<text x="{width}" y="{y0 + 11}" text-anchor="end" class="tick">{_e(z)}</text>'
        )
        for k, (v, cls, shown) in enumerate(((value, "org", shown_v), (peer, "peer", shown_p))):
            w = bar_w * min(max(v / scale, 0.0), 1.0)
            yb = y0 + label_h + k * (bar_h + 3)
            parts.append(
                f'<rect x="0" y="{yb}" width="{_num(max(w, 1.0))}" height="{bar_h}" '
                f'class="{cls}"/><text x="{_num(max(w, 1.0) + 4)}" y="{yb + bar_h - 1}" '
                f'class="tick">{_e(shown)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


# --- Reading ------------------------------------------------------------------------------


def latest_verdicts(settings: Settings, org_ids: Iterable[str]) -> dict[str, Verdict]:
    """The latest triage decision per org, read from the triage history."""
    return latest_of(history(settings), org_ids)


def latest_of(decisions: Iterable[TriageDecision], org_ids: Iterable[str]) -> dict[str, Verdict]:
    """The latest of ``decisions`` per org of ``org_ids``."""
    wanted = set(org_ids)
    latest: dict[str, Any] = {}
    for d in decisions:
        if d.org_id in wanted and (
            d.org_id not in latest or d.decided_at >= latest[d.org_id].decided_at
        ):
            latest[d.org_id] = d
    return {
        org: Verdict(
            verdict=str(getattr(d.verdict, "value", d.verdict)),
            analyst=str(d.analyst),
            decided_at=d.decided_at,
            note=str(d.note or ""),
            until=d.until,
            score_at_decision=d.score_at_decision,
        )
        for org, d in latest.items()
    }


def _rule_views(ex: OrgExplanation, cfg: DetectionConfig) -> list[RuleView]:
    by_rule: dict[str, list[Any]] = {}
    for h in ex.rule_hits:
        by_rule.setdefault(h.rule_id, []).append(h)
    severity = {r.id: r.severity.value for r in cfg.rules}
    out = []
    for rule_id, hits in by_rule.items():
        examples: dict[str, ExampleEvent] = {}
        for h in hits:
            for e in h.evidence.examples:
                examples.setdefault(e.event_id, e)
        out.append(
            RuleView(
                rule_id=rule_id,
                severity=severity.get(rule_id, hits[0].severity.value),
                description=hits[0].description,
                hard_fact=any(h.hard_fact for h in hits),
                messages=[
                    (f"account {h.user_name}: " if h.user_name else "") + h.message for h in hits
                ],
                examples=sorted(examples.values(), key=lambda e: e.occurred_at, reverse=True)[
                    :EXAMPLES
                ],
            )
        )
    return sorted(out, key=lambda r: (SEVERITY_ORDER.get(r.severity, 9), r.rule_id))


def _lrs_files(settings: Settings, lo: date, hi: date) -> list[str]:
    files: list[str] = []
    for i in range((hi - lo).days + 1):
        folder = partition_dir(settings.home, "lrs", lo + timedelta(days=i))
        if folder.is_dir():
            files += [str(p) for p in sorted(folder.glob("*.parquet"))]
    return files


def _short(text: str, n: int = AGENT_CHARS) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _warehouse_facts(
    settings: Settings, day: date, org_ids: list[str], cfg: DetectionConfig
) -> tuple[dict[str, dict[str, Any]], dict[str, list[AgentView]], list[DeliveryDay], list[Any]]:
    """Register facts of the orgs, their user agents (7 days), recent delivery days and the
    data range (first/last delivery, first/last scored day, scored days)."""
    with connect(settings, read_only=True) as con:
        orgs = pl.DataFrame({"org_id": org_ids}, schema={"org_id": pl.String})
        con.register("report_wanted", orgs)
        cur = con.execute(
            "SELECT org_id, ukprn, status, status_changed_on, region FROM organisations "
            "WHERE org_id IN (SELECT org_id FROM report_wanted)"
        )
        names = [d[0] for d in cur.description or []]
        register = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
        # organisations not in the register: what is known (an LRS caller's UKPRN)
        for org_id, (_, org_type, ukprn) in org_directory(con, org_ids).items():
            if org_id not in register and org_type == "unknown":
                register[org_id] = {"org_id": org_id, "ukprn": ukprn,
                                    "status": "not in the register"}  # fmt: skip
        agents: dict[str, list[AgentView]] = {}
        files = _lrs_files(settings, day - timedelta(days=WINDOW_DAYS["7d"] - 1), day)
        with_ukprn = [(o, f["ukprn"]) for o, f in register.items() if f["ukprn"]]
        if files and with_ukprn:
            con.register(
                "report_orgs",
                pl.DataFrame(with_ukprn, schema=["org_id", "ukprn"], orient="row"),
            )
            params = {
                "files": files,
                "agents": AGENTS,
                "script_pattern": cfg.profile.script_agent_pattern,
            }
            for org, agent, calls, accounts, script in con.execute(
                sql("report_user_agents"), params
            ).fetchall():
                agents.setdefault(org, []).append(
                    AgentView(_short(agent), int(calls), int(accounts), bool(script))
                )
        deliveries = [
            DeliveryDay(*r)
            for r in con.execute(
                "SELECT delivery_day, count(*) FILTER (WHERE status <> 'skipped'), "
                "count(*) FILTER (WHERE status = 'refused'), "
                "coalesce(sum(rows_written) FILTER (WHERE status = 'committed'), 0), "
                "coalesce(sum(duplicates) FILTER (WHERE status = 'committed'), 0), "
                "coalesce(sum(quarantined) FILTER (WHERE status = 'committed'), 0), "
                "coalesce(sum(late_events) FILTER (WHERE status = 'committed'), 0) "
                "FROM ingest_ledger WHERE source IN ('lrs', 'npd') "
                "AND delivery_day BETWEEN $lo AND $d GROUP BY delivery_day ORDER BY 1 DESC",
                {"lo": day - timedelta(days=QUALITY_DAYS - 1), "d": day},
            ).fetchall()
        ]
        span = con.execute(
            "SELECT (SELECT min(delivery_day) FROM ingest_ledger WHERE status = 'committed' "
            "AND source IN ('lrs', 'npd')), (SELECT max(delivery_day) FROM ingest_ledger "
            "WHERE status = 'committed' AND source IN ('lrs', 'npd')), "
            "(SELECT min(day) FROM scores), (SELECT max(day) FROM scores), "
            "(SELECT count(DISTINCT day) FROM scores)"
        ).fetchall()[0]
    return register, agents, deliveries, list(span)


def unregistered_orgs(settings: Settings, day: date) -> list[UnregisteredOrg]:
    """Organisations not in the register with a call or query in the 7 days to ``day``
    (profiled as ``UKPRN-<ukprn>`` or under their NPD org_id), most active first; empty
    when the day has no features."""
    with connect(settings, read_only=True) as con:
        have = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name <> 'temp'"
            ).fetchall()
        }
        if not {"features", "unregistered_orgs"} <= have:
            return []
        rows = con.execute(
            "SELECT f.org_id, u.name, u.first_seen, u.last_seen, f.calls_7d, "
            "f.npd_queries_7d, f.users_active_7d, x.rank "
            "FROM features AS f JOIN unregistered_orgs AS u USING (org_id) "
            "LEFT JOIN suspects AS x ON x.day = f.day AND x.level = 'org' "
            "AND x.org_id = f.org_id "
            "WHERE f.day = $d AND f.unregistered = 1 AND f.unregistered_events_7d > 0 "
            "ORDER BY f.unregistered_events_7d DESC, f.org_id",
            {"d": day},
        ).fetchall()
    return [
        UnregisteredOrg(
            org_id=o, name=n, first_seen=fs, last_seen=ls, lrs_calls_7d=int(c or 0),
            npd_queries_7d=int(q or 0), accounts_7d=int(a or 0), rank=k,
        )
        for o, n, fs, ls, c, q, a, k in rows
    ]  # fmt: skip


def _config_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _versions(cfg: DetectionConfig) -> tuple[str, str]:
    """(rules version, detector version): what the rules and models are, with a hash of
    their settings, so two reports can be told apart when either changed."""
    rules = cfg.model_dump_json(include={"rules"})
    settings = cfg.model_dump_json(exclude={"rules"})
    weights = ", ".join(f"{k} {v:g}" for k, v in sorted(cfg.ensemble.weights.items()))
    models = " and ".join(k.label(cfg.models) for k in configured_models(cfg))
    libs = ", ".join(f"{name} {_library(name)}" for name in ("scikit-learn", "pyod"))
    rules_version = f"{len(cfg.rules)} rules, sha256 {_config_hash(rules)}"
    detector_version = (
        f"ensemble ({cfg.ensemble.method}) of {models}, weights {weights}; "
        f"models {cfg.ensemble.model_weight:g} / rules {cfg.ensemble.rule_weight:g}; "
        f"settings sha256 {_config_hash(settings)}; {libs}"
    )
    return rules_version, detector_version


@cache
def _library(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect(
    settings: Settings, day: date, top: int = REPORT_TOP, config: DetectionConfig | None = None
) -> ReportData:
    """Read everything the report of ``day`` shows (its top ``top`` suspects).

    Raises :class:`pipeline.rank.listing.NotProfiledError` when ``day`` has not been scored.
    """
    cfg = config or load_config()
    ranked = suspects(settings, day, top=top)
    explanations = explain_many(settings, [s.org_id for s in ranked], day, cfg)
    summary = day_summary(settings, day, top)
    org_ids = [s.org_id for s in ranked]
    register, agents, deliveries, span = _warehouse_facts(settings, day, org_ids, cfg)
    # each explanation carries its org's decisions: no second read of the triage history
    verdicts = latest_of((d for ex in explanations for d in ex.verdicts), org_ids)
    cards = []
    for s, ex in zip(ranked, explanations, strict=True):
        facts = register.get(s.org_id, {})
        status = str(facts.get("status") or "unknown")
        if facts.get("status_changed_on") and status != "active":
            status += f" since {facts['status_changed_on']}"
        cards.append(
            Card(
                anchor=f"suspect-{s.rank}",
                suspect=s,
                explanation=ex,
                status=status,
                rules=_rule_views(ex, cfg),
                agents=agents.get(s.org_id, []),
                verdict=verdicts.get(s.org_id),
                timeline_svg=timeline_svg(ex.timeline, day, top),
                peers_svg=peers_svg(top_features(ex.features), ex.peer_group),
            )
        )
    rules_version, detector_version = _versions(cfg)
    meta = RunMetadata(
        first_delivery=span[0],
        last_delivery=span[1],
        first_scored=span[2],
        last_scored=span[3],
        scored_days=int(span[4] or 0),
        rules_version=rules_version,
        detector_version=detector_version,
        code_version=code_version(),
        triage="latest verdict per organisation (pipeline.triage.verdicts)",
    )
    return ReportData(
        day=day,
        top=top,
        cards=cards,
        summary=summary,
        deliveries=deliveries,
        meta=meta,
        rule_descriptions={r.id: r.description for r in cfg.rules},
        unregistered=unregistered_orgs(settings, day),
        reference_problems=reference_problems(settings),
    )


# --- Rendering ----------------------------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    # Autoescape everything: the template's extension (.j2) is not one Jinja recognises.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=_shown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _body(html: str) -> str:
    begin, end = html.find(BODY_BEGIN), html.find(BODY_END)
    if begin < 0 or end < begin:
        raise ValueError("not an accesswatch report: no report body markers")
    return html[begin : end + len(BODY_END)]


def body_hash(html: str) -> str:
    """SHA-256 (hex) of the report body: the text from :data:`BODY_BEGIN` to
    :data:`BODY_END`, both included, as UTF-8."""
    return hashlib.sha256(_body(html).encode("utf-8")).hexdigest()


def stated_hash(html: str) -> str | None:
    """The body hash the report states in its head, or ``None``."""
    m = HASH_PATTERN.search(html)
    return m.group(1) if m else None


def render(data: ReportData, generated_at: datetime | None = None) -> str:
    """The report as one HTML document; the body hash is computed and stated in it."""
    template = _environment().get_template(TEMPLATE)
    when = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    context = {
        "data": data,
        "generated_at": when,
        "severity_order": SEVERITY_ORDER,
        "fmt_score": lambda x: f"{x:.1f}",
        "pct": lambda x: f"{x:.0%}",
        "isfinite": lambda x: x is not None and math.isfinite(x),
    }
    draft = template.render(**context, content_hash="0" * 64)
    digest = body_hash(draft)
    html = template.render(**context, content_hash=digest)
    if body_hash(html) != digest:  # the hash is stated outside the body; a template bug
        raise RuntimeError("the report body changed when its hash was filled in")
    return html


def default_path(settings: Settings, day: date) -> Path:
    """Where the nightly run keeps the report of ``day``: ``<home>/reports/<day>.html``."""
    return settings.home / "reports" / f"{day.isoformat()}.html"


class ReportPathError(OSError):
    """The report cannot be written where asked: its folder does not exist, or it is
    read-only or full. The message names the file."""


def report_path(settings: Settings, day: date, out: Path | None = None) -> Path:
    """The file a report of ``day`` goes to: ``out``; ``<out>/<day>.html`` when ``out`` is
    an existing folder; :func:`default_path` (its folder made) when ``out`` is None.

    Raises :class:`ReportPathError` when the folder of ``out`` does not exist: a mistyped
    path is refused rather than created.
    """
    if out is None:
        path = default_path(settings, day)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ReportPathError(f"cannot write {path}: {e.strerror or e}") from e
        return path
    path = out / f"{day.isoformat()}.html" if out.is_dir() else out
    if not path.parent.is_dir():
        raise ReportPathError(f"cannot write {path}: the folder {path.parent} does not exist")
    return path


def write_report(
    settings: Settings, day: date, out: Path | None = None, top: int = REPORT_TOP
) -> Path:
    """Write the report of ``day`` (top ``top`` suspects) to ``out`` (see
    :func:`report_path`) in one step: readers never see a half-written file.

    Raises :class:`pipeline.rank.listing.NotProfiledError` when ``day`` has not been scored and
    :class:`ReportPathError` when the file cannot be written (its folder is checked first).
    """
    path = report_path(settings, day, out)
    html = render(collect(settings, day, top))
    try:
        _publish(path, html)
    except OSError as e:
        raise ReportPathError(f"cannot write {path}: {e.strerror or e}") from e
    return path


def _publish(path: Path, html: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
