# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     gpuType: T4
#     provenance: []
#   jupytext:
#     notebook_metadata_filter: accelerator,colab
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
# # 6. Results, and what SimAM attends to
#
# The paper's claim for CIFAR is its Table 2: across eight networks and two data sets, adding
# SimAM matches or beats adding SE, CBAM, ECA or GC, without a single parameter. This chapter shows
# how to check that claim and what the module does inside a trained network:
#
# 1. **Table 2 as data.** The published numbers live in the package (`simam.paper_results`), so
#    every comparison below is computed against them, not retyped.
# 2. **The course's grid** beside Table 2: ResNet-20 with every module, trained with the quick
#    recipe over 5 to 10 seeds and committed under `results/`, every seed drawn; and how
#    `simam.experiments` trains such a grid as ordinary training runs
#    ([chapter 5](05_training_cifar_resnets.ipynb)), records one line per finished run in an
#    append-only results file, and resumes an interrupted grid.
# 3. **The verdict** on the course's grid: intervals, p-values, and the plan that fixed its
#    questions.
# 4. **A $\lambda$ study** in the spirit of the paper's Figure 4, on CIFAR-10 with the quick
#    recipe and two seeds per value, where the paper's is on CIFAR-100 with its own recipe.
# 5. **What SimAM's gain is made of**: the module or its place in the block, and a longer budget,
#    each a study whose plan was committed before its runs.
# 6. **Attention maps**: Grad-CAM of every network's last stage, and SimAM's own 3-D weights.
#
# The comparisons come from the committed runs, in both modes. On a GPU this notebook also trains
# ResNet-20 with every attention module, one seed each and a second seed for the baseline and
# SimAM, and two more values of $\lambda$, with the quick recipe on all of CIFAR-10, in a time that
# section 6.2 estimates for a T4. The paper's recipe, five seeds per cell, is a grid for the
# command line, which the notebook prints, and whose results file it reads wherever it has been
# produced. In quick mode (CI, or no GPU) a CPU cannot train enough to compare modules, so the
# notebook's own grid is two short runs of one network: they show the machinery working and say
# nothing about which module is better.
#
# The symbols follow the course's one notation: see the [notation](notation.md) page.

# %%
# On Colab, install the course's package (Colab's own PyTorch, matplotlib, SymPy and
# SciPy stay as they are); elsewhere `make course` has installed it.
import sys

if "google.colab" in sys.modules:
    import subprocess

    # The repository named in pyproject.toml's [project.urls]
    REPOSITORY = "https://github.com/simam-course/simam"
    package = f"simam @ git+{REPOSITORY}"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", package], check=True)

# %%
import dataclasses
import itertools
import math
import statistics
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

import simam
import simam.config
from simam import experiments
from simam.course import course_cifar10, estimated_gpu_minutes, readme, verdicts
from simam.data import CifarLoader, balanced_subset
from simam.experiments import verdict
from simam.maps import (
    grad_cam,
    load_image,
    plot_attention_maps,
    simam_modules,
    simam_weights,
)
from simam.paper_results import ATTENTIONS, CITATION, PAPER_TABLE2
from simam.runs import load_model
from simam.stats import smallest_permutation_p

QUICK = simam.quick_mode()
# tests only
SMOKE = [
    f"--{key.replace('_', '-')}={value}"
    for key, value in simam.settings.smoke_overrides().items()
]
simam.seed_everything(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"quick mode: {QUICK}")

# %% [markdown]
# ## 6.1 Table 2, as data
#
# The package keeps Table 2 with its citation; the rows are keyed by the course's own model and
# attention names. Here are the CIFAR-10 rows of ResNet-20, which the course trains, and of
# ResNet-56, which the paper-recipe grid of section 6.2 adds:

# %%
print(CITATION)
header = "| model | " + " | ".join(ATTENTIONS) + " |\n|---|" + "---|" * len(ATTENTIONS)
rows = [
    f"| {model} | "
    + " | ".join(
        f"{PAPER_TABLE2['cifar10', model, a][0]:.2f} ± "
        f"{PAPER_TABLE2['cifar10', model, a][1]:.2f}"
        for a in ATTENTIONS
    )
    + " |"
    for model in ("resnet20", "resnet56")
]
display(Markdown("\n".join([header, *rows])))

# %% [markdown]
# How large are the differences the table reports, against the spread between seeds? With $n = 5$
# seeds per cell and sample standard deviations $\sigma_1, \sigma_2$, the standard error of a difference
# of two means is $\sqrt{\sigma_1^2/n + \sigma_2^2/n}$. Dividing each module's gain over the baseline by
# it gives Welch's statistic $t_{\mathrm W}$ (with about 8 degrees of freedom; $|t_{\mathrm W}| > 2.3$ would be
# significant at 5%, before any correction for the many comparisons the table makes, counted at the
# end of the cell's output):

# %%
SEEDS_IN_PAPER = 5
BAR = 2.3


def paper_t(dataset: str, model: str, attention: str) -> tuple[float, float]:
    """Table 2's gain of ``attention`` over no attention, in points, and its rough t
    score."""
    (base_mean, base_std), (mean, std) = (
        PAPER_TABLE2[dataset, model, "none"],
        PAPER_TABLE2[dataset, model, attention],
    )
    return mean - base_mean, (mean - base_mean) / math.sqrt(
        (base_std**2 + std**2) / SEEDS_IN_PAPER
    )


for dataset in ("cifar10", "cifar100"):
    for model in ("resnet20", "resnet56", "resnet110"):
        scores = [
            f"{a} {paper_t(dataset, model, a)[0]:+.2f} "
            f"(t = {paper_t(dataset, model, a)[1]:+.1f})"
            for a in ATTENTIONS[1:]
        ]
        print(f"{dataset:8s} {model:9s}  " + ",  ".join(scores))
comparisons = [key for key in PAPER_TABLE2 if key[2] != "none"]
print(
    f"Table 2 compares a module with no attention {len(comparisons)} times "
    f"({len(comparisons) // 2} per data set); "
    f"gains with t > {BAR}, over all its networks:"
)
for dataset in ("cifar10", "cifar100"):
    clear = [
        (m, a) for d, m, a in comparisons if d == dataset and paper_t(d, m, a)[1] > BAR
    ]
    per_module = ", ".join(
        f"{a} {sum(x == a for _, x in clear)}" for a in ATTENTIONS[1:]
    )
    print(
        f"  {dataset}: {len(clear)} of {len(comparisons) // 2} "
        f"({per_module} of {len(comparisons) // 10} networks each)"
    )

# %% [markdown]
# On CIFAR-10's three ResNets two gains clear that bar: SimAM's 0.40 points on ResNet-20 and
# CBAM's on ResNet-56. On ResNet-56 and ResNet-110 SimAM gains about 0.2 points, under two
# standard errors, and CBAM gains more on both. On CIFAR-100 the gains are mostly larger, and SimAM
# is among the best modules without standing apart: first on ResNet-20, behind SE on ResNet-56,
# behind SE and CBAM on ResNet-110. Over all eight networks (the last lines), SimAM's gain clears
# the bar on more networks than any other module's, on both data sets, while most of the table's
# comparisons do not clear it, and a bar left uncorrected for that many comparisons lets some
# through by chance. A reproduction therefore needs several seeds per cell too, and should be read
# the same way: a difference of a tenth of a point between two modules is noise.
#
# ## 6.2 The course's grid, and how a grid is run
#
# The course's own Table 2 is a grid of whole quick-recipe runs of ResNet-20 on CIFAR-10, trained
# on 2-core CPUs of two models and committed in `results/results.jsonl`
# ([chapter 5](05_training_cifar_resnets.ipynb), section 4); the package ships them and finds them
# as `simam.zoo.DEFAULT_RESULTS`. `summarise` groups a results file's lines by everything but the
# seed and averages the *final* test accuracy (the best accuracy over a run is selected on the test
# set, so it is shown in the run files but never averaged here). The trainer options that differ
# from the recipe are part of a cell's identity, so runs of different budgets are never averaged
# together. Each cell's runs say how many seeds they were asked for, and a cell with fewer is
# marked. The grid's summary beside the paper, and the commands that reproduce it or continue it to
# what it asks (finished runs are skipped):

# %%
COURSE_RESULTS = simam.zoo.DEFAULT_RESULTS  # the course's committed results
course_lines = experiments.read_results(COURSE_RESULTS)
# the studies of other places: section 6.5
course_cells = [
    cell
    for cell in experiments.summarise(course_lines)  # the grid, not other budgets
    if cell.model == "resnet20"
    and cell.recipe == "quick"
    and not cell.overrides
    and cell.place is None
]
# the lambda study: section 6.4
grid_cells = [cell for cell in course_cells if cell.lambda_ in (None, 1e-4)]
if grid_cells:
    display(Markdown(experiments.summary_markdown(grid_cells)))
    print("\n".join(readme.grid_commands(grid_cells, "results/")))
else:
    print(
        "No results in results/results.jsonl yet: "
        "python -m simam.experiments run --models resnet20 "
        "--attentions none,se,cbam,eca,gc,simam --datasets cifar10 --seeds 5 "
        "--recipe quick --out results/"
    )
print(
    "The paper's recipe, on a GPU: "
    "python -m simam.experiments run --models resnet20,resnet56 "
    "--attentions none,se,cbam,eca,gc,simam --datasets cifar10 --seeds 5 "
    "--recipe paper --out results/"
)

# %% [markdown]
# Every seed as a dot, each mean with its 95% interval; on the right each module's difference from
# the plain network with Welch's interval, beside the same difference in the paper's Table 2 (its
# 5 runs per cell, from the printed standard deviations). The quick recipe's accuracies sit several
# points below the paper's, so compare the differences, not the levels.

# %%
if grid_cells:
    figure = experiments.plot_seeds(grid_cells, "resnet20")
    plt.show()

# %% [markdown]
# Before any test, the figure says this much: SimAM's and ECA's means lie above the plain
# network's, SE's and GC's on it, CBAM's below, and the seeds of every module overlap those of the
# plain network. Which of these differences the grid can vouch for is the verdict's question
# (section 6.3).
#
# ### How a grid is run
#
# A grid is a list of run specifications, one per combination of data set, model, attention,
# $\lambda$, recipe and seed. `run_grid` trains each pending one as a child process
# (`python -m simam.train`), several at once, and appends a line to `results.jsonl` when a run
# finishes. Running the same grid again skips finished runs and continues interrupted ones from
# their checkpoints, so a grid that takes days survives a reboot. The same grid from the shell:
#
# ```sh
# python -m simam.experiments run --models resnet20,resnet56 --attentions none,se,cbam,eca,gc,simam \
#     --datasets cifar10 --seeds 5 --recipe paper --out results/
# python -m simam.experiments commands ...   # one shell command per pending run, for a cluster
# python -m simam.experiments summary results/
# ```
#
# This notebook runs a grid of its own. **On a GPU** it is every attention module with seed 0 and,
# to show a spread, a second seed for the baseline and SimAM, each run the quick recipe of
# [chapter 5](05_training_cifar_resnets.ipynb), into `chapter6/` of `simam.settings.runs_root()`
# (`runs/`, or the folder `SIMAM_RUNS` names; finished runs there are reused, not retrained): one
# or two more seeds per module to set beside the committed grid. **In quick mode** a CPU cannot
# train any module far enough to compare it with another, so the grid shows the machinery on one
# network: ResNet-20 + SimAM with seeds 0 and 1, two runs at a time, each 40 steps of 64 images on
# a class-balanced 2,560-image subset of CIFAR-10, evaluated on 1,000 test images, one CPU thread
# in float32 per run, into a temporary folder. It shows the runs as child processes, a line per run
# in the results file, and a second call that finds nothing left to do; not which module is
# better.

# %%
# Every run reads CIFAR-10 from simam.data_root(); fetch it once here if it is not there
# yet (Colab).
course_cifar10(train=False)
GPU_GRID = experiments.plan(
    ["resnet20"], ATTENTIONS, ["cifar10"], seeds=[0], recipes=["quick"]
) + experiments.plan(
    ["resnet20"], ["none", "simam"], ["cifar10"], seeds=[1], recipes=["quick"]
)
if QUICK:
    grid = experiments.plan(
        ["resnet20"], ["simam"], ["cifar10"], seeds=[0, 1], recipes=["quick"]
    )
    OUT = Path(tempfile.mkdtemp(prefix="simam-grid-"))
    TRAINER_OPTIONS = [
        "--iterations",
        "40",
        "--batch-size",
        "64",
        "--warmup",
        "8",
        "--subset",
        "2560",
        "--test-subset",
        "1000",
        "--eval-every",
        "40",
        "--checkpoint-every",
        "40",
        "--no-amp",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    WORKERS = 2
else:
    grid = GPU_GRID
    OUT = simam.settings.runs_root() / "chapter6"
    TRAINER_OPTIONS = SMOKE
    WORKERS = None  # one run per GPU
for spec in grid:
    print(spec.run_id)

# %% [markdown]
# The time the GPU mode takes on a T4, estimated as in [chapter 5](05_training_cifar_resnets.ipynb): the training FLOPs of one
# image counted by `FlopCounterMode`, at an assumed 2 TFLOP/s achieved (3% of a T4's float16 peak),
# for its eight runs and the two of the $\lambda$ study (section 6.4), each with its evaluations.
# Each run also compiles its network on its first steps, assumed to take from about 30 s (when
# the kernels are already cached) to 3 minutes, so the estimate prints a range.

# %%
gpu_runs = len(GPU_GRID) + 2
quick_simam = dataclasses.replace(simam.config.QUICK, attention="simam")
low, high = estimated_gpu_minutes(quick_simam, gpu_runs)
print(
    f"GPU mode: {gpu_runs} runs of the quick recipe, "
    f"about {low:.0f} to {high:.0f} minutes on a T4, compilation included"
)

# %% tags=["nbval-ignore-output"]
# Progress lines arrive in the order runs finish, which varies; the checks below do not.
outcomes = experiments.run_grid(grid, OUT, workers=WORKERS, extra_args=TRAINER_OPTIONS)

# %%
failed = [outcome for outcome in outcomes if outcome.status != "finished"]
assert not failed, failed
results = experiments.read_results(OUT)
finished = {line["run_id"] for line in results}
assert {spec.run_id for spec in grid} <= finished
print(f"{len(finished)} runs in {experiments.results_path(OUT).name}")
left = experiments.pending(grid, OUT, TRAINER_OPTIONS)
print(f"the same grid again: {len(left)} of its {len(grid)} runs left to train")
assert not left

# %% [markdown]
# Each line of the results file is self-contained: the grid cell, the full training configuration,
# the final and best test accuracy, wall time, library versions and the device. One of them,
# without the configuration and the versions:

# %% tags=["nbval-ignore-output"]
line = next(line for line in results if line["run_id"].endswith("simam-quick-seed0"))
for key, value in line.items():
    if key not in (
        "config",
        "versions",
        "wall_seconds",
        "train_seconds",
        "train_images_per_second",
        "finished_at",
    ):
        print(f"{key}: {value}")

# %% [markdown]
# `summarise` groups these lines as it grouped the committed ones, with the budget of the quick
# mode's runs in the recipe's name. On a GPU the notebook's cells are whole quick-recipe runs, and
# their summary and figure set them beside Table 2; with one or two seeds a cell, the committed
# grid's verdict, next, is still the one to read. In quick mode the summary only counts the
# cell's seeds: the accuracy of a 40-step run is not compared with anything.

# %% tags=["nbval-ignore-output"]
cells = experiments.summarise(results)
if QUICK:
    for cell in cells:
        print(
            f"{cell.model} + {cell.attention}, {cell.recipe_label}: "
            f"{cell.n} of {cell.seeds_asked} seeds asked"
        )
else:
    display(Markdown(experiments.summary_markdown(cells)))
    figure = experiments.plot_summary(cells)
    plt.show()
assert sum(cell.n for cell in cells) == len(grid)  # every run in one cell
if not SMOKE:  # the runs learned: chance is 10%
    assert sum(cell.mean * cell.n for cell in cells) / len(grid) > 15

# %% [markdown]
# ## 6.3 The verdict on the course's grid
#
# Is SimAM's gain over the plain network real at this budget, and does SimAM beat the other
# modules? A verdict is only as good as the moment its questions were fixed, so every study of the
# course has a **plan**, a small file under `results/plans/` that names its question, its cells and
# seeds, its primary metric and its comparisons, each of one kind:
#
# * **primary**: the comparisons the study is for, decided before any result. They are corrected
#   together by **Holm's method**: the smallest p-value is multiplied by the number of primary
#   comparisons, the next smallest by one fewer, and so on; each adjusted value is raised to at
#   least the one before it and capped at 1. If the design was fixed in advance, the chance of
#   any false "established" among them stays at most 5%;
# * **secondary**: planned too, reported beside them, not corrected and not part of the verdict;
# * **exploratory**: anything decided after looking at results, such as SimAM against "the best
#   other module", which the data chose. It suggests the next study; it decides nothing.
#
# Each comparison is a difference (or any signed sum) of cell means, in points, with **Welch's 95%
# interval** (the standard error $\sqrt{\sum_i \sigma_i^2/n_i}$, over the cells $i$ of the
# comparison with their $n_i$ seeds and sample standard deviations $\sigma_i$, times Student's
# quantile at the Welch–Satterthwaite degrees of freedom, so unequal spreads and seed counts are
# allowed) and two p-values: Welch's test, and an exact **permutation test**, which counts, over
# every way of splitting the pooled seeds into two groups of the same sizes, how often the
# difference is as large as the one observed. It needs no normality; it tests that both groups'
# accuracies come from one distribution, so with unequal spreads and seed counts it can be too
# eager, which is why Welch's test must agree. A difference is *established* when every p-value
# that applies (both for two cells; Welch's alone for a contrast of four cells, which has no
# permutation test here) is below 0.05, Holm-adjusted for a primary comparison.
#
# The grid's plan was written **after** its runs, and says so. Its cells, seeds and metric were set
# before the first result; the comparisons and Holm's correction were fixed after 25 runs were
# in; none, SimAM and ECA were extended from 5 to 10 seeds after an interim look at 5.
# Its verdicts are therefore *nominal*: the 5% error rate assumes a design fixed in advance, and
# this one was not. The interim look, the closest the grid comes to its original design, is
# printed too, and it established nothing. The grid's runs come from two CPU models in unequal
# shares, so a third p-value, printed beside the verdict and unadjusted, exchanges runs only within
# a CPU model: it shows whether a difference survives when the processors cannot pass for the
# modules. On the primary metric the exploratory SimAM − ECA row's interval contains zero: at this
# budget the course cannot tell SimAM from ECA.

# %%
GRID_PLAN = experiments.read_study(COURSE_RESULTS / "plans" / "grid.toml")
grid_verdict = experiments.judge_study(GRID_PLAN, course_lines)
display(Markdown(verdicts.comparison_table(grid_verdict.rows)))
display(Markdown(verdicts.verdict_text(grid_verdict)))
display(Markdown(verdicts.cpu_table(grid_verdict)))

# %% [markdown]
# How many seeds would settle a gain of the paper's size? [Chapter 5](05_training_cifar_resnets.ipynb) derived the normal
# approximation for the runs per network that a two-sided 5% test needs to find 0.4 points with
# 80% power; applied to the spread this grid measures, by the same function as in [chapter 5](05_training_cifar_resnets.ipynb). A
# verdict corrected by Holm over five comparisons asks more: its smallest p-value must pass 1%.

# %%
needed = experiments.grid_seeds_needed(grid_cells, "resnet20", effect=0.4)
if needed is None:
    print("needs two seeds without attention and two with SimAM")
else:
    have = {cell.attention: cell for cell in grid_cells}
    print(
        f"spread over seeds: {have['none'].std:.2f} points without attention, "
        f"{have['simam'].std:.2f} with SimAM"
    )
    strict = experiments.grid_seeds_needed(
        grid_cells, "resnet20", effect=0.4, alpha=0.05 / 5
    )
    print(
        f"seeds per network to find 0.4 points: {needed} at the 5% level, "
        f"{strict} at 1% (Holm's first step over five comparisons); "
        f"the committed grid has {have['none'].n} without attention and "
        f"{have['simam'].n} with SimAM"
    )

# %% [markdown]
# The course's results page and the README's headline are generated from the same committed
# results file, never typed: one table per data set and recipe, each stating the recipe, the
# hardware and the number of seeds behind it.
#
# ## 6.4 The $\lambda$ study
#
# $\lambda$ is SimAM's only setting: it is added to every channel's variance, so it decides how much
# a neuron must stand out before its weight rises above $\operatorname{sigmoid}(1/2)$. [Chapter 1](01_energy_function.ipynb) showed that its
# effect is relative to the variance of the activations. In every network of the course SimAM sees
# the $3 \times 3$ convolution's output *before* that convolution's batch norm (the reference
# code's placement), so $\lambda$ is compared with the variance of raw convolution outputs. Their
# scale is free: the batch norm that follows undoes it, and weight decay pulls the weights down.
# So whether $10^{-4}$ or $10^{-1}$ is small is a property of the trained network; section 6.7
# measures it. The paper's Figure 4 trains
# ResNet-20 on CIFAR-100 with $\lambda$ from $10^{-1}$ to $10^{-6}$ and finds every value within
# about 0.3 points, all above the baseline. `plan_lambda_ablation` is that grid
# (`python -m simam.experiments run --lambda-ablation --seeds 5 --recipe paper --out results/`).
#
# The course's own study of $\lambda$ uses whole quick-recipe runs on CIFAR-10 (the offline data
# of the course has no CIFAR-100), two seeds per value (the grid's runs give $10^{-4}$ and the
# baseline). How many of its runs are in the results file, the command that runs or continues it,
# and what it found: every seed against $\lambda$, with the plain network's mean and its 95%
# interval as a band.
#
# Two seeds give a poor estimate of a spread: a 95% interval from two seeds alone uses Student's
# quantile with one degree of freedom, 12.7, and its width is mostly luck. The seeds of every
# $\lambda$ scatter alike, so the table pools the spread over all six values (each value's sample
# variance weighted by its number of seeds less one) and gives every mean of two seeds the same
# interval. Before comparing two values of $\lambda$, ask the omnibus question: does $\lambda$
# change the accuracy at all? A one-way ANOVA and its rank version, the Kruskal–Wallis test,
# answer it across all six values at once (a test chosen after the results were in, so read it as
# exploratory).

# %%
finished, planned = verdict.lambda_study_runs(course_lines, "cifar10", "quick")
print(
    f"{finished} of the study's {planned} runs off the grid's lambda are in "
    f"{experiments.results_path(COURSE_RESULTS).name}. To run or continue it:"
)
print(verdict.lambda_study_command("cifar10", "quick"))
if verdict.lambda_studies(course_cells):
    display(Markdown(verdicts.lambda_points(course_cells, "resnet20")))
    display(Markdown(verdicts.lambda_omnibus(course_cells, "resnet20")))
    figure = experiments.plot_lambda_ablation(course_cells)
    plt.show()

# %% [markdown]
# On a GPU this notebook adds two values of $\lambda$ of its own to its grid of section 6.2, with
# the same budget, one seed each, beside that grid's seed-0 runs of SimAM at $10^{-4}$ and of the
# plain network: one seed per value to set beside the study above, not a study of its own. In
# quick mode it trains none: 40-step runs could no more tell two values of $\lambda$ apart than
# two modules.

# %% tags=["nbval-ignore-output"]
if QUICK:
    print("quick mode: no lambda runs of this notebook's own")
else:
    ablation = experiments.plan_lambda_ablation(
        seeds=[0], recipe="quick", dataset="cifar10", lambdas=(1e-1, 1e-4, 1e-6)
    )
    # two runs; the paper's study is left to the command line (35 runs of the paper's
    # recipe)
    experiments.run_grid(ablation, OUT, workers=WORKERS, extra_args=TRAINER_OPTIONS)
    ids = {spec.run_id for spec in ablation}
    study = [line for line in experiments.read_results(OUT) if line["run_id"] in ids]
    assert len(study) == len(ablation)
    assert all(0 < line["final_test_accuracy"] < 1 for line in study)
    figure = experiments.plot_lambda_ablation(study)
    plt.show()
    for cell in experiments.summarise(study):
        print(
            f"{cell.attention:6s} "
            f"lambda {cell.lambda_ if cell.lambda_ is not None else '-':>6}  "
            f"{cell.mean:.2f}%  (n = {cell.n})"
        )

# %% [markdown]
# ## 6.5 What SimAM's gain is made of
#
# Table 2, the paper's and the course's, changes two things at once: the module, and where it sits.
# SimAM sits right after the block's last $3 \times 3$ convolution, *before* the batch norm that
# follows it; SE, CBAM, ECA and GC sit *after* that batch norm, at the end of the residual branch.
# That batch norm matters. Before it, SimAM's weights $\omega_k \in [\operatorname{sigmoid}(1/2), 1)$
# scale each neuron, and then the batch norm standardises every channel again: whatever SimAM did to
# a channel's overall size is undone, and only *which* neurons it favoured survives. After it, the
# weights reach the addition with the shortcut unchanged, so SimAM also shrinks the branch against
# the shortcut. One block of the committed ResNet-20 + SimAM shows it: the spread of each channel of
# the residual branch, just before the addition, without SimAM, with SimAM at its place, and with the
# same SimAM moved after the batch norm (the same trained network; SimAM, which has no parameters,
# only moves). The batch norm standardises with the batch's statistics, as in training, so the
# ratio before it is 1 by construction: the figure shows what the construction implies, and how
# far the other place departs from it.


# %% tags=["nbval-ignore-output"]
def branch_spread(block, x):
    """Per channel, the spread of the residual branch of ``block`` (a BasicBlock with
    SimAM after conv2) just before the addition: without SimAM, with it before bn2, with
    it after bn2. bn2 standardises with the batch's statistics, as in training."""

    def bn2(t):
        return F.batch_norm(
            t, None, None, block.bn2.weight, block.bn2.bias, training=True
        )

    y = block.conv2(F.relu(block.bn1(block.conv1(x))))
    branches = {
        "no SimAM": bn2(y),
        "SimAM before the batch norm": bn2(block.attention(y)),
        "SimAM after the batch norm": block.attention(bn2(y)),
    }
    return {name: out.std(dim=(0, 2, 3)) for name, out in branches.items()}


trained = simam.pretrained("resnet20", "simam")
block = trained.stages[1][1]  # a block of the middle stage, 32 channels at 16 x 16
batch = next(iter(CifarLoader(*course_cifar10(train=False)[:2], batch_size=256)))[0]
seen = {}
hook = block.register_forward_hook(
    lambda module, inputs, output: seen.setdefault("x", inputs[0])
)
with torch.no_grad():
    trained(batch)
    spread = branch_spread(block, seen["x"])
hook.remove()
order = spread["no SimAM"].argsort()
figure, axis = plt.subplots(figsize=(7, 3.2), layout="constrained")
for (name, values), marker in zip(spread.items(), "o^s"):
    axis.plot(values[order], marker, label=name, markersize=4, linestyle="none")
axis.set(
    xlabel="channel (by its spread without SimAM)",
    ylabel="spread of the branch",
    title="one block of the trained ResNet-20 + SimAM, 256 test images",
)
axis.legend(fontsize="small")
plt.show()
before = (spread["SimAM before the batch norm"] / spread["no SimAM"]).median().item()
after = (spread["SimAM after the batch norm"] / spread["no SimAM"]).median().item()
print(
    f"median spread ratio to no SimAM: before the batch norm {before:.3f}, "
    f"after it {after:.2f}"
)
# the batch norm undoes SimAM's scale; after it, SimAM shrinks
assert abs(before - 1) < 1e-3 < 1 - after

# %% [markdown]
# Two studies, each with its plan committed before its first run, ask what the gain is made of:
#
# * **the placement study**: SimAM moved after the batch norm, and ECA moved before it, 10 seeds
#   each, beside the grid's SimAM before and ECA after. Its primary comparisons: SimAM before minus
#   after, ECA before minus after, and the **interaction**, (SimAM before − after) − (ECA before −
#   after): does the place help one module more than the other?
# * **the budget study**: no attention and SimAM with the quick recipe at four times its iterations
#   (`quick-4x`, the same schedule's shape), 5 seeds each: does SimAM's gain over no attention
#   survive four times more training? (Where 4x lands against Table 2 is exploratory: its plan
#   does not ask it.)
#
# Any network of the course takes the place as a setting (`create_model(..., place=...)`,
# `--place` for the trainer, `insert_attention(..., position=...)` for torchvision's and timm's
# ResNets); a run off the paper's place names it in its run id.

# %%
for name in ("placement", "budget"):
    study = experiments.read_study(COURSE_RESULTS / "plans" / f"{name}.toml")
    study_verdict = experiments.judge_study(study, course_lines)
    display(
        Markdown(f"### The {name} study\n\n" + verdicts.study_section(study_verdict))
    )
    if study_verdict.rows:
        figure = experiments.plot_study(study_verdict)
        plt.show()

# %% [markdown]
# What these studies can and cannot show: they are ResNet-20 on CIFAR-10 at two budgets well below
# the paper's 164 epochs, one network and one data set, so a place that helps here may not help a
# ResNet-56 or on ImageNet. Both studies reuse cells of the grid, whose seeds were extended after
# a look, and ECA was the best other module by its observed mean: its grid mean may sit high by
# chance (the winner's curse), which would pull "ECA: before − after" down and the interaction up.
# The runs trained for these studies may come from another CPU model than most of the grid's (the
# tables of CPU models say which), which the unadjusted within-CPU p-value shows only in part. And
# while a study's planned runs are not all in, its comparisons are printed as an interim look,
# with how many of its runs are in, not as its verdict.
#
# ## 6.6 What the networks look at: Grad-CAM
#
# The paper shows Grad-CAM maps (Selvaraju et al., 2017) but not how they were drawn. The course
# fixes one method for every network, implemented in `simam.maps`:
#
# * **layer**: the output of the last stage, i.e. of the last residual block, $8 \times 8$ maps,
#   which every attention module has already acted on;
# * **class**: each image's predicted class, scored by its logit;
# * **map**: $\mathrm{ReLU}\big(\sum_k \eta_k F^k\big)$, with $F^k$ channel $k$ of that layer's
#   output and $\eta_k$ the spatial mean of the score's gradient with respect to it, upsampled bilinearly to $32 \times 32$ and divided
#   by its maximum, so that 0 means no positive evidence for the class.
#
# The networks are the course's trained ones: for every attention module, one of the grid's
# quick-recipe runs (the lowest seed whose weights are committed), stored under `results/weights/`
# with their SHA-256 and loaded by `simam.pretrained(model, attention)` (in quick mode the
# networks of section 6.2 are demonstrations, trained for seconds). A module without committed
# weights is named and left out; in GPU mode the notebook's own quick-recipe runs of section 6.2
# stand in for it.

# %%
test_images, test_labels, CLASSES = course_cifar10(train=False)
SHOWN = ["airplane", "cat", "horse", "ship", "truck"]
picks = torch.stack(
    [(test_labels == CLASSES.index(name)).nonzero()[0, 0] for name in SHOWN]
)
images, labels = next(
    iter(CifarLoader(test_images[picks], test_labels[picks], batch_size=len(picks)))
)

models = {}
for attention in ATTENTIONS:
    try:
        models[attention] = simam.pretrained("resnet20", attention, device=device)
        seed = min(simam.zoo.committed_seeds("resnet20", attention))
        print(
            f"ResNet-20 + {attention:<5}: committed weights, quick recipe, seed {seed}"
        )
    except FileNotFoundError:
        own_run = (
            OUT
            / experiments.RUNS
            / experiments.RunSpec("cifar10", "resnet20", attention, "quick", 0).run_id
        )
        if not QUICK:
            models[attention] = load_model(own_run, device=device)
            print(
                f"ResNet-20 + {attention:<5}: "
                "this notebook's quick-recipe run of section 6.2"
            )
        else:
            print(f"ResNet-20 + {attention:<5}: no committed weights yet, left out")

# %%
has_simam = "simam" in models
stage_ends = (
    [name for name in simam_modules(models["simam"]) if name.endswith(".2.attention")]
    if has_simam
    else []
)
if models:
    figure = plot_attention_maps(
        images, models, labels, CLASSES, simam_blocks=stage_ends
    )
    plt.show()

# %% [markdown]
# **Your own picture.** The same figure for any picture: point `PICTURE` at an image file (PNG,
# JPEG, ...) or give it pixels, an array of shape $(H, W, 3)$ or $(3, H, W)$.
# `simam.maps.load_image` crops it to its centre square, resizes it to $32 \times 32$ and normalises
# it as the networks were trained. By default it is a CIFAR-10 test image the figure above leaves out.

# %%
# or "my_photo.jpg", or an array
PICTURE = test_images[(test_labels == CLASSES.index("dog")).nonzero()[0, 0]]
if models:
    figure = plot_attention_maps(
        load_image(PICTURE), models, class_names=CLASSES, simam_blocks=stage_ends
    )
    plt.show()

# %% [markdown]
# Five images show what maps look like; how concentrated they are needs many. For each network and
# each of 1,000 test images (100 per class), the share of the map's mass that lies in the central
# $16 \times 16$ pixels, a quarter of the image (a uniform map gives 0.25). CIFAR-10's objects are
# mostly centred, so a network that has learned where they are puts more than a quarter of its
# evidence there. Beside it, the network's accuracy on the same images.

# %% tags=["nbval-ignore-output"]
sample = balanced_subset(test_labels, 1_000, seed=0)
loader = CifarLoader(
    test_images[sample], test_labels[sample], batch_size=250, device=device
)
centre_shares = {}
for name, model in models.items():
    shares, correct = [], 0
    for batch, targets in loader:
        cam = grad_cam(model, batch)
        shares.append(
            cam.maps[:, 8:24, 8:24].sum(dim=(1, 2))
            / cam.maps.sum(dim=(1, 2)).clamp_min(1e-12)
        )
        correct += (cam.classes == targets).sum().item()
    share = torch.cat(shares)
    centre_shares[name] = share.mean().item()
    print(
        f"ResNet-20 + {name:<5}: centre share {share.mean():.3f} "
        f"(quartiles {share.quantile(0.25):.2f}-{share.quantile(0.75):.2f}), "
        f"accuracy on these images {correct / len(sample):.1%}"
    )
    assert share.isfinite().all() and 0 <= share.min() and share.max() <= 1 + 1e-6
if centre_shares:
    ranked = sorted(centre_shares, key=centre_shares.get, reverse=True)
    print(
        "most concentrated on the centre: "
        f"{ranked[0]} ({centre_shares[ranked[0]]:.3f}); "
        f"least: {ranked[-1]} ({centre_shares[ranked[-1]]:.3f}); a uniform map: 0.250"
    )

# %% [markdown]
# ## 6.7 SimAM's own weights
#
# Grad-CAM explains a decision; SimAM's weights are simply there, one per neuron, in every block.
# `simam_weights` captures each SimAM module's input in one forward pass and recomputes the weights
# $\operatorname{sigmoid}(1/E)$ with the package's energy function. They lie in $[\operatorname{sigmoid}(1/2), 1)$, about
# $[0.62, 1)$; a weight near 1 marks a neuron far from its channel's mean. How they are spread, per
# stage, in the trained ResNet-20 + SimAM, over 200 of the test images above:

# %% tags=["nbval-ignore-output"]
if has_simam:
    batch = next(
        iter(
            CifarLoader(
                test_images[sample[:200]],
                test_labels[sample[:200]],
                batch_size=200,
                device=device,
            )
        )
    )[0]
    weights = simam_weights(models["simam"], batch)
    figure, axis = plt.subplots(figsize=(7, 3.5), layout="constrained")
    for name in stage_ends:
        w = weights[name].flatten().float().cpu()
        axis.hist(
            w.numpy(),
            bins=60,
            range=(0.6, 1.0),
            histtype="step",
            density=True,
            label=name,
        )
        print(
            f"{name}: {tuple(weights[name].shape[1:])}, mean {w.mean():.3f}, "
            f"above 0.9: {100 * (w > 0.9).float().mean():.1f}%, minimum {w.min():.4f}"
        )
    axis.set(
        xlabel="SimAM weight sigmoid(1/E)",
        ylabel="density",
        title="SimAM weights, last block of each stage",
    )
    axis.legend(fontsize="small")
    plt.show()
    assert all(
        weights[name].min() >= 1 / (1 + math.exp(-0.5)) - 1e-6 for name in weights
    )
    # most neurons sit near the floor
    assert all(weights[name].float().mean() < 0.75 for name in stage_ends)
else:
    print("no trained ResNet-20 + SimAM yet")

# %% [markdown]
# What $\lambda = 10^{-4}$ is compared with: the variance over positions of each channel of each
# SimAM module's input, the raw output of its block's second convolution, on the same 200 images.

# %% tags=["nbval-ignore-output"]
if has_simam:
    variances = {}

    def keep_variance(module, inputs, output, name):
        variances[name] = (
            inputs[0].float().var(dim=(2, 3), correction=1).flatten().cpu()
        )

    hooks = [
        module.register_forward_hook(
            lambda m, i, o, name=name: keep_variance(m, i, o, name)
        )
        for name, module in models["simam"].named_modules()
        if isinstance(module, simam.SimAM)
    ]
    with torch.no_grad():
        models["simam"](batch)
    for hook in hooks:
        hook.remove()
    lambda_ = next(
        m for m in models["simam"].modules() if isinstance(m, simam.SimAM)
    ).lambda_
    every = torch.cat(list(variances.values()))
    for name in stage_ends:
        v = variances[name]
        print(
            f"{name}: channel variances, median {v.median():.3g}, "
            f"5% quantile {v.quantile(0.05):.3g}"
        )
    print(
        f"all {len(variances)} SimAM modules: lambda = {lambda_:g} "
        f"is below the variance of {100 * (every > lambda_).float().mean():.1f}% "
        "of channel maps and below a tenth of it for "
        f"{100 * (every > 10 * lambda_).float().mean():.1f}%"
    )
    assert every.isfinite().all() and (every >= 0).all()
else:
    print("no trained ResNet-20 + SimAM yet")

# %% [markdown]
# Most neurons sit near the floor $\operatorname{sigmoid}(1/2) \approx 0.62$: they are close to their channel's
# mean, so the module scales them by a constant that the next batch normalisation undoes. The few
# that stand out get weights up to 1. SimAM therefore acts as a soft, per-channel contrast
# enhancement, the neuroscience-inspired "spatial suppression" the paper builds it on: what differs
# from its surroundings is kept, what does not is damped by up to 38%.
#
# ## 6.8 What this chapter can and cannot show
#
# * The grid runner, the results file and the summary are the same in quick mode and on a GPU;
#   the budget and the size of the notebook's own grid differ. The comparisons come from the
#   committed runs in both modes. The results page and the README's headline come from the
#   results file by command, so a table can always be traced to the runs behind it.
# * A reproduction of Table 2 needs the paper's recipe (64,000 iterations per run) and five seeds
#   per cell: 60 runs for the two ResNets of CIFAR-10 alone. Most of the table's gains over no
#   attention do not clear the $|t_{\mathrm W}| > 2.3$ bar of section 6.1.
# * Attention maps are explanations of one trained network, drawn by one method among many; the
#   maps of section 6.6 are those of the committed networks, not of the barely trained
#   quick-mode runs of section 6.2.

# %% [markdown]
# ## What this chapter established
#
# - Table 2 is data in the package, and most of its gains over no attention do not clear the bar
#   $|t_{\mathrm W}| > 2.3$ of section 6.1.
# - The course's grid is judged by one function of the package, whose verdict (section 6.3) says with
#   intervals and corrected p-values whether SimAM's gain is established at this budget.
# - Grad-CAM and SimAM's own weights show what the committed networks attend to, for the test images
#   here or any picture the reader gives.
# - The comparisons come from committed runs in both modes; in quick mode the notebook's own runs
#   show the grid machinery working (a line per run, a second call with nothing left to train),
#   not which module is better. [The summary](00_summary.ipynb) collects the course on one page.

# %% [markdown]
# ## Exercises
#
# Each solution is a folded cell right after its exercise that checks its answer; open it after
# trying. Exercises 4 and 5 rebuild two of the verdict's statistics by hand, from the committed
# accuracies, and change what goes into them.
#
# **Exercise 1 (Table 2's SimAM gains).** From `simam.paper_results`, compute SimAM's gain over no
# attention for every network of Table 2 on CIFAR-10, with its standard error from the printed
# standard deviations ($n = 5$ each). For how many networks is the gain more than two standard
# errors?

# %% jupyter={"source_hidden": true} tags=["solution"]
# SE of a difference of two means of 5 runs: sqrt((s1^2 + s2^2) / 5).
beyond = []
for (dataset, model, attention), (mean, sd) in PAPER_TABLE2.items():
    if dataset == "cifar10" and attention == "simam":
        base_mean, base_sd = PAPER_TABLE2[(dataset, model, "none")]
        se = math.sqrt((sd**2 + base_sd**2) / 5)
        beyond += [model] if mean - base_mean > 2 * se else []
        print(f"{model:>12}: gain {mean - base_mean:+.2f} +- {se:.2f}")
# section 6.1's t scores, computed there by another route
assert len(beyond) == sum(
    paper_t(d, m, a)[1] > 2
    for d, m, a in comparisons
    if d == "cifar10" and a == "simam"
)
print(f"more than two standard errors: {len(beyond)} networks ({', '.join(beyond)})")

# %% [markdown]
# **Exercise 2 (the centre share).** The centre share of a Grad-CAM map (section 6.6) is the map's
# mass in the central $16 \times 16$ pixels over its total. Show that a uniform map gives 0.25, and
# find the largest share a map can have.

# %% jupyter={"source_hidden": true} tags=["solution"]
# A uniform map spreads its mass evenly: 256 of 1024 pixels; a map inside the centre
# has share 1.
uniform, centred = torch.ones(32, 32), torch.zeros(32, 32)
centred[8:24, 8:24] = 1
shares = [float(m[8:24, 8:24].sum() / m.sum()) for m in (uniform, centred)]
assert shares == [0.25, 1.0]
print(f"uniform map {shares[0]}, largest possible {shares[1]}")

# %% [markdown]
# **Exercise 3 (SimAM's floor and ceiling).** SimAM's smallest weight is
# $\operatorname{sigmoid}(1/2)$ (section 6.7). Build a feature map whose channels are constant and
# check with `simam.SimAM` that every weight is that value; then build a channel with one outlying
# neuron and show that it gives that neuron a weight close to 1 when $\lambda$ is small.

# %% jupyter={"source_hidden": true} tags=["solution"]
# Constant channels: every deviation is 0 and the output is x * sigmoid(1/2).
constant = torch.full((1, 4, 5, 5), 3.0)
assert torch.allclose(
    simam.SimAM()(constant) / constant,
    torch.full_like(constant, 1 / (1 + math.exp(-0.5))),
)
spike = torch.zeros(1, 1, 9, 9)
spike[0, 0, 4, 4] = 1.0
spike_weight = (simam.SimAM(lambda_=1e-6)(spike) / spike.clamp_min(1e-30))[
    0, 0, 4, 4
].item()
assert spike_weight > 0.999
print(
    f"constant channels: every weight {1 / (1 + math.exp(-0.5)):.4f}; "
    f"the outlier's weight {spike_weight:.4f}"
)

# %% [markdown]
# **Exercise 4 (Welch's interval by hand, and fewer seeds).** Take the committed final accuracies
# of ResNet-20 without attention and with SimAM, seed by seed (the `accuracies` of the two cells
# of `grid_cells`, section 6.2). Compute SimAM − none with Welch's 95% interval yourself: the
# standard error $\sqrt{\sigma_1^2/n_1 + \sigma_2^2/n_2}$, the Welch–Satterthwaite degrees of
# freedom, and Student's quantile (`scipy.stats.t.ppf`). Match the verdict's row of section 6.3.
# Then drop seeds: keep seeds 0 to 4 of each network, as the plan's interim look did. Predict how
# much wider the interval gets if the spreads stayed the same (two things change: the standard
# error and the quantile), then compute it and match the interim row.


# %% jupyter={"source_hidden": true} tags=["solution"]
# Half the seeds: the standard error grows by sqrt(2), and the degrees of freedom fall
# from about 18 to about 8, which raises Student's quantile. The first five seeds'
# spreads are not those of all ten, which moves the answer further.
def welch_interval(mean_a, sd_a, n_a, mean_b, sd_b, n_b):
    """mean_a - mean_b, Welch's 95% interval and its degrees of freedom."""
    share_a, share_b = sd_a**2 / n_a, sd_b**2 / n_b
    df = (share_a + share_b) ** 2 / (share_a**2 / (n_a - 1) + share_b**2 / (n_b - 1))
    half = scipy.stats.t.ppf(0.975, df) * math.sqrt(share_a + share_b)
    return mean_a - mean_b, mean_a - mean_b - half, mean_a - mean_b + half, df


def summary(values):
    return statistics.mean(values), statistics.stdev(values), len(values)


by_module = {cell.attention: cell.accuracies for cell in grid_cells}
plain, with_simam = by_module["none"], by_module["simam"]
(mean_s, sd_s, _), (mean_p, sd_p, _) = summary(with_simam), summary(plain)
found = {
    "all seeds": welch_interval(*summary(with_simam), *summary(plain)),
    "interim look": welch_interval(*summary(with_simam[:5]), *summary(plain[:5])),
    "5 seeds, the 10 seeds' spreads": welch_interval(mean_s, sd_s, 5, mean_p, sd_p, 5),
}
for name, rows in (
    ("all seeds", grid_verdict.rows),
    ("interim look", grid_verdict.interim),
):
    row = next(
        r
        for r in rows
        if r.planned.name == "SimAM − none" and r.planned.metric == "final"
    )
    assert all(
        math.isclose(ours, theirs)
        for ours, theirs in zip(found[name], (row.estimate, row.low, row.high, row.df))
    )
width = {name: high - low for name, (_, low, high, _) in found.items()}
for name, (difference, low, high, df) in found.items():
    print(
        f"{name}: {difference:+.2f} points, 95% CI [{low:+.2f}, {high:+.2f}], "
        f"{df:.1f} degrees of freedom, {width[name] / width['all seeds']:.2f}x as wide"
    )
assert width["5 seeds, the 10 seeds' spreads"] > math.sqrt(2) * width["all seeds"]

# %% [markdown]
# **Exercise 5 (a permutation test by hand).** The verdict's second p-value for SimAM − none is an
# exact permutation test. Pool the 20 accuracies of exercise 4, go through every way of choosing
# which 10 of them are called "SimAM" (`itertools.combinations`), compute the difference of means
# of each split, and count the share of splits whose difference is at least as large in size as
# the observed one. Match the package's p-value. What is the smallest p-value this test can give
# with 10 seeds per network, and with 5? Compare the second with the 1% that the first step of
# Holm's correction over five comparisons asks for.

# %% jupyter={"source_hidden": true} tags=["solution"]
# Any split and its mirror give the same size of difference, so the observed split and
# its mirror are always counted: the smallest p-value is 2 / C(2n, n). With 5 seeds that
# is 2 / 252, under 1% but not by much: every other split must fall short.
pooled = np.array(with_simam + plain)
splits = np.array(list(itertools.combinations(range(len(pooled)), len(with_simam))))
chosen = pooled[splits].sum(axis=1)
differences = chosen / len(with_simam) - (pooled.sum() - chosen) / len(plain)
observed = statistics.mean(with_simam) - statistics.mean(plain)
# rounded, as the package rounds, so that equal differences count as ties
as_large = np.round(np.abs(differences), 9) >= round(abs(observed), 9)
p_by_hand = as_large.mean()
row = next(
    r
    for r in grid_verdict.rows
    if r.planned.name == "SimAM − none" and r.planned.metric == "final"
)
assert math.isclose(p_by_hand, row.p_permutation)
smallest = {n: 2 / math.comb(2 * n, n) for n in (10, 5)}
assert all(smallest[n] == smallest_permutation_p(n, n) for n in smallest)
print(
    f"{len(splits):,} splits, {as_large.sum()} at least as far apart as the observed "
    f"{observed:+.2f} points: p = {p_by_hand:.6f} "
    f"(the package: {row.p_permutation:.6f})"
)
print(
    f"smallest possible p: {smallest[10]:.2e} with 10 seeds each, "
    f"{smallest[5]:.4f} with 5"
)
