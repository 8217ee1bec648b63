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
# # Detector quality on a labelled world
#
# A generated world (`accesswatch generate`) knows which organisations misbehave and
# from when (`truth/labels.csv`), and which legitimate ones merely look unusual
# (`truth/decoys.csv`). Processed like real data, it shows how well the ranking finds
# them: precision and recall in the top K day by day, where each labelled organisation
# stands every day, how that compares with two baselines a department might run without
# accesswatch (a volume alarm and a plain isolation forest on raw counts), and which rules
# and reasons carry each scenario. The figures come from `evaluation.evaluate` and
# `evaluation.quality`; `accesswatch evaluate --labels FILE` prints the same summary.
#
# Parameters: `home` (a home that processed the world; default `ACCESSWATCH_HOME`, else
# the `make demo` home on `data/sample`), `labels` (default `data/sample/truth/labels.csv`;
# `decoys.csv` is read beside it), `img_dir` (save the plots there as PNG when set).

# %% tags=["parameters"]
home = None
labels = None
img_dir = None

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import display

from evaluation.evaluate import judge, read_truth, top_reasons
from evaluation.quality import daily_quality, label_ranks, method_scores, scenario_drivers
from pipeline.store.version import REPO
from schemas.evaluation import EvaluationConfig
from schemas.settings import load_settings

settings = load_settings(home=home or os.environ.get("ACCESSWATCH_HOME") or REPO / "var" / "demo")
labels_file = Path(labels) if labels else REPO / "data" / "sample" / "truth" / "labels.csv"
truth, decoys = read_truth(labels_file)
cfg = EvaluationConfig()
figures = Path(img_dir) if img_dir else None
if figures:
    figures.mkdir(parents=True, exist_ok=True)
pl.Config.set_tbl_rows(60)
pl.Config.set_fmt_str_lengths(100)
pl.Config.set_tbl_width_chars(200)
print(f"home {settings.home}; {truth.height} labelled organisations, {decoys.height} decoys")
truth


def save(fig, name):
    """Keep a plot as PNG when img_dir is set (docs/img holds the analyst guide's copies)."""
    if figures:
        fig.savefig(figures / name, dpi=110, bbox_inches="tight")


# %% [markdown]
# ## Summary: accesswatch against the baselines
#
# Means over the days from the first onset. P@K: labelled organisations in the top K / K;
# R@K: the share of the organisations misbehaving that day found in the top K; detected:
# labelled organisations that reached the top 20; decoys: the most legitimate look-alikes
# in the top 20 on any day.

# %%
scores = method_scores(settings, cfg)
reasons = top_reasons(settings)
results = {
    m: judge(m, frame, truth, decoys, cfg, reasons if m == "accesswatch" else None)
    for m, frame in scores.items()
}
pl.DataFrame(
    [
        {
            "method": m,
            **{f"P@{k}": round(r.precision[k], 2) for k in cfg.ks},
            **{f"R@{k}": round(r.recall[k], 2) for k in cfg.ks},
            "detected": f"{r.detected}/{len(r.labels)}",
            "median days to top 20": r.median_days_to_detect,
            "max decoys top 20": r.max_decoys.get(20),
        }
        for m, r in results.items()
    ]
)

# %% [markdown]
# ## Precision and recall at K over time
#
# Day by day from the first onset. Precision is capped by the number of labelled
# organisations active that day (grey, right axis of the precision panel): with 7 labelled
# organisations, P@20 cannot exceed 0.35.

# %%
quality = daily_quality(scores, truth, decoys, cfg)
colours = {"accesswatch": "#1f4e89", "volume alarm": "#d98c1f", "raw isolation forest": "#6b8e23"}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharex=True)
for k, style in ((10, "-"), (20, "--")):
    for method, colour in colours.items():
        part = quality.filter((pl.col("method") == method) & (pl.col("k") == k))
        axes[0].plot(part["day"], part["precision"], style, color=colour, label=f"{method} P@{k}")
        axes[1].plot(part["day"], part["recall"], style, color=colour, label=f"{method} R@{k}")
active = quality.filter((pl.col("method") == "accesswatch") & (pl.col("k") == 10))
twin = axes[0].twinx()
twin.fill_between(active["day"], active["active"], step="mid", color="grey", alpha=0.15)
twin.set_ylabel("labelled orgs active", color="grey")
axes[0].set_title("precision at K")
axes[1].set_title("recall at K")
for ax in axes:
    ax.set_ylim(0, 1.05)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
axes[1].legend(fontsize=7, loc="lower right", ncols=2)
fig.tight_layout()
save(fig, "quality_precision_recall.png")
plt.show()
quality.filter(pl.col("k") == 20).group_by("method").agg(
    pl.col("precision").mean().round(3), pl.col("recall").mean().round(3),
    pl.col("decoys").max().alias("max decoys"),
)  # fmt: skip

# %% [markdown]
# ## Rank of each labelled organisation, day by day
#
# Lower is better (rank 1 is the top of the list); the shaded band is the top 20 an
# analyst reads, the dotted line each organisation's onset.

# %%
ranks = label_ranks(scores, truth)
orgs = truth.sort("start_date")
fig, axes = plt.subplots(1, len(colours), figsize=(14, 4.2), sharey=True)
for ax, method in zip(axes, colours):
    for i, row in enumerate(orgs.iter_rows(named=True)):
        mine = ranks.filter((pl.col("method") == method) & (pl.col("org_id") == row["org_id"]))
        line = ax.plot(mine["day"], mine["rank"], label=f"{row['org_id']} {row['scenario']}")[0]
        ax.axvline(row["start_date"], color=line.get_color(), ls=":", lw=0.8)
    ax.axhspan(1, cfg.detect_k, color="#c0392b", alpha=0.08)
    ax.set_yscale("log")
    ax.set_yticks([1, 5, 20, 100, 400], ["1", "5", "20", "100", "400"])
    ax.set_title(method)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
axes[0].invert_yaxis()
axes[0].set_ylabel("rank (log scale)")
axes[-1].legend(fontsize=7, loc="lower left", bbox_to_anchor=(1.0, 0.0))
fig.tight_layout()
save(fig, "quality_ranks.png")
plt.show()
pl.DataFrame(
    [
        {"method": m, "org_id": x.org_id, "scenario": x.scenario, "onset": x.start_date,
         "best rank": x.best_rank, "days to top 20": x.days_to_detect}
        for m, r in results.items()
        for x in r.labels
    ]
).pivot(on="method", index=["org_id", "scenario", "onset"], values="days to top 20")  # fmt: skip

# %% [markdown]
# ## What carries each scenario
#
# For each labelled organisation during its labelled period: the rules that fired and the
# features its stored reasons named, by the share of its days they appeared on. A scenario
# caught by a rule reads as a fact; one carried only by reasons rests on the models.

# %%
drivers = scenario_drivers(settings, truth)
top_drivers = drivers.filter(pl.col("share") >= 0.2)
matrix = top_drivers.pivot(on="driver", index="scenario", values="share").fill_null(0.0)
names = [c for c in matrix.columns if c != "scenario"]
names.sort(key=lambda n: (not n[:3].isupper(), n))  # rules first, then features
fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(names)), 3.8))
image = ax.imshow(matrix.select(names).to_numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
ax.set_yticks(range(matrix.height), matrix["scenario"].to_list(), fontsize=8)
fig.colorbar(image, ax=ax, label="share of labelled days")
ax.set_title("rules and reason features during each scenario")
fig.tight_layout()
save(fig, "quality_drivers.png")
plt.show()
display(
    pl.DataFrame(
        [{"org_id": x.org_id, "scenario": x.scenario, "first top-20 reason": x.top_reason,
          "names the behaviour": x.reason_matches} for x in results["accesswatch"].labels]
    )
)  # fmt: skip
top_drivers
