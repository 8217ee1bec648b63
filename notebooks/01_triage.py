# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Triage: one day's suspects, one organisation in depth
#
# Pick a day, read the ranked list as analysts see it (verdicts applied), then drill into
# one organisation: its daily score and volume, its features against its peer group, the
# rules that fired with their evidence, the pseudonymised events behind them and the
# verdicts already recorded. Everything comes from the `accesswatch` package (the same
# functions as `accesswatch suspects`, `explain` and `evidence`); this notebook only
# shows it. Run it on the committed sample with `make demo` first, or point `home` at
# any accesswatch home.
#
# Parameters (papermill: `-p home DIR -p day YYYY-MM-DD -p org ORG00050`): `home` (default:
# `ACCESSWATCH_HOME`, else the `make demo` home), `day` (default: the latest detected day),
# `org` (default: the top of the list), `top` (rows listed), `img_dir` (save the plots
# there as PNG when set).

# %% tags=["parameters"]
home = None
day = None
org = None
top = 15
img_dir = None

# %%
import os
import platform
import sys
from datetime import date
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import Markdown, display

from pipeline.outputs.evidence import (
    activity_timeline,
    detected_days,
    lrs_events,
    npd_events,
    peer_distribution,
    verdict_history,
)
from pipeline.rank.listing import suspects
from pipeline.rank.story import explain
from pipeline.store.version import REPO, code_version
from schemas.settings import load_settings

settings = load_settings(home=home or os.environ.get("ACCESSWATCH_HOME") or REPO / "var" / "demo")
days = detected_days(settings)
assert days, f"{settings.home} has no detection results: run `make demo` or a backfill first"
day = date.fromisoformat(str(day)) if day else days[-1]
figures = Path(img_dir) if img_dir else None
if figures:
    figures.mkdir(parents=True, exist_ok=True)
pl.Config.set_tbl_rows(40)
pl.Config.set_fmt_str_lengths(120)
pl.Config.set_tbl_width_chars(200)
print(f"home {settings.home}; days detected {days[0]} .. {days[-1]}; looking at {day}")
print(f"accesswatch {code_version()}; Python {platform.python_version()} ({sys.executable})")


def save(fig, name):
    """Keep a plot as PNG when img_dir is set (docs/img holds the analyst guide's copies)."""
    if figures:
        fig.savefig(figures / name, dpi=110, bbox_inches="tight")


# %% [markdown]
# ## The ranked list
#
# Score 0-100 (higher is more suspicious), the rules that fired, and the triage status:
# `new` (first flagged since the last review), `recurring`, or the verdict in force
# (`misuse` rows are pinned on top; `legitimate` ones are left out until their behaviour
# changes, then come back as `returned`).

# %%
ranked = suspects(settings, day, top=top)
listing = pl.DataFrame(
    [
        {
            "rank": s.rank,
            "org_id": s.org_id,
            "name": s.org_name,
            "type": s.org_type,
            "score": round(s.score, 1),
            "rules": ", ".join(s.rules),
            "status": s.triage_status,
            "first reason": s.reasons[0].text if s.reasons else "",
        }
        for s in ranked
    ]
)
listing

# %% [markdown]
# ## One organisation
#
# Its reasons are the few facts that drive the score, each with the peer group's
# typical value; then any legitimate explanation in force (`LEG-..` in `rules.toml`), whose
# features the models took as the peer norm.

# %%
org = org or ranked[0].org_id
ex = explain(settings, org, day)
rank_text = f"rank {ex.rank}" if ex.rank else "outside the stored list"
display(
    Markdown(
        f"**{ex.org_id} {ex.org_name}** ({ex.org_type}; peers: {ex.peer_group}) on {ex.day}: "
        f"score **{ex.score:.0f}**, {rank_text}, triage status `{ex.triage_status}`\n\n"
        + "\n".join(f"- {r.text}" for r in ex.reasons)
        + "".join(f"\n- *taken as legitimate:* {t}" for t in ex.explanations)
        + (
            "\n\nAccounts carrying the signal: "
            + ", ".join(f"{a.user_name} ({a.share:.0%})" for a in ex.accounts)
            if ex.accounts
            else ""
        )
    )
)

# %% [markdown]
# ### Daily score and volume
#
# Score (line, left axis) against the organisation's daily LRS calls and NPD queries
# (bars, right axis); red dots mark days on which a rule fired.

# %%
timeline = activity_timeline(settings, org, day)
fig, ax = plt.subplots(figsize=(10, 3.6))
volume = ax.twinx()
volume.bar(timeline["day"], timeline["calls"].fill_null(0), color="#c9d6e8", label="LRS calls")
volume.bar(
    timeline["day"],
    timeline["npd_queries"].fill_null(0),
    bottom=timeline["calls"].fill_null(0),
    color="#e8d9c9",
    label="NPD queries",
)
volume.set_ylabel("events per day")
ax.set_zorder(volume.get_zorder() + 1)
ax.patch.set_visible(False)
ax.plot(timeline["day"], timeline["score"], color="#1f4e89", marker="o", ms=3, label="score")
fired = timeline.filter(pl.col("rules") != "")
ax.scatter(fired["day"], fired["score"], color="#c0392b", zorder=3, s=22, label="rule fired")
ax.set_ylim(0, 105)
ax.set_ylabel("score (0-100)")
ax.set_title(f"{ex.org_id} {ex.org_name}: score and daily volume", pad=24)
lines, labels = ax.get_legend_handles_labels()
bars, bar_labels = volume.get_legend_handles_labels()
ax.legend(lines + bars, labels + bar_labels, loc="lower center", bbox_to_anchor=(0.5, 1.0),
          fontsize=8, ncols=4, frameon=False)  # fmt: skip
fig.autofmt_xdate()
save(fig, "triage_timeline.png")
plt.show()
timeline.tail(7)

# %% [markdown]
# ### Features against the peer group
#
# The key features on which the organisation stands furthest from its peers (largest
# robust z-score). Grey dots are the peer group's organisations, the box their middle
# half, the red diamond this organisation.

# %%
shown = [f for f in ex.features if f.peer_z is not None][:8]
dist = peer_distribution(settings, org, day, [f.feature for f in shown])
fig, axes = plt.subplots(2, 4, figsize=(12, 5.2))
for ax, f in zip(axes.flat, shown):
    values = dist.filter((pl.col("feature") == f.feature) & pl.col("value").is_not_null())
    peers = values.filter(~pl.col("is_org"))["value"].to_list()
    ax.boxplot([peers], widths=0.5, showfliers=False)
    ax.scatter([1 + (i % 7 - 3) * 0.04 for i in range(len(peers))], peers, s=6, color="grey",
               alpha=0.5)  # fmt: skip
    if f.value is not None:
        ax.scatter([1], [f.value], marker="D", s=60, color="#c0392b", zorder=3)
    ax.set_title(f"{f.feature}\nz = {f.peer_z:+.1f}", fontsize=9)
    ax.set_xticks([])
for ax in list(axes.flat)[len(shown):]:
    ax.axis("off")
fig.suptitle(f"{ex.org_id} against {ex.peer_group} ({dist['org_id'].n_unique()} organisations)")
fig.tight_layout()
save(fig, "triage_peers.png")
plt.show()
pl.DataFrame([f.model_dump(exclude={"definition"}) for f in ex.features[:12]])

# %% [markdown]
# ## Rule evidence
#
# Every rule that fired for the organisation or one of its accounts, with the counts it
# read and a few example events.

# %%
pl.DataFrame(
    [
        {
            "rule": h.rule_id,
            "severity": h.severity.value,
            "account": h.user_name or "(org)",
            "what": h.message or h.description,
            "counts": ", ".join(f"{k} {v:,.3g}" for k, v in h.evidence.counts.items()),
            "examples": len(h.evidence.examples),
        }
        for h in ex.rule_hits
    ],
    schema=["rule", "severity", "account", "what", "counts", "examples"],
)

# %% [markdown]
# ## Pseudonymised events behind the rules
#
# The organisation's events of the last seven days; `rules` names the rules each one lies
# behind. Learners appear only as keyed pseudonyms (`learner_pid`), ages and postcode
# areas: no ULN, date of birth or postcode exists past ingest.

# %%
lrs = lrs_events(settings, org, day, ex.rule_hits)
npd = npd_events(settings, org, day, ex.rule_hits)
print(
    f"{lrs.height} LRS events ({(lrs['rules'] != '').sum()} behind a rule), "
    f"{npd.height} NPD queries ({(npd['rules'] != '').sum()} behind a rule) in the window"
)
lrs_columns = ["occurred_at", "user_name", "operation", "learner_pid", "learner_age",
               "postcode_area", "response_code", "client_ip", "user_agent", "rules"]  # fmt: skip
display(lrs.filter(pl.col("rules") != "").select(lrs_columns).tail(12))
if npd.height:
    display(
        npd.select("occurred_at", "user_name", "agreement_ref", "dataset",
                   "min_identifiability", "max_sensitivity", "rows_returned", "rules").tail(12)
    )  # fmt: skip

# %% [markdown]
# ## Past verdicts
#
# Every decision recorded on the organisation, oldest first (`accesswatch triage ORG
# --verdict ... --note ... --analyst ...` adds one; none is ever changed).

# %%
decisions, note = verdict_history(settings, org)
print(note)
if decisions:
    display(
        pl.DataFrame(decisions).select(
            "decided_at", "analyst", "verdict", "until", "day", "score_at_decision", "note"
        )
    )
if ex.triage_detail:
    print(ex.triage_detail)

# %% [markdown]
# ## Referral
#
# An evidence pack holds all of the above in files with SHA-256 hashes; build it with:

# %%
print(f"accesswatch evidence {org} --day {day} --out evidence/{org}-{day} --home {settings.home}")
