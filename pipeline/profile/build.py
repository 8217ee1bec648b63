"""Usage profiles: per organisation (and per account) and day, features over trailing windows.

How a day is profiled (``build_profiles(settings, day)``):

1. **Daily summaries.** Each lake day in the lookback ``[day - 34, day]`` is summarised
   once into warehouse tables (one SQL file each): ``org_day`` (additive counts per org),
   ``account_day`` (per account), ``account_key_day`` (addresses and agents per account),
   ``org_learner_day`` (a bottom-k sample of learners per org), ``org_area_day`` (calls per
   postcode area) and ``npd_org_day`` (NPD queries checked against agreements). A day is
   rebuilt only when its lake files, the reference data or the profile code changed
   (fingerprints in ``profile_sources``), so a nightly run scans one new day of raw events.
2. **Windows.** The 1, 7 and 28-day windows (and the 28-day baseline before the 7-day
   window) are sums over those summaries (``profile_org_windows.sql``).
3. **Peers and history.** Each key feature gets a robust z-score against its peer group
   (org type x size band; median / MAD; groups under ``min_peers`` active orgs widen to the
   org type, then to all orgs), the peers' median in the feature's own units, and a change
   against its own baseline (``_hd``). An org with no ``expected_learners`` has the size
   band "unknown" (NULL) and is compared with its org type directly.
4. The day's rows of ``features`` and ``account_features`` are replaced in one transaction.

Organisations not in the register: LRS events whose UKPRN matches no registered org are
kept under the synthetic org id ``UKPRN-<ukprn>`` and NPD queries keep their own
``org_id``; each such org seen in the 28-day window gets a feature row with org_type
``unknown``, ``unregistered`` = 1 and ``unregistered_events_*`` (its calls and queries), which
rule REG-01 reads (``profile_org_register.sql``). They never form or shape a peer group:
they are compared with all organisations, as are their accounts. An org whose region is
unknown has NULL region features (``out_region_share_*``, ``plr_far*``): no evidence, not
"every learner lives elsewhere".

Distinct learners over windows: storing every learner of every org-day would cost about
as many rows as events. Instead each org-day keeps its k learners with the smallest key
(a uniform hash of the pseudonym). The union of daily samples contains each window's own
bottom-k sample, so window counts are exact below k and estimated above it (relative error
about ``1/sqrt(k)``), and ratios over learners (search follow-through, repeat learners,
median age) are exact on a uniform sample. The trade-off is precision for large orgs
against storage and speed; ``ProfileConfig.learner_sample_size`` sets k.

Empty and partial days: an organisation with no events has counts of 0 and shares of NULL
(no evidence, not zero); peer z-scores of NULL stay NULL and models read them as 0. A new
organisation with no history has NULL history changes. ``docs/features.md`` lists every
feature and is generated from :data:`ORG_FEATURES` / :data:`ACCOUNT_FEATURES`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import time
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from detectors.rules import load_config
from pipeline.profile import define_npd_checks, sql
from pipeline.store.lake import home_lock, lake_dir, partition_dir
from pipeline.store.warehouse import connect
from schemas.detection import DetectionConfig, ProfileConfig, ProfileReport
from schemas.events import LrsLakeEvent, NpdLakeEvent
from schemas.frames import polars_schema
from schemas.geography import AREA_REGION
from schemas.settings import Settings

REPO = Path(__file__).resolve().parents[2]
FEATURES_DOC = REPO / "docs" / "features.md"

WINDOW_DAYS: dict[str, int] = {"1d": 1, "7d": 7, "28d": 28}
"""The trailing windows of issue 3 (days, ending on the profiled day)."""
BASELINE_DAYS = 28
"""The history baseline: the 28 days before the 7-day window."""
LOOKBACK_DAYS = WINDOW_DAYS["7d"] + BASELINE_DAYS - 1
"""Days before the profiled day that its features read (34)."""
MAD_TO_SIGMA = 1.4826
"""MAD of a normal distribution times this is its standard deviation."""

SUMMARY_TABLES: dict[str, str] = {
    "account_day": "profile_account_day",
    "account_key_day": "profile_account_key_day",
    "org_learner_day": "profile_learner_day",
    "org_area_day": "profile_area_day",
    "org_day": "profile_org_day",
    "npd_org_day": "profile_npd_day",
}
"""Daily summary tables and the SQL file that builds each (in build order)."""
_SUMMARY_TEMP = {
    "account_day": "new_account_day",
    "account_key_day": "new_account_key_day",
    "org_learner_day": "new_learner_day",
    "org_area_day": "new_area_day",
    "org_day": "new_org_day",
    "npd_org_day": "new_npd_day",
}
_SUMMARY_SQL = ("npd_checks", "profile_day_events", *SUMMARY_TABLES.values())
_OUT_COLUMNS_ORG = ("org_id", "day", "org_type", "size_band", "peer_group", "peer_level")
_OUT_COLUMNS_ACCOUNT = ("org_id", "user_name", "day", "org_type")


# --- The feature registry -----------------------------------------------------------------


class Kind(StrEnum):
    tally = "count"  # a non-negative count (not `count`: str.count); compared on log(1 + x)
    share = "share"  # a fraction 0-1
    value = "value"  # any other number (ages, days)
    flag = "flag"  # 0 or 1
    z = "z"  # robust z-score against peers
    peer = "peer"  # the peers' median
    delta = "delta"  # change against the org's own baseline


@dataclass(frozen=True)
class Feature:
    """One column of ``features`` or ``account_features``.

    ``phrase`` renders the value for an analyst (``{v}`` is the formatted value), e.g.
    ``"{v} of calls are demographic searches"``. ``direction`` says which side is
    suspicious: +1 high, -1 low. Key features get ``_pz`` (peer z), ``_pm`` (peer median)
    and, when ``history``, ``_hd`` (change against the baseline) columns.
    """

    name: str
    definition: str
    why: str
    window: str
    kind: Kind
    level: str = "org"
    base: str = ""
    phrase: str = ""
    direction: int = 1
    key: bool = False
    history: bool = False


def _family(
    base: str,
    windows: tuple[str, ...],
    kind: Kind,
    definition: str,
    why: str,
    phrase: str,
    *,
    direction: int = 1,
    keys: tuple[str, ...] = (),
    history: tuple[str, ...] = (),
    level: str = "org",
) -> list[Feature]:
    out = []
    for w in windows:
        span = "the profiled day" if w == "1d" else f"the {WINDOW_DAYS[w]} days to the profiled day"
        out.append(
            Feature(
                name=f"{base}_{w}",
                definition=f"{definition} ({span})",
                why=why,
                window=w,
                kind=kind,
                level=level,
                base=base,
                phrase=phrase,
                direction=direction,
                key=w in keys,
                history=w in history,
            )
        )
    return out


def _point(
    name: str, kind: Kind, definition: str, why: str, phrase: str, direction: int = 1
) -> Feature:
    return Feature(name, definition, why, "day", kind, "org", name, phrase, direction)


W3 = ("1d", "7d", "28d")
W2 = ("7d", "28d")
K17 = ("1d", "7d")
K7 = ("7d",)

_BASE_ORG: list[Feature] = [
    # volume and learners
    *_family("calls", W3, Kind.tally, "LRS calls made by the organisation",
             "sudden or sustained volume far above peers or the org's own past",
             "{v} LRS calls", keys=K17, history=K17),
    *_family("active_days", ("28d",), Kind.tally, "days with at least one LRS call",
             "steady daily use by an org that should be quiet, or the reverse",
             "active on {v} days"),
    *_family("learners", W3, Kind.tally,
             "distinct learners (pseudonyms) looked up; exact on one day, bottom-k estimate "
             "over longer windows",
             "many distinct people looked up by an org of this size",
             "{v} distinct learners", keys=K7),
    *_family("users_active", W3, Kind.tally, "accounts that made a call",
             "one account doing everything, or far more accounts than the org's size",
             "{v} active accounts"),
    *_family("learners_per_user", ("1d", "7d"), Kind.value,
             "distinct learners divided by active accounts",
             "far more distinct learners per person than peers: scripted or shared use",
             "{v} learners per account", keys=K7),
    *_family("max_user_learners", ("1d", "7d"), Kind.tally,
             "the most distinct learners one account looked up in one day",
             "one account sweeping through many people",
             "up to {v} learners a day from one account", keys=("1d",)),
    # operation mix
    *_family("search_share", W3, Kind.share,
             "share of calls that are demographic searches or verify calls",
             "an age-verification reseller only searches and verifies",
             "{v} of calls are demographic searches or verify calls", keys=K17, history=K7),
    *_family("demog_share", W3, Kind.share, "share of calls that are demographic searches",
             "demographic searches confirm a person exists: the Trustopia check",
             "{v} of calls are demographic searches"),
    *_family("verify_share", W3, Kind.share, "share of calls that are verifyLearner calls",
             "verify calls outside an awarding body's results cycle",
             "{v} of calls are verify calls"),
    *_family("register_share", W3, Kind.share,
             "share of calls that register or update learners (single or batch)",
             "a real provider registers and updates the people it looks up",
             "{v} of calls register or update learners", direction=-1, keys=K7,
             history=K7),
    *_family("plr_share", W3, Kind.share,
             "share of calls that read a Personal Learning Record (GetLearnerLearningEvents)",
             "PLR reads are the most intrusive call: browsing shows up here",
             "{v} of calls read learning records", keys=K7, history=K7),
    *_family("plr_far", K17, Kind.tally,
             "learning-record reads of people 25 or over living outside the org's region",
             "records of people with no link to the org read on the very day browsing starts, "
             "even when it is mixed into an account's real work",
             "read the records of {v} adults living elsewhere"),
    *_family("plr_far_share", K17, Kind.share,
             "share of learning-record reads that were of people 25 or over living outside "
             "the org's region",
             "a provider reads the records of its own learners, who mostly live nearby",
             "{v} of its record reads were of adults living elsewhere"),
    *_family("uln_lookup_share", W3, Kind.share, "share of calls that look a learner up by ULN",
             "ULN sweeps are lookups by number", "{v} of calls are ULN lookups"),
    *_family("batch_share", W3, Kind.share, "share of calls that are batch work",
             "context: batch-heavy orgs (awarding bodies) look different",
             "{v} of calls are batch work"),
    *_family("followthrough", W2, Kind.share,
             "of the sampled learners searched or verified, the share the org also "
             "registered, updated or read the record of in the window",
             "a reseller never follows a search with a registration; real providers do",
             "{v} of searched learners were then registered or followed up", direction=-1,
             keys=K7),
    # outcomes
    *_family("no_match_share", W3, Kind.share,
             "share of match-type responses that were no match (WSRC0001)",
             "guessing numbers or people yields many no-matches",
             "{v} of lookups found no match", keys=K7, history=K7),
    *_family("exact_share", W3, Kind.share, "share of match-type responses that were exact",
             "context for the no-match rate", "{v} of lookups were exact matches",
             direction=-1),
    *_family("possible_share", W3, Kind.share,
             "share of match-type responses that were possible matches (WSRC0003)",
             "context for demographic searching", "{v} of lookups were possible matches"),
    *_family("too_many_share", W3, Kind.share,
             "share of match-type responses that were too many matches (WSRC0002)",
             "vague demographic fishing returns too many matches",
             "{v} of lookups matched too many people"),
    *_family("plr_refused_share", W3, Kind.share,
             "share of PLR reads refused (opted out WSEC0206 or not verified WSEC0208)",
             "reads of people who never dealt with the org are refused more often",
             "{v} of record reads were refused"),
    *_family("invalid_uln_share", W3, Kind.share,
             "share of calls sending a ULN whose check digit is wrong",
             "enumeration sends raw numbers, most of which fail the check digit",
             "{v} of ULNs sent had an invalid check digit", keys=K17, history=K7),
    *_family("sweep_share", W3, Kind.share,
             "share of ULN calls in a 7-digit ULN block with many distinct ULNs that day",
             "near-sequential ULNs within one block are a sweep of a number range",
             "{v} of ULN calls were near-sequential sweeps", keys=K17),
    *_family("max_block_learners", ("1d", "7d"), Kind.tally,
             "the most distinct ULNs sent within one 7-digit block in one day",
             "real learners' ULNs are scattered; a sweep packs one block",
             "up to {v} ULNs from one number block in a day"),
    *_family("repeat_learner_share", W3, Kind.share,
             "of the sampled learners, the share with two or more calls in the window",
             "providers revisit their learners; resellers and scrapers rarely do",
             "{v} of learners were looked up more than once", direction=-1, keys=K7),
    *_family("plr_unlinked_share", W2, Kind.share,
             "of the sampled learners whose record was read, the share the org never "
             "searched for, registered or updated in the window",
             "reading records of people with no link to the org is browsing",
             "{v} of records read were of learners with no other link to the org",
             keys=K7),
    # who is looked up
    *_family("adult_share", W3, Kind.share, "share of calls with learner age 19 or over",
             "adults outside the provision of schools and colleges",
             "{v} of people looked up were 19 or over"),
    *_family("older_adult_share", W3, Kind.share, "share of calls with learner age 25 or over",
             "people well past education age: identity checks, not education",
             "{v} of people looked up were 25 or over", keys=K17, history=K7),
    *_family("age_median", W3, Kind.value, "median age of the sampled learners",
             "ages outside the org type's provision", "median learner age {v}",
             keys=K7),
    *_family("out_region_share", W3, Kind.share,
             "share of calls about learners living outside the org's home region",
             "nationwide lookups by a local provider: no relationship with the learner",
             "{v} of people looked up live outside the org's region", keys=K17, history=K7),
    *_family("area_count", W3, Kind.tally, "distinct postcode areas of learners",
             "spread over the whole country", "learners from {v} postcode areas", keys=K7),
    # when and how
    *_family("out_of_hours_share", W3, Kind.share,
             "share of calls outside working hours (Europe/London) or at weekends",
             "steady evening and weekend use by an org that works office hours",
             "{v} of calls were out of hours", keys=K7, history=K7),
    *_family("night_share", W3, Kind.share, "share of calls at night (Europe/London)",
             "people do not look up learners at 3 am; scripts and intruders do",
             "{v} of calls were at night", keys=K7, history=K7),
    *_family("weekend_share", W2, Kind.share, "share of calls on Saturdays and Sundays",
             "weekend use by an org that is closed at weekends",
             "{v} of calls were at weekends", keys=K7),
    *_family("max_user_ips", ("1d", "7d"), Kind.tally,
             "the most distinct client addresses used by one account",
             "one account used from many places: shared or stolen credentials",
             "one account used from {v} addresses", keys=K7),
    *_family("max_user_uas", ("1d", "7d"), Kind.tally,
             "the most distinct user agents used by one account",
             "one account used from many devices: shared or stolen credentials",
             "one account used with {v} user agents", keys=K7),
    *_family("max_ips_hour", ("1d", "7d"), Kind.tally,
             "the most distinct addresses one account used within one clock hour",
             "one person cannot be in several places at once",
             "one account used from {v} addresses within an hour", keys=K7),
    *_family("script_share", W3, Kind.share,
             "share of calls from scripting tools (curl, python-requests, ...) no MIS ships",
             "an automated client instead of the org's MIS",
             "{v} of calls came from scripting tools", keys=K7, history=K7),
    *_family("new_ip_share", ("1d", "7d"), Kind.share,
             "share of calls from addresses the org did not use in its 28-day baseline",
             "access from new places (NULL when the org had no baseline activity)",
             "{v} of calls came from new addresses"),
    *_family("new_ua_share", ("1d", "7d"), Kind.share,
             "share of calls with user agents the org did not use in its 28-day baseline",
             "a new client (also a software upgrade: weak on its own)",
             "{v} of calls used new user agents"),
    # entitlement
    *_family("calls_while_inactive", W3, Kind.tally,
             "LRS calls made on or after the day the org was suspended, revoked or closed",
             "access that should not exist", "{v} calls while suspended, revoked or closed"),
    *_family("npd_queries", W3, Kind.tally, "NPD queries and extracts",
             "context for NPD use", "{v} NPD queries"),
    *_family("npd_rows", W3, Kind.tally, "NPD rows returned", "context for NPD volume",
             "{v} NPD rows returned"),
    *_family("npd_identifying", W3, Kind.tally,
             "NPD queries with items at identifiability 1-2 (names, addresses, birth dates)",
             "identifying extracts at a cadence the agreement does not describe",
             "{v} identifying NPD queries"),
    *_family("npd_no_agreement", W3, Kind.tally,
             "NPD queries citing no agreement, or one that is not the org's",
             "NPD access with no legal gateway", "{v} NPD queries with no agreement"),
    *_family("npd_outside_validity", W3, Kind.tally,
             "NPD queries outside the agreement's validity dates",
             "use after an agreement ended", "{v} NPD queries outside the agreement's dates"),
    *_family("npd_outside_datasets", W3, Kind.tally,
             "NPD queries of a dataset the agreement does not list",
             "over-reach into other datasets", "{v} NPD queries of datasets not agreed"),
    *_family("npd_outside_years", W3, Kind.tally,
             "NPD queries of academic years outside the agreement",
             "over-reach into other years", "{v} NPD queries of years not agreed"),
    *_family("npd_beyond_identifiability", W3, Kind.tally,
             "NPD queries more identifying than the agreement allows",
             "identifying items beyond the agreement",
             "{v} NPD queries more identifying than agreed"),
    *_family("npd_beyond_sensitivity", W3, Kind.tally,
             "NPD queries more sensitive than the agreement allows",
             "sensitive items beyond the agreement",
             "{v} NPD queries more sensitive than agreed"),
    *_family("npd_above_max_rows", W3, Kind.tally,
             "NPD queries returning more rows than the agreement's max_rows",
             "extracts far above the agreed cohort", "{v} NPD queries above the agreed rows"),
    *_family("npd_breaches", W3, Kind.tally,
             "NPD queries breaching the agreement in any of the ways above",
             "NPD access outside an agreement", "{v} NPD queries outside their agreement"),
    *_family("unregistered_events", W3, Kind.tally,
             "LRS calls and NPD queries by an organisation that is not in the register "
             "(0 for every registered org)",
             "access by a caller the register does not know: no entitlement can be checked",
             "{v} LRS calls and NPD queries by an organisation not in the register"),
    # register facts
    _point("org_age_days", Kind.value, "days since the org registered",
           "context: new organisations have no history", "registered {v} days ago", -1),
    _point("days_since_name_change", Kind.value,
           "days since the org's last change of name (NULL when never renamed)",
           "a recent change of name or business precedes reseller misuse (Trustopia)",
           "renamed {v} days ago", -1),
    _point("recent_name_change", Kind.flag,
           "1 when the org changed its name within recent_name_change_days",
           "a recent change of name or business precedes reseller misuse (Trustopia)",
           "changed its name recently"),
    _point("inactive_status", Kind.flag, "1 when the org is suspended, revoked or closed",
           "context for calls_while_inactive", "is suspended, revoked or closed"),
    _point("unregistered", Kind.flag,
           "1 when the org is not in the register: an LRS UKPRN (org id `UKPRN-<ukprn>`) "
           "or an NPD org_id that organisations.csv does not hold (org_type `unknown`)",
           "events from an organisation the register does not know (rule REG-01)",
           "is not in the register"),
    _point("silent_gap", Kind.value,
           "the longest run of days without an LRS call that ended with a call in the last "
           "28 days, counted back at most 34 days (or to registration / the first lake day)",
           "an org dormant for months that suddenly becomes active",
           "became active after {v} silent days"),
]  # fmt: skip

_BASE_ACCOUNT: list[Feature] = [
    *_family("calls", K17, Kind.tally, "calls by the account", "volume of one account",
             "{v} calls", keys=K7, level="account"),
    *_family("learners", K17, Kind.tally,
             "distinct learners looked up (7d: sum of daily distinct learners)",
             "one account looking up far more people than its peers",
             "{v} learners looked up", keys=K7, level="account"),
    *_family("ips", K17, Kind.tally, "distinct client addresses used",
             "one account used from many places: shared or stolen",
             "used from {v} addresses", keys=K7, level="account"),
    *_family("uas", K17, Kind.tally, "distinct user agents used",
             "one account used from many devices: shared or stolen",
             "used with {v} user agents", keys=K7, level="account"),
    *_family("max_ips_hour", K17, Kind.tally,
             "most distinct addresses used within one clock hour",
             "one person cannot be in several places at once",
             "used from {v} addresses within an hour", keys=K7, level="account"),
    *_family("search_share", K17, Kind.share, "share of calls that are searches or verifies",
             "search-only use", "{v} of its calls are searches", keys=K7, level="account"),
    *_family("register_share", K17, Kind.share, "share of calls that register or update",
             "real work registers learners", "{v} of its calls register or update",
             direction=-1, level="account"),
    *_family("plr_share", K17, Kind.share, "share of calls that read learning records",
             "record browsing", "{v} of its calls read learning records", keys=K7,
             level="account"),
    *_family("out_of_hours_share", K17, Kind.share, "share of calls out of hours",
             "use at odd hours", "{v} of its calls were out of hours", keys=K7,
             level="account"),
    *_family("night_share", K17, Kind.share, "share of calls at night",
             "use at night", "{v} of its calls were at night", keys=K7, level="account"),
    *_family("script_share", K17, Kind.share, "share of calls from scripting tools",
             "automated client", "{v} of its calls came from scripting tools", keys=K7,
             level="account"),
    *_family("out_region_share", K17, Kind.share,
             "share of calls about learners outside the org's region",
             "no relationship with the learner", "{v} of people it looked up live elsewhere",
             keys=K7, level="account"),
    *_family("older_adult_share", K17, Kind.share, "share of calls about people 25 or over",
             "people past education age", "{v} of people it looked up were 25 or over",
             keys=K7, level="account"),
    *_family("invalid_uln_share", K17, Kind.share, "share of ULNs sent with a bad check digit",
             "enumeration", "{v} of ULNs it sent were invalid", keys=K7, level="account"),
    *_family("org_call_share", K17, Kind.share, "the account's share of its org's calls",
             "context: how much of the org's activity this account carries",
             "{v} of the org's calls", level="account"),
]  # fmt: skip


def _derived(base: list[Feature]) -> list[Feature]:
    out: list[Feature] = []
    for f in base:
        out.append(f)
        if f.key:
            group = "org type x size band" if f.level == "org" else "org type"
            out.append(
                Feature(
                    f"{f.name}_pz",
                    f"robust z-score of {f.name} against its peers ({group}; median and "
                    "MAD; widened when the group is small)",
                    f.why,
                    f.window,
                    Kind.z,
                    f.level,
                    f.name,
                    f.phrase,
                    f.direction,
                )
            )
            out.append(
                Feature(
                    f"{f.name}_pm",
                    f"median of {f.name} among its peers",
                    "the typical value an analyst compares with",
                    f.window,
                    Kind.peer,
                    f.level,
                    f.name,
                    f.phrase,
                    f.direction,
                )
            )
        if f.history:
            how = (
                "log ratio of the daily rate to the baseline's daily rate"
                if f.kind is Kind.tally
                else "difference from the baseline's value"
            )
            out.append(
                Feature(
                    f"{f.name}_hd",
                    f"change of {f.name} against the org's own 28-day baseline before the "
                    f"7-day window ({how}; NULL without baseline data)",
                    f.why,
                    f.window,
                    Kind.delta,
                    f.level,
                    f.name,
                    f.phrase,
                    f.direction,
                )
            )
    return out


ORG_FEATURES: tuple[Feature, ...] = tuple(_derived(_BASE_ORG))
"""Every column of ``features`` beyond its identifying columns (the single source)."""
ACCOUNT_FEATURES: tuple[Feature, ...] = tuple(_derived(_BASE_ACCOUNT))
"""Every column of ``account_features`` beyond its identifying columns."""
FEATURES: dict[str, Feature] = {f.name: f for f in ORG_FEATURES}
ACCOUNT_FEATURE_MAP: dict[str, Feature] = {f.name: f for f in ACCOUNT_FEATURES}


def model_features(level: str = "org") -> list[str]:
    """Peer-relative and history features the model detectors read by default."""
    feats = ORG_FEATURES if level == "org" else ACCOUNT_FEATURES
    return [f.name for f in feats if f.kind in (Kind.z, Kind.delta)]


# --- Docs ---------------------------------------------------------------------------------


def feature_docs() -> str:
    """``docs/features.md``: every registered feature, generated from the registry."""
    lines = [
        "# Features",
        "",
        "Generated from `pipeline/profile/build.py` "
        "(`python -m pipeline.profile.build --write-docs`); "
        "a test checks this file against the code. Windows end on the profiled day "
        "(Europe/London dates). Counts are compared with peers on log(1 + x).",
        "",
    ]
    for title, feats in (
        ("Organisation features (`features`)", ORG_FEATURES),
        ("Account features (`account_features`)", ACCOUNT_FEATURES),
    ):
        lines += [f"## {title}", "", "| name | window | kind | definition | why it matters |"]
        lines += ["|---|---|---|---|---|"]
        for f in feats:
            lines.append(f"| `{f.name}` | {f.window} | {f.kind.value} | {f.definition} | {f.why} |")
        lines.append("")
    return "\n".join(lines)


def write_feature_docs(path: Path = FEATURES_DOC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(feature_docs())
    return path


# --- Daily summaries ----------------------------------------------------------------------


def _bind(query: str, pool: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``query`` names (``$name``), taken from ``pool``."""
    names = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", query))
    missing = names - pool.keys()
    if missing:
        raise KeyError(f"no value for SQL parameter(s) {sorted(missing)}")
    return {n: pool[n] for n in names}


def _run(con: duckdb.DuckDBPyConnection, name: str, pool: dict[str, Any]) -> None:
    q = sql(name)
    con.execute(q, _bind(q, pool))


def _params(cfg: ProfileConfig, settings: Settings, day: date) -> dict[str, Any]:
    return {
        "day": day,
        "tz": settings.timezone,
        "script_pattern": cfg.script_agent_pattern,
        "office_start": cfg.office_start_hour,
        "office_end": cfg.office_end_hour,
        "night_start": cfg.night_start_hour,
        "night_end": cfg.night_end_hour,
        "adult_age": cfg.adult_age,
        "older_adult_age": cfg.older_adult_age,
        "sweep_min": cfg.sweep_block_min_learners,
        "sample_size": cfg.learner_sample_size,
        "identifying_level": cfg.identifying_level,
    }


def _partition_files(settings: Settings, source: str, day: date) -> list[Path]:
    folder = partition_dir(settings.home, source, day)
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def _files_fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _code_fingerprint(cfg: ProfileConfig) -> str:
    # DuckDB's hash() keys addresses and agents: a new DuckDB version rebuilds summaries
    h = hashlib.sha256(f"{duckdb.__version__}|{cfg.model_dump_json()}".encode())
    for name in _SUMMARY_SQL:
        h.update(sql(name).encode())
    return h.hexdigest()[:16]


def _reference_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(sql("profile_reference_fingerprint")).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] is not None else "empty"


def first_lake_day(settings: Settings, source: str = "lrs") -> date | None:
    """The earliest event date with lake files for ``source`` (None when the lake is empty)."""
    root = lake_dir(settings.home, source)
    days = []
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith("event_date=") and any(child.glob("*.parquet")):
                try:
                    days.append(date.fromisoformat(child.name.split("=", 1)[1]))
                except ValueError:
                    continue
    return min(days) if days else None


def _table_columns(
    con: duckdb.DuckDBPyConnection, table: str, temporary: bool = False
) -> list[str] | None:
    """Column names of a table of the open database (or a temp table), None if absent."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() "
        "WHERE table_name = $t AND (database_name = 'temp') = $tmp AND schema_name = 'main' "
        "ORDER BY column_index",
        {"t": table, "tmp": temporary},
    ).fetchall()
    return [r[0] for r in rows] or None


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE IF NOT EXISTS profile_sources (day DATE PRIMARY KEY, "
        "fingerprint VARCHAR, lrs_events BIGINT, npd_events BIGINT, built_at TIMESTAMPTZ)"
    )


UNREGISTERED_TABLE = "unregistered_orgs"
"""Warehouse table of every organisation not in the register that was ever profiled: org_id
(``UKPRN-<ukprn>`` for an LRS caller), ukprn, name (e.g. ``UKPRN 10009999 (not in the
register)``), first_seen and last_seen (days with a call or query). Kept when the register
later names the org, so the past stays readable; ``org_type`` is always ``unknown``."""


def _record_unregistered(con: duckdb.DuckDBPyConnection) -> int:
    """Upsert the unregistered orgs of temp ``org_register`` into :data:`UNREGISTERED_TABLE`."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {UNREGISTERED_TABLE} (org_id VARCHAR PRIMARY KEY, "
        "ukprn VARCHAR, name VARCHAR, first_seen DATE, last_seen DATE)"
    )
    con.execute(
        f"INSERT INTO {UNREGISTERED_TABLE} "
        "SELECT org_id, ukprn, name, first_seen, last_seen FROM org_register WHERE unregistered "
        "ON CONFLICT (org_id) DO UPDATE SET "
        "first_seen = least(first_seen, excluded.first_seen), "
        "last_seen = greatest(last_seen, excluded.last_seen)"
    )
    rows = con.execute("SELECT count(*) FROM org_register WHERE unregistered").fetchall()
    return int(rows[0][0]) if rows else 0


def _sync_summary_table(con: duckdb.DuckDBPyConnection, table: str, temp: str) -> bool:
    """Create ``table`` like ``temp``; when its columns changed, rebuild it (derived data).

    Returns True when the table was (re)created, so every day must be summarised again.
    """
    have = _table_columns(con, table)
    want = _table_columns(con, temp, temporary=True)
    if have == want:
        return False
    con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM {temp} WITH NO DATA")
    return True


def _empty_partition(settings: Settings, source: str) -> Path:
    """An empty Parquet file shaped like a lake partition file (stands in for a day with
    no files, so the summary SQL has one shape of input)."""
    model = LrsLakeEvent if source == "lrs" else NpdLakeEvent
    path = settings.home / "tmp" / f"empty-{source}.parquet"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = polars_schema(model)
        pl.DataFrame(schema={k: v for k, v in schema.items() if k != "event_date"}).write_parquet(
            path
        )
    return path


def _day_files(
    con: duckdb.DuckDBPyConnection, settings: Settings, day: date
) -> tuple[dict[str, list[str]], int, int]:
    """The lake files of ``day`` per source (an empty stand-in when none) and row counts."""
    out: dict[str, list[str]] = {}
    counts = []
    for source in ("lrs", "npd"):
        files = [str(f) for f in _partition_files(settings, source, day)]
        if files:
            rows = con.execute(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($f)", {"f": files}
            ).fetchall()
            counts.append(int(rows[0][0]) if rows else 0)
        else:
            files = [str(_empty_partition(settings, source))]
            counts.append(0)
        out[source] = files
    return out, counts[0], counts[1]


def _summarise_day(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    cfg: ProfileConfig,
    day: date,
    fingerprint: str,
) -> bool:
    """Rebuild every daily summary of ``day`` in one transaction. True if tables were reset."""
    files, n_lrs, n_npd = _day_files(con, settings, day)
    pool = {**_params(cfg, settings, day), "files": files["lrs"], "npd_files": files["npd"]}
    _run(con, "profile_day_events", pool)
    define_npd_checks(con)
    for name in SUMMARY_TABLES.values():
        _run(con, name, pool)
    reset = False
    for table, temp in _SUMMARY_TEMP.items():
        reset |= _sync_summary_table(con, table, temp)
    if reset:
        con.execute("DELETE FROM profile_sources")
    con.execute("BEGIN TRANSACTION")
    try:
        for table, temp in _SUMMARY_TEMP.items():
            con.execute(f"DELETE FROM {table} WHERE day = $d", {"d": day})
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {temp}")
        con.execute(
            "INSERT OR REPLACE INTO profile_sources VALUES ($d, $f, $l, $n, now())",
            {"d": day, "f": fingerprint, "l": n_lrs, "n": n_npd},
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return reset


def ensure_summaries(
    con: duckdb.DuckDBPyConnection, settings: Settings, cfg: ProfileConfig, day: date
) -> list[date]:
    """Make the daily summaries of ``[day - 34, day]`` current; return the days rebuilt.

    Also drops summaries older than ``summary_retention_days`` before ``day``.
    """
    _ensure_tables(con)
    _register_area_region(con)
    code = _code_fingerprint(cfg)
    ref = _reference_fingerprint(con)
    days = [day - timedelta(days=i) for i in range(LOOKBACK_DAYS, -1, -1)]
    have = dict(
        con.execute(
            "SELECT day, fingerprint FROM profile_sources WHERE day BETWEEN $lo AND $hi",
            {"lo": days[0], "hi": day},
        ).fetchall()
    )
    built: list[date] = []
    pending = list(days)
    while pending:
        d = pending.pop(0)
        files = _partition_files(settings, "lrs", d) + _partition_files(settings, "npd", d)
        fp = f"{code}:{ref}:{_files_fingerprint(files)}"
        if have.get(d) == fp:
            continue
        if _summarise_day(con, settings, cfg, d, fp):
            # tables were rebuilt with new columns: every earlier day must be redone
            pending = [x for x in days if x < d and x not in pending] + pending
            have = {}
        built.append(d)
    cutoff = day - timedelta(days=cfg.summary_retention_days)
    con.execute("BEGIN TRANSACTION")
    for table in SUMMARY_TABLES:
        if _table_columns(con, table):
            con.execute(f"DELETE FROM {table} WHERE day < $c", {"c": cutoff})
    con.execute("DELETE FROM profile_sources WHERE day < $c", {"c": cutoff})
    con.execute("COMMIT")
    return sorted(set(built))


def _register_area_region(con: duckdb.DuckDBPyConnection) -> None:
    frame = pl.DataFrame(
        {"area": list(AREA_REGION), "region": [r.value for r in AREA_REGION.values()]}
    )
    con.register("area_region_src", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE area_region AS SELECT * FROM area_region_src")
    con.unregister("area_region_src")


def _ensure_summary_tables_exist(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Summary tables exist (possibly empty) so window SQL can run on an empty warehouse."""
    if all(_table_columns(con, t) for t in SUMMARY_TABLES):
        return
    # Running the summary SQL on empty inputs gives each table its schema.
    pool = {
        **_params(ProfileConfig(), settings, date(2000, 1, 1)),
        "files": [str(_empty_partition(settings, "lrs"))],
        "npd_files": [str(_empty_partition(settings, "npd"))],
    }
    _register_area_region(con)
    _run(con, "profile_day_events", pool)
    define_npd_checks(con)
    for name in SUMMARY_TABLES.values():
        _run(con, name, pool)
    for table, temp in _SUMMARY_TEMP.items():
        if not _table_columns(con, table):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {temp} WITH NO DATA")


# --- Windows, peers, history --------------------------------------------------------------


def _wide(long: pl.DataFrame, keys: list[str], windows: tuple[str, ...]) -> pl.DataFrame:
    """Long (win, keys..., columns) -> wide ``<column>_<win>``."""
    values = [c for c in long.columns if c not in ("win", *keys)]
    out: pl.DataFrame | None = None
    for w in windows:
        part = long.filter(pl.col("win") == w).select(
            *keys, *[pl.col(c).alias(f"{c}_{w}") for c in values]
        )
        out = part if out is None else out.join(part, on=keys, how="left", coalesce=True)
    assert out is not None
    return out


def _transform(f: Feature) -> pl.Expr:
    col = pl.col(f.name).cast(pl.Float64)
    return col.log1p() if f.kind is Kind.tally else col


def _floor(f: Feature, cfg: ProfileConfig) -> float:
    if f.kind is Kind.tally:
        return cfg.log_scale_floor
    if f.kind is Kind.share:
        return cfg.share_scale_floor
    return cfg.value_scale_floor


def peer_relative(
    frame: pl.DataFrame,
    features: list[Feature],
    cfg: ProfileConfig,
    levels: list[list[str]],
    active: pl.Expr,
) -> pl.DataFrame:
    """Add ``<f>_pz`` (robust z) and ``<f>_pm`` (peer median) for each feature.

    ``levels`` lists the grouping columns from narrowest to widest (``[]`` = everyone).
    An org's level is the narrowest whose group holds at least ``min_peers`` active rows
    (those for which ``active`` is true; only they form the peer distributions). The
    chosen level index is returned in ``peer_level``. A NULL value gives a NULL z-score.
    """
    work = frame.with_columns(
        active.fill_null(False).alias("_active"),
        *[_transform(f).alias(f"_t_{f.name}") for f in features],
    )
    pool = work.filter(pl.col("_active"))
    tcols = [f"_t_{f.name}" for f in features]
    level_expr: pl.Expr | None = None
    for i, keys in enumerate(levels):
        sfx = f"_L{i}"
        if keys:
            meds = pool.group_by(keys).agg(
                pl.len().alias(f"_n{sfx}"), *[pl.col(t).median().alias(t + "_med") for t in tcols]
            )
            mads = (
                pool.join(meds, on=keys, how="left")
                .group_by(keys)
                .agg(
                    *[
                        (pl.col(t) - pl.col(t + "_med")).abs().median().alias(t + "_mad")
                        for t in tcols
                    ]
                )
            )
            stats = meds.join(mads, on=keys, how="left")
            stats = stats.rename(
                {c: c + sfx for c in stats.columns if c not in keys and c != f"_n{sfx}"}
            )
            work = work.join(stats, on=keys, how="left")
        else:
            med_row = pool.select(*[pl.col(t).median().alias(t + "_med") for t in tcols])
            mad_row = (
                pool.select(
                    *[
                        (pl.col(t) - med_row[t + "_med"][0]).abs().median().alias(t + "_mad")
                        for t in tcols
                    ]
                )
                if pool.height
                else med_row.rename({t + "_med": t + "_mad" for t in tcols})
            )
            work = work.with_columns(
                pl.lit(pool.height).alias(f"_n{sfx}"),
                *[
                    pl.lit(med_row[t + "_med"][0], dtype=pl.Float64).alias(t + "_med" + sfx)
                    for t in tcols
                ],
                *[
                    pl.lit(mad_row[t + "_mad"][0], dtype=pl.Float64).alias(t + "_mad" + sfx)
                    for t in tcols
                ],
            )
        ok = pl.col(f"_n{sfx}").fill_null(0) >= cfg.min_peers
        last = i == len(levels) - 1
        choice = pl.lit(i) if last else pl.when(ok).then(pl.lit(i))
        level_expr = (
            choice
            if level_expr is None
            else pl.when(level_expr.is_not_null()).then(level_expr).otherwise(choice)
        )
    assert level_expr is not None
    work = work.with_columns(level_expr.cast(pl.Int64).alias("peer_level"))
    outs = []
    for f in features:
        t = f"_t_{f.name}"

        def pick(stat: str, t: str = t) -> pl.Expr:
            e: pl.Expr = pl.col(f"{t}_{stat}_L{len(levels) - 1}")
            for i in range(len(levels) - 2, -1, -1):
                e = pl.when(pl.col("peer_level") == i).then(pl.col(f"{t}_{stat}_L{i}")).otherwise(e)
            return e

        med, mad = pick("med"), pick("mad")
        scale = pl.max_horizontal(mad.fill_null(0.0) * MAD_TO_SIGMA, pl.lit(_floor(f, cfg)))
        z = ((pl.col(t) - med) / scale).clip(-cfg.z_clip, cfg.z_clip)
        pm = med.exp() - 1 if f.kind is Kind.tally else med
        outs += [z.alias(f"{f.name}_pz"), pm.alias(f"{f.name}_pm")]
    work = work.with_columns(outs)
    keep = [c for c in work.columns if not c.startswith("_")]
    return work.select(keep)


def _history(frame: pl.DataFrame, features: list[Feature], baseline_days: int) -> pl.DataFrame:
    """Add ``<f>_hd``: change of a 1d/7d feature against the 28-day baseline (b28)."""
    exprs = []
    for f in features:
        base = pl.col(f"{f.base}_b28").cast(pl.Float64)
        now = pl.col(f.name).cast(pl.Float64)
        if baseline_days <= 0:
            e = pl.lit(None, dtype=pl.Float64)
        elif f.kind is Kind.tally:
            span = WINDOW_DAYS[f.window]
            e = ((1 + now / span) / (1 + base / baseline_days)).log()
        else:
            e = now - base
        exprs.append(e.alias(f"{f.name}_hd"))
    return frame.with_columns(exprs)


def _band_label(band: int, edges: tuple[int, ...]) -> str:
    lo = 0 if band == 0 else edges[band - 1]
    return f"{lo}+" if band >= len(edges) else f"{lo}-{edges[band] - 1}"


def compute_org_features(
    con: duckdb.DuckDBPyConnection, settings: Settings, cfg: ProfileConfig, day: date
) -> pl.DataFrame:
    """The ``features`` rows of ``day`` (one per organisation), from current summaries."""
    first = first_lake_day(settings)
    d7 = day - timedelta(days=WINDOW_DAYS["7d"] - 1)
    d28 = day - timedelta(days=WINDOW_DAYS["28d"] - 1)
    b_hi = d7 - timedelta(days=1)
    b_lo = d7 - timedelta(days=BASELINE_DAYS)
    covered_from = max(b_lo, first) if first else None
    baseline_days = (b_hi - covered_from).days + 1 if covered_from and covered_from <= b_hi else 0
    history_start = max(day - timedelta(days=LOOKBACK_DAYS), first) if first else day
    pool = {
        "day": day,
        "d7": d7,
        "d28": d28,
        "b_lo": b_lo,
        "b_hi": b_hi,
        "sample_size": cfg.learner_sample_size,
        "history_start": history_start,
        "band_edges": list(cfg.size_band_edges),
        "recent_name_days": cfg.recent_name_change_days,
    }
    _run(con, "profile_org_register", pool)
    _run(con, "profile_org_windows", pool)
    _run(con, "profile_org_facts", pool)
    long = con.sql("SELECT * FROM org_windows").pl()
    wide = _wide(long, ["org_id"], ("1d", "7d", "28d", "b28"))
    facts = con.sql("SELECT * FROM org_facts").pl()
    frame = facts.join(wide, on="org_id", how="left")
    base = [f for f in ORG_FEATURES if f.kind not in (Kind.z, Kind.peer, Kind.delta)]
    frame = _history(frame, [f for f in base if f.history], baseline_days)
    # Peer groups: org type x size band, widened to the org type (also for an org whose
    # size is unknown: a NULL band never matches a group), then to all orgs. Unregistered
    # orgs never form or shape a peer group (they are not in `active`), so their own
    # groups are empty and they are compared with all organisations.
    frame = peer_relative(
        frame,
        [f for f in base if f.key],
        cfg,
        [["org_type", "size_band"], ["org_type"], []],
        (pl.col("calls_28d") > 0) & (pl.col("unregistered") == 0),
    )
    edges = cfg.size_band_edges
    frame = frame.with_columns(
        pl.lit(day).alias("day"),
        pl.struct("org_type", "size_band", "peer_level")
        .map_elements(
            lambda s: (
                f"{s['org_type']} / {_band_label(int(s['size_band']), edges)} learners"
                if s["peer_level"] == 0
                else (s["org_type"] if s["peer_level"] == 1 else "all organisations")
            ),
            return_dtype=pl.String,
        )
        .alias("peer_group"),
    )
    cols = [*_OUT_COLUMNS_ORG, *[f.name for f in ORG_FEATURES]]
    return (
        frame.select(
            *[pl.col(c) for c in _OUT_COLUMNS_ORG],
            *[pl.col(f.name).cast(pl.Float64) for f in ORG_FEATURES],
        )
        .select(cols)
        .sort("org_id")
    )


def compute_account_features(
    con: duckdb.DuckDBPyConnection, cfg: ProfileConfig, day: date
) -> pl.DataFrame:
    """The ``account_features`` rows of ``day``: accounts with a call in the 7-day window."""
    d7 = day - timedelta(days=WINDOW_DAYS["7d"] - 1)
    _run(con, "profile_account_windows", {"day": day, "d7": d7})
    long = con.sql("SELECT * FROM account_windows").pl()
    wide = _wide(long, ["org_id", "user_name"], ("1d", "7d"))
    # temp `org_register` (built by compute_org_features on this connection) also holds
    # unregistered orgs (org_type 'unknown'); their accounts are compared with all accounts
    orgs = con.sql("SELECT org_id, org_type, unregistered FROM org_register").pl()
    frame = wide.join(orgs, on="org_id", how="left")
    base = [f for f in ACCOUNT_FEATURES if f.kind not in (Kind.z, Kind.peer, Kind.delta)]
    frame = peer_relative(
        frame,
        [f for f in base if f.key],
        cfg,
        [["org_type"], []],
        (pl.col("calls_7d") > 0) & ~pl.col("unregistered").fill_null(False),
    )
    frame = frame.with_columns(pl.lit(day).alias("day"))
    return frame.select(
        *[pl.col(c) for c in _OUT_COLUMNS_ACCOUNT],
        *[pl.col(f.name).cast(pl.Float64) for f in ACCOUNT_FEATURES],
    ).sort("org_id", "user_name")


def _replace_day(
    con: duckdb.DuckDBPyConnection, frames: dict[str, pl.DataFrame], day: date
) -> None:
    """Replace ``day``'s rows of each table with its frame, all in one transaction."""
    for table, frame in frames.items():
        have = _table_columns(con, table)
        if have is not None and have != frame.columns:
            # the registry changed: features are derived data, earlier days re-profile
            con.execute(f"DROP TABLE {table}")
            have = None
        if have is None:
            con.register("_shape", frame.head(0))
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _shape")
            con.unregister("_shape")
    con.execute("BEGIN TRANSACTION")
    try:
        for table, frame in frames.items():
            con.execute(f"DELETE FROM {table} WHERE day = $d", {"d": day})
            con.register("_incoming", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
            con.unregister("_incoming")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def build_profiles(
    settings: Settings,
    day: date,
    config: DetectionConfig | None = None,
    lock_wait_seconds: float = 0.0,
) -> ProfileReport:
    """Compute ``features`` and ``account_features`` for every organisation on ``day``.

    Every organisation in ``organisations`` gets a row, active or not, and so does every
    organisation not in the register that made a call or query in the 28-day window
    (``unregistered`` = 1, org_type ``unknown``, id ``UKPRN-<ukprn>`` for an LRS caller).
    Re-running a day replaces its rows in one transaction. Daily summaries of the 34 days before are
    reused when current and rebuilt from the lake otherwise (see the module docstring).
    """

    cfg = (config or load_config()).profile
    started = time.perf_counter()
    with home_lock(settings.home, lock_wait_seconds, purpose="profile"), connect(settings) as con:
        built = ensure_summaries(con, settings, cfg, day)
        _ensure_summary_tables_exist(con, settings)
        org = compute_org_features(con, settings, cfg, day)
        acc = compute_account_features(con, cfg, day)
        _replace_day(con, {"features": org, "account_features": acc}, day)
        _record_unregistered(con)
        rows = con.execute(
            "SELECT coalesce(sum(calls), 0) FROM org_day WHERE day = $d", {"d": day}
        ).fetchall()
        events = int(rows[0][0]) if rows else 0
    active = org.filter((pl.col("calls_1d") > 0) | (pl.col("npd_queries_1d") > 0)).height
    return ProfileReport(
        day=day,
        organisations=org.height,
        active_organisations=active,
        unregistered_organisations=org.filter(pl.col("unregistered") > 0).height,
        accounts=acc.height,
        events_today=events,
        summarised_days=built,
        seconds=round(time.perf_counter() - started, 3),
    )


def read_features(con: duckdb.DuckDBPyConnection, day: date, level: str = "org") -> pl.DataFrame:
    """The stored feature rows of ``day`` (empty frame when the day was not profiled)."""
    table = "features" if level == "org" else "account_features"
    if _table_columns(con, table) is None:
        return pl.DataFrame()
    return con.sql(f"SELECT * FROM {table} WHERE day = $d", params={"d": day}).pl()


def format_value(f: Feature, value: float | None) -> str:
    """A feature value as an analyst reads it (shares as percentages)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if f.kind is Kind.share or (
        f.kind in (Kind.peer,) and FEATURES.get(f.base, f).kind is Kind.share
    ):
        return f"{value:.0%}"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Feature registry tools")
    parser.add_argument("--write-docs", action="store_true", help="write docs/features.md")
    args = parser.parse_args(argv)
    if args.write_docs:
        print(write_feature_docs())


if __name__ == "__main__":
    main()
