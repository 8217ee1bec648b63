"""The feature registry: every column of ``features`` and ``account_features``, defined once.

A :class:`Feature` names a column, says what it measures and why it matters, how an
analyst reads its value (``phrase``) and which side is suspicious (``direction``).
Profiling (:mod:`pipeline.profile`) computes the columns, the detectors read them, ranking
words reasons from them and ``docs/features.md`` is generated from them
(``python -m pipeline.profile --write-docs``). A new feature is one entry here plus its
SQL in ``pipeline/profile/sql``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

WINDOW_DAYS: dict[str, int] = {"1d": 1, "7d": 7, "28d": 28}
"""The trailing windows of issue 3 (days, ending on the profiled day)."""
BASELINE_DAYS = 28
"""The history baseline: the 28 days before the 7-day window."""
LOOKBACK_DAYS = WINDOW_DAYS["7d"] + BASELINE_DAYS - 1
"""Days before the profiled day that its features read (34)."""


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
    spans: dict[str, str] | None = None,
) -> list[Feature]:
    out = []
    for w in windows:
        span = "the profiled day" if w == "1d" else f"the {WINDOW_DAYS[w]} days to the profiled day"
        span = (spans or {}).get(w, span)
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


_COHORTS = {
    "7d": "searches made 7-13 days before the profiled day, whose 7-day lag is over",
    "28d": "searches made 7-34 days before the profiled day, whose 7-day lag is over",
}
"""Lagged follow-through counts only searches whose lag window has closed: the 7d cohort is
the 7 most recent such days, the 28d cohort the 28 most recent (the history baseline of
the 7d cohort is the 21 closed days before it). Open searches are ``followed_so_far``."""
_OPEN = {"7d": "searches of the 7 days to the profiled day, follow-ups seen so far"}

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
    *_family("lag_followthrough", W2, Kind.share,
             "per learner, with a lag: of the sampled people the org searched or verified, "
             "the share the org (any account) registered, updated or record-read on the "
             "search day or called about again (re-search, verify, ULN look-up, "
             "registration, update, record read) within the 7 days after it",
             "distance-learning providers register the adults they find 0-5 days later and "
             "look them up again; a reseller never comes back to a person",
             "{v} of the people it searched were followed up within 7 days", direction=-1,
             keys=W2, history=K7, spans=_COHORTS),
    *_family("never_seen_again_share", W2, Kind.share,
             "of the sampled people the org searched or verified, the share with no later "
             "call about them by the org up to the profiled day (and no registration, update "
             "or record read on the search day)",
             "a reseller's searched people never come back to the org; a provider's do",
             "{v} of the people it searched were never seen again", keys=W2,
             spans=_COHORTS),
    *_family("followed_so_far", K7, Kind.share,
             "of the sampled people searched or verified in the 7-day window (lag not yet "
             "over), the share the org has followed up so far (a lower bound)",
             "the first days of a reseller: nothing it searches is ever followed up",
             "{v} of the people it searched this week were followed up so far",
             direction=-1, keys=K7, spans=_OPEN),
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
             "{v} calls", keys=K7, history=K17, level="account"),
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
             "search-only use; against its own history, searching added to an existing "
             "account", "{v} of its calls are searches", keys=K17, history=K17,
             level="account"),
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
             "no relationship with the learner; against its own history, a national spread "
             "new to the account", "{v} of people it looked up live elsewhere",
             keys=K17, history=K17, level="account"),
    *_family("adult_share", K17, Kind.share, "share of calls about people 19 or over",
             "adults outside the provision of schools and colleges; against its own history, "
             "an age band new to the account", "{v} of people it looked up were 19 or over",
             keys=K17, history=K17, level="account"),
    *_family("older_adult_share", K17, Kind.share, "share of calls about people 25 or over",
             "people past education age", "{v} of people it looked up were 25 or over",
             keys=K7, history=K17, level="account"),
    *_family("invalid_uln_share", K17, Kind.share, "share of ULNs sent with a bad check digit",
             "enumeration", "{v} of ULNs it sent were invalid", keys=K7, level="account"),
    *_family("org_call_share", K17, Kind.share, "the account's share of its org's calls",
             "context: how much of the org's activity this account carries",
             "{v} of the org's calls", level="account"),
    *_family("lag_followthrough", K7, Kind.share,
             "of the sampled people this account searched or verified, the share its org "
             "(any account) followed up within 7 days (as the org feature)",
             "searches added to a real provider's account that nobody ever follows up",
             "{v} of the people it searched were followed up within 7 days", direction=-1,
             keys=K7, level="account", spans=_COHORTS),
    *_family("never_seen_again_share", K7, Kind.share,
             "of the sampled people this account searched or verified, the share its org "
             "never called about again up to the profiled day",
             "a reseller's searched people never come back to the org",
             "{v} of the people it searched were never seen again", keys=K7,
             level="account", spans=_COHORTS),
    *_family("followed_so_far", K7, Kind.share,
             "of the sampled people this account searched or verified in the 7-day window, "
             "the share its org has followed up so far (lag not yet over; a lower bound)",
             "the first days of searching added to an existing account",
             "{v} of the people it searched this week were followed up so far",
             direction=-1, keys=K7, level="account", spans=_OPEN),
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
