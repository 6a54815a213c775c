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
# # 5. Training CIFAR ResNets
#
# Chapters 1 to 4 built SimAM and its rivals and measured what they cost. This chapter trains
# with them. It takes ResNet-20, the smallest network of the paper's Table 2, and trains it on
# CIFAR-10 plain (`attention="none"`) and with SimAM in every residual block, right after the
# block's last convolution. Everything goes through one function of the package,
# `simam.train.train(config, out)`, and one configuration object, `simam.config.Config`:
#
# 1. **The recipes.** The CIFAR recipe of the paper's §4.1 as a `Config`, its learning-rate
#    schedule, and the quick recipe that the course uses when there is no GPU, with the reason and
#    the source of each choice.
# 2. **The run.** On a GPU the quick recipe on all of CIFAR-10, once plain and once with SimAM from
#    the same seed, minutes per network on a T4-class GPU (section 2 estimates them), into folders
#    of `runs/` (or of `$SIMAM_RUNS`) that survive a dead session. In quick mode (CI, or no GPU) a
#    CPU cannot train long enough to compare the two networks, so the chapter trains one, briefly:
#    a demonstration that the trainer works on the real CIFAR-10, and of its speed. The paper's
#    64,000-iteration recipe is one command away (section 9).
# 3. **The curves and the numbers**, read back from the files runs write: first the course's
#    committed runs of the whole quick recipe, which do compare the two networks, then this
#    notebook's own.
# 4. **Every seed.** The course's grid trained each network with 10 seeds, by a command, and
#    committed the results under `results/`: their spread, and SimAM's gain with its interval.
# 5. **What one run can show.** The paper's gain from SimAM on ResNet-20 / CIFAR-10 is 0.4 points
#    (92.73 ± 0.18 against 92.33 ± 0.19 over 5 runs). We compute how large the noise of a single
#    run is next to that, how many runs it takes to see such an effect, and how far apart single
#    pairs of the committed runs land.
# 6. **Resuming.** A run stopped halfway and resumed ends bit for bit where an uninterrupted run
#    ends, checked on a run small enough to train three times in seconds.
# 7. **Where a step's time goes, and which tricks help.** The trainer's step against the CPU's
#    fastest arithmetic, and the study that screens changes to the quick recipe.
# 8. **The fast recipe.** The quick recipe with the changes the study adopted, sized to 15
#    minutes of a 2-core CPU, and the study that measures it on the test split against its targets.
# 9. **The command line.** The same runs from a terminal.
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
import contextlib
import dataclasses
import io
import itertools
import json
import math
import shutil
import statistics
import tempfile
from pathlib import Path
from statistics import NormalDist
from unittest import mock

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

import simam
import simam.config
import simam.course
import simam.train
from simam import experiments
from simam.bench import processes, roofline
from simam.config import PAPER
from simam.course import targets, tricks
from simam.paper_results import paper_accuracy
from simam.plots import plot_training_curves
from simam.runs import CHECKPOINT, FINAL, read_final, read_metrics
from simam.stats import seeds_needed, welch
from simam.train import learning_rate

QUICK = simam.quick_mode()
# only in the test of the full mode: runs of a few steps
SMOKE = bool(simam.settings.smoke_overrides())
simam.seed_everything(0)
print(f"quick mode: {QUICK}")

# %% [markdown]
# ## 1. The paper's recipe
#
# Section 4.1 of the paper trains every CIFAR network the same way, with the schedule K. He et al.
# (2016) used for the original CIFAR ResNets: SGD with momentum 0.9, batches of 128 images, a
# learning rate of 0.1 divided by 10 at iterations 32,000 and 48,000, and 64,000 iterations in
# all. Only the weight decay is the SimAM paper's own, $5\cdot10^{-4}$ (He et al. used
# $10^{-4}$). Each training image is padded by 4 pixels on every side, a random
# $32\times32$ window is cut out and mirrored with probability $\tfrac12$; the test images are
# used as they are. SimAM's $\lambda = 10^{-4}$ was picked by the authors on a 45k/5k split of
# the training set with ResNet-20. `simam.config.PAPER` is exactly that recipe: it is the default
# `Config`.

# %%
# how a run is watched and where it runs, not what it learns
RUN_FIELDS = simam.config.RUNTIME_FIELDS
print("what defines a run:")
for field in dataclasses.fields(PAPER):
    if field.name not in RUN_FIELDS:
        print(f"  {field.name:<16} {getattr(PAPER, field.name)!r}")
print("how it is watched and where it runs (None: chosen for the device):")
for field in dataclasses.fields(PAPER):
    if field.name in RUN_FIELDS:
        print(f"  {field.name:<16} {getattr(PAPER, field.name)!r}")

# %% [markdown]
# The paper counts in iterations (batches), not epochs. With $N = 50{,}000$ training images and
# batches of $B = 128$ the number of epochs is
#
# $$
# \text{epochs} = \frac{\text{iterations}\cdot B}{N} ,
# $$
#
# so the schedule's three phases end at these epochs:

# %%
CIFAR10_TRAIN_IMAGES = 50_000


def epochs(
    iterations: int, batch_size: int, images: int = CIFAR10_TRAIN_IMAGES
) -> float:
    """Passes over ``images`` training images that ``iterations`` batches of
    ``batch_size`` make."""
    return iterations * batch_size / images


for start, end in zip((0, *PAPER.milestones), (*PAPER.milestones, PAPER.iterations)):
    print(
        f"iterations {start:>6,} to {end:>6,}: "
        f"learning rate {learning_rate(PAPER, start):g}, "
        f"epochs {epochs(start, PAPER.batch_size):6.2f} "
        f"to {epochs(end, PAPER.batch_size):6.2f}"
    )
print(
    f"in all: {epochs(PAPER.iterations, PAPER.batch_size):.2f} epochs, "
    f"{PAPER.iterations * PAPER.batch_size:,} training images seen"
)

# %% [markdown]
# 164 epochs, with the rate cut at epochs 82 and 123. The authors' reference code runs the same
# schedule counted in epochs (0.1 up to epoch 81, 0.01 up to 122, 0.001 up to 164), which is the
# same thing to within one epoch. The function `learning_rate(config, iteration)` of the package
# gives the rate of every step; here it is over the whole run, next to the quick recipe's one-cycle
# schedule that the next section explains.

# %%
QUICK_RECIPE = simam.config.QUICK
paper_steps = range(PAPER.iterations)
quick_steps = range(QUICK_RECIPE.iterations)
figure, (paper_axis, quick_axis) = plt.subplots(
    1, 2, figsize=(12, 3.5), layout="constrained"
)
paper_axis.plot(paper_steps, [learning_rate(PAPER, i) for i in paper_steps])
paper_axis.set(
    yscale="log",
    xlabel="iteration",
    ylabel="learning rate",
    title="paper: step schedule (log scale)",
)
for milestone in PAPER.milestones:
    paper_axis.axvline(milestone, color="grey", linestyle=":")
quick_axis.plot(
    quick_steps,
    [learning_rate(QUICK_RECIPE, i) for i in quick_steps],
    color="tab:orange",
)
quick_axis.set(
    xlabel="iteration", ylabel="learning rate", title="quick: one cycle (linear scale)"
)
for axis in (paper_axis, quick_axis):
    axis.grid(alpha=0.3)
plt.show()

rates = {learning_rate(PAPER, i) for i in paper_steps}
assert (
    len(rates) == 3
    and learning_rate(PAPER, 31_999) == 0.1
    and math.isclose(learning_rate(PAPER, 32_000), 0.01)
)

# %% [markdown]
# ### The quick recipe
#
# 64,000 iterations of ResNet-20 are work for a GPU: on a 2-core CPU they take hours (computed
# below). `simam.config.QUICK` is what the package does with a quarter of an hour of such a CPU:
# about eight epochs, sized at the speed measured when the recipe was made (printed below); the
# trainer has become faster since, and section 7 measures it again. The trainer makes that quarter of an
# hour go further by computing in bfloat16 where the CPU does so natively and by compiling SimAM's
# formula into one fused kernel, which shrinks SimAM's share of the step; how much each saves
# depends on the CPU. The recipe itself changes only the optimisation, never the network, and
# each change is a standard trick for short runs:
#
# - **One-cycle schedule** (Smith and Topin, *Super-Convergence*, 2019): the rate rises linearly to
#   a peak above the paper's (0.2) over the first 20% of the run, a warm-up as Goyal et al. (2017)
#   use before a large rate, then falls linearly to almost zero. A short run with a step schedule
#   would stop while the rate is still high and the weights still noisy; this one ends annealed.
# - **Nesterov momentum** (Sutskever et al., ICML 2013): the gradient taken at the look-ahead
#   point is a little better behaved at high learning rates.
# - **No weight decay on batch-norm scales and shifts and on biases** (T. He et al., *Bag of Tricks*,
#   CVPR 2019, section 3.1): decay regularises the weights that can overfit, and these are few.
# - **Label smoothing 0.1** (Szegedy et al., CVPR 2016): the training target is 0.9 times the
#   one-hot label plus 0.1 shared evenly among the ten classes (0.91 for the true class, 0.01 for
#   each other one), which keeps the logits from growing without bound.
# - **Flip-averaged evaluation reported beside the plain one** (test-time augmentation with the
#   flip that training used, as in Krizhevsky et al., NeurIPS 2012): each test image and its mirror
#   image are classified and their logits added. The plain accuracy stays the headline number.
#
# The fields where the two recipes differ:

# %%
for field in dataclasses.fields(PAPER):
    paper_value, quick_value = (
        getattr(PAPER, field.name),
        getattr(QUICK_RECIPE, field.name),
    )
    if paper_value != quick_value:
        print(f"  {field.name:<16} paper {paper_value!r:<16} quick {quick_value!r}")
print(f"quick: {epochs(QUICK_RECIPE.iterations, QUICK_RECIPE.batch_size):.2f} epochs")
# ResNet-20 + SimAM on 2 cores, what QUICK was sized at
CPU_IMAGES_PER_SECOND = simam.config.QUICK_SIZED_AT
print(
    f"the paper recipe at {CPU_IMAGES_PER_SECOND} images/s: "
    f"{PAPER.iterations * PAPER.batch_size / CPU_IMAGES_PER_SECOND / 3600:.1f} hours"
)

# %% [markdown]
# ## 2. The run
#
# The two networks are trained from the same seed. The seed fixes the initial weights, the order
# of the batches and every crop and flip. SimAM has no parameters, so with the same seed the two
# networks start from *identical* weights and see identical batches: the one difference between
# the runs is the SimAM operation in each block. The next cell checks the first half of that
# claim.

# %%
SEED = 0
COMPARED = ("none", "simam")
initial = {}
for attention in COMPARED:
    simam.seed_everything(SEED)
    model = simam.create_model("resnet20", attention=attention, num_classes=10)
    initial[attention] = model.state_dict()
    print(
        f"resnet20 + {attention:<5}: {simam.count_parameters(model):,} parameters, "
        f"{len(initial[attention])} tensors"
    )
assert initial["none"].keys() == initial["simam"].keys()
differing = [
    name
    for name in initial["none"]
    if not torch.equal(initial["none"][name], initial["simam"][name])
]
print(
    f"same seed: {len(initial['none']) - len(differing)} of {len(initial['none'])} "
    f"initial tensors bit-identical between the two networks"
)
assert not differing

# %% [markdown]
# **On a GPU** both networks train with the quick recipe itself, on the whole training set and
# evaluated on all 10,000 test images: the same runs as `python -m simam.train --recipe quick`,
# so their numbers can be set beside the course's committed runs of sections 3 and 4. Each run
# writes into a folder of `simam.settings.runs_root()` (`runs/`, or the folder `SIMAM_RUNS` names)
# and checkpoints as it goes; the cell passes `resume=True`, so when a Colab session dies in the
# middle, running the cell again continues both runs from their last checkpoint, and running it on
# finished runs only reads them back. (A Colab virtual machine takes its disk with it when it is
# recycled: to keep checkpoints across machines, mount Google Drive and set `SIMAM_RUNS` to a
# folder on it before this cell, e.g.
# `os.environ["SIMAM_RUNS"] = "/content/drive/MyDrive/simam-runs"`.) How long that takes on a T4,
# the GPU of a free Colab session, is estimated in the next cell; the paper's 64,000-iteration
# runs are left to the command line (section 9).
#
# **In quick mode** a CPU shared with everything else cannot train either network far enough for
# a comparison to mean anything (sections 3 and 4 read the committed runs of the whole quick
# recipe, which can, and section 5 counts how many of them a comparison needs), so the chapter
# trains one, ResNet-20 + SimAM, for about a minute. It is a demonstration of the trainer on the
# real data, not a trained network. A network worth having takes a quarter of an hour of a 2-core
# CPU with the fast recipe of section 8, run from a terminal while you read on:
#
# ```sh
# python -m simam.train --model resnet20 --attention simam --recipe fast --download \
#     --out runs/resnet20-simam-fast-seed0
# ```
#
# `dataclasses.replace` overrides a recipe's fields and keeps the rest, which is how any variation
# of a recipe is written. Starting from `QUICK`:
#
# - 160 iterations of 32 images. Smaller batches give more steps for the same images, and a short
#   run gains from steps. The peak learning rate is scaled with the batch,
#   $0.2 \cdot 32/128 = 0.05$: the linear scaling rule of Goyal et al. (2017). The warm-up stays
#   20% of the run.
# - A class-balanced subset of 5,000 training images (500 per class), so that the 160 iterations
#   make about one epoch rather than a tenth of one.
# - Evaluation on a class-balanced 1,000 of the 10,000 test images every 40 iterations. A forward
#   pass costs roughly a third of a training step (the backward pass costs about twice the
#   forward), so four evaluations on all 10,000 images would take longer than the training.
# - One thread and float32, so that the run does the same arithmetic on every CPU that it can:
#   the accuracies still differ in their last digits between CPU models and instruction sets,
#   so the asserts of the cells that print them check only what must hold on any machine.
#
# The run goes into a fresh temporary folder, so executing the notebook again starts afresh and
# nothing is written into the repository. Both configurations set `download=True`: where CIFAR-10 is
# not yet under `simam.data_root()` (on Colab, say), the first run fetches the official archive.

# %%
if QUICK:
    ATTENTIONS = ("simam",)  # a demonstration of the trainer: one network
    batch_size, iterations = 32, 160
    run_config = dataclasses.replace(
        simam.config.QUICK,
        seed=SEED,
        iterations=iterations,
        batch_size=batch_size,
        lr=simam.config.QUICK.lr * batch_size / simam.config.QUICK.batch_size,
        warmup=iterations // 5,
        subset=5_000,
        test_subset=1_000,
        eval_every=40,
        checkpoint_every=80,
        amp=False,
        threads=1,
        download=True,
    )
    run_root = Path(tempfile.mkdtemp(prefix="simam-chapter5-"))
else:
    ATTENTIONS = COMPARED
    run_config = dataclasses.replace(
        simam.config.QUICK, seed=SEED, download=True, **simam.settings.smoke_overrides()
    )
    run_root = simam.settings.runs_root()
run_folders = {
    attention: run_root / f"resnet20-{attention}-{run_config.recipe}-seed{SEED}"
    for attention in ATTENTIONS
}
run_epochs = epochs(
    run_config.iterations,
    run_config.batch_size,
    run_config.subset or CIFAR10_TRAIN_IMAGES,
)
print(f"networks trained here: {', '.join(f'ResNet-20 + {a}' for a in ATTENTIONS)}")
print(
    f"{run_config.recipe} recipe: {run_config.iterations:,} iterations "
    f"of {run_config.batch_size}, "
    f"{run_config.schedule} schedule from learning rate {run_config.lr:g}, "
    f"warm-up {run_config.warmup}, "
    f"training images {run_config.subset or CIFAR10_TRAIN_IMAGES:,}, "
    f"test images {run_config.test_subset or 10_000:,}, "
    f"{run_epochs:.2f} epochs"
)

# %% [markdown]
# How long the GPU mode takes on a T4 is an estimate, computed from two numbers. The work of one
# training image is counted by PyTorch's `FlopCounterMode` (convolutions and matrix products, in
# the forward and the backward pass). The speed is an assumption: a T4 peaks at 65 TFLOP/s in
# float16, and networks this small (16 to 64 channels, $8\times8$ to $32\times32$ maps) keep only a
# few percent of that busy, so we take 2 TFLOP/s (3%). An evaluation costs about a third of a
# training pass per test image (a forward pass only), twice with the flipped copies. Both are in
# `simam.course.estimated_gpu_minutes`. On a GPU the trainer also compiles the whole network
# (`torch.compile`) during its first steps, which is not measured here: the estimate adds an
# assumed 30 s to 3 minutes per run for it, depending on whether the compiled kernels are already
# cached, and prints the range. Data loading and start-up are left out; on a real GPU the timing
# cell below prints what the runs took.

# %%
flops_per_image = simam.models.training_flops_per_image(
    simam.create_model("resnet20", attention="simam")
)
gpu_config = dataclasses.replace(simam.config.QUICK, seed=SEED, attention="simam")
low, high = simam.course.estimated_gpu_minutes(gpu_config, runs=len(COMPARED))
print(f"training FLOPs per image (forward and backward): {flops_per_image / 1e6:.0f} M")
print(
    f"GPU mode: {len(COMPARED)} runs of "
    f"{gpu_config.iterations * gpu_config.batch_size:,} "
    f"training images -> about {low:.0f} to {high:.0f} minutes on a T4 at "
    f"{simam.course.T4_ACHIEVED_FLOPS / 1e12:g} TFLOP/s, compilation included"
)

# %% [markdown]
# The training itself. `train` prints one line per evaluation and returns what it wrote into
# `final.json`. Its output holds wall-clock times, which vary from machine to machine; the numbers
# that matter are printed again, from the files, below, where asserts check what must hold
# anywhere.

# %% tags=["nbval-ignore-output"]
finals = {}
for attention in ATTENTIONS:
    config = dataclasses.replace(run_config, attention=attention)
    finals[attention] = simam.train.train(config, run_folders[attention], resume=True)

# %% [markdown]
# ## 3. Curves and numbers
#
# A run leaves its numbers in its folder: `metrics.jsonl` holds one line per evaluation,
# `final.json` the summary. `plot_training_curves` draws the test accuracy, the two losses and the
# learning rate from them. The training loss (dashed) is the mean over the iterations since the
# previous evaluation and includes label smoothing, which puts a floor under it; the test loss
# (solid) is plain cross-entropy.
#
# The comparison comes first, from runs long enough to make one: the course's committed runs of
# the whole quick recipe on all of CIFAR-10, seed 0 of each network, trained on 2-core CPUs
# (section 4 has every seed and the commands). Their folders ship with the package, which finds
# them as `simam.zoo.DEFAULT_RESULTS / "runs"`, so this cell works from a checkout and from an
# installed package alike; nothing here trains.

# %%
RESULTS = simam.zoo.DEFAULT_RESULTS  # the course's committed results
committed = {
    attention: RESULTS / "runs" / f"cifar10-resnet20-{attention}-quick-seed0"
    for attention in COMPARED
}
finished = {
    attention: folder
    for attention, folder in committed.items()
    if (folder / FINAL).is_file()
}
for attention, folder in finished.items():
    final = json.loads((folder / FINAL).read_text())
    evaluations = ", ".join(
        f"{100 * row['test_accuracy']:.2f}% at iteration {row['iteration']:,}"
        for row in read_metrics(folder)
    )
    print(
        f"ResNet-20 + {attention:<6} test accuracy {evaluations} "
        f"({final['epochs']:.1f} epochs; flip-averaged "
        f"{100 * final['final_test_accuracy_flip']:.2f}%), "
        f"{final['wall_seconds'] / 60:.1f} minutes at "
        f"{final['train_images_per_second']:.0f} images/s on {final['device']}"
    )
for attention in [attention for attention in COMPARED if attention not in finished]:
    print(f"ResNet-20 + {attention}: not yet run (section 4's command trains it)")
if finished:
    figure = plot_training_curves(
        list(finished.values()),
        labels=[f"ResNet-20 + {a}, quick recipe, seed 0" for a in finished],
    )
    plt.show()

# %% [markdown]
# The quick recipe evaluates twice, halfway and at the end (each evaluation is two passes over the
# 10,000 test images, plain and flipped), so each curve has two points. The second half of the run,
# while the learning rate falls the rest of the way to almost zero, adds another
# $86.57 - 71.62 = 14.95$ points without attention and $87.57 - 73.92 = 13.65$ with SimAM: the
# one-cycle schedule ends annealed. The two runs trained on different CPUs (an AMD EPYC and an
# Intel Xeon), so the gap between their speeds, 780 against 576 images/s, is mostly the machines'
# and is no measure of SimAM's cost: section 4.4 of chapter 4 times SimAM beside the plain layer on
# one machine. Seed 0 is one pair of runs; how far apart the two networks land over many seeds is
# section 4's question, and how far a single pair can mislead, section 5's.
#
# Then this notebook's own runs, read from their folders the same way. On a GPU they are the same
# recipe as the committed runs, and their curves should look like those. In quick mode there is
# one, ResNet-20 + SimAM after about one epoch of a subset: its curves show the loss falling and
# the accuracy rising above chance, which is what they are for.

# %%
figure = plot_training_curves(
    [run_folders[attention] for attention in ATTENTIONS],
    labels=[f"ResNet-20 + {attention}, this notebook" for attention in ATTENTIONS],
)
plt.show()

# %% tags=["nbval-ignore-output"]
rows = {attention: read_metrics(run_folders[attention]) for attention in ATTENTIONS}
stored = {
    attention: json.loads((run_folders[attention] / FINAL).read_text())
    for attention in ATTENTIONS
}
print(
    f"{'network':<20} {'iterations':>10} {'epochs':>7} {'final test acc.':>16} "
    f"{'best (selected on test set)':>28}"
)
for attention in ATTENTIONS:
    final = stored[attention]
    best = (
        f"{100 * final['best_test_accuracy_selected_on_test_set']:.1f}% at "
        f"{final['best_iteration_selected_on_test_set']:,}"
    )
    print(
        f"{'ResNet-20 + ' + attention:<20} {final['iterations']:>10,} "
        f"{final['epochs']:>7.2f} "
        f"{100 * final['final_test_accuracy']:>15.1f}% {best:>28}"
    )

# The accuracies differ in their last digits from one CPU model or GPU to another;
# these checks hold on every machine.
evaluations = math.ceil(run_config.iterations / run_config.eval_every)
chance = 0.1
for attention in ATTENTIONS:
    # the file holds what train returned
    assert stored[attention] == json.loads(json.dumps(finals[attention]))
    assert (
        len(rows[attention]) == evaluations
        and rows[attention][-1]["iteration"] == run_config.iterations
    )
    assert (
        stored[attention]["final_test_accuracy"] == rows[attention][-1]["test_accuracy"]
    )
    # 160 quick iterations: well above chance (about a third of the images right); the
    # whole quick recipe: about 87%
    if not SMOKE:
        assert stored[attention]["final_test_accuracy"] > (
            2 * chance if QUICK else 0.85
        )
        # it learned
        assert rows[attention][-1]["test_loss"] < rows[attention][0]["test_loss"]

# %% [markdown]
# The final accuracy is the number to report. The best accuracy over all evaluations is shown only
# beside it and labelled: picking the best of several evaluations *by looking at the test set* is
# a selection, and the number it gives is optimistic. (The reference code of the paper logs the
# best.) The `epochs` column counts passes of the loader, which drops the last incomplete batch of
# every epoch, so it comes out slightly above the images seen divided by the training-set size
# that section 1 used.
#
# The speed is the one figure of a short run that means what it says. Time and speed vary from
# one execution to the next, so they get a cell of their own, with what the whole recipes would
# take at that speed. In quick mode it is one thread in float32, slower than the committed runs
# above, which used two threads and bfloat16 where their CPU computes it natively.

# %% tags=["nbval-ignore-output"]
for attention in ATTENTIONS:
    final = stored[attention]
    print(
        f"ResNet-20 + {attention:<6} wall time {final['wall_seconds']:7.1f} s, "
        f"training {final['train_images_per_second']:7.1f} images/s "
        f"on {final['device']}"
    )
speed = stored["simam"]["train_images_per_second"]
for recipe in (simam.config.QUICK, PAPER):
    images = recipe.iterations * recipe.batch_size
    print(
        f"the {recipe.recipe} recipe's {images:,} training images at this speed: "
        f"{images / speed / 3600:.1f} hours"
    )
if "none" in stored:
    slowdown = stored["none"]["train_images_per_second"] / speed
    print(
        "SimAM's cost in training speed here: "
        f"the plain network is {slowdown:.2f}x as fast"
    )
assert speed > 0

# %% [markdown]
# ## 4. Every seed: the course's grid
#
# The seed-0 runs above are one pair. The networks that the course presents as trained come from
# the grid of [chapter 6](06_results_and_attention_maps.ipynb), trained on two 2-core CPU models
# (each results line names its CPU) by commands like these:
#
# ```sh
# python -m simam.experiments run --models resnet20 --attentions none,simam,eca \
#     --datasets cifar10 --seeds 10 --recipe quick --out results/
# python -m simam.experiments run --models resnet20 --attentions se,cbam,gc \
#     --datasets cifar10 --seeds 5 --recipe quick --out results/
# ```
#
# (The plain network, SimAM and ECA were extended from 5 to 10 seeds after an interim look at 5;
# section 6.3 of chapter 6 says what that does to the verdict.)
#
# Each run is the whole quick recipe on all of CIFAR-10, evaluated on all 10,000 test images. Its
# small files are committed: a line in `results/results.jsonl`, and `metrics.jsonl` and
# `final.json` in `results/runs/<run-id>/`. This section reads the lines of the two networks of
# this chapter; nothing here trains. A grid that is not finished yet shows what it has. Every seed
# gives one more final accuracy per network, and with two or more seeds of both networks their
# spread gives Welch's 95% interval for the gain (its formula is in
# [chapter 6](06_results_and_attention_maps.ipynb), section 6.3) and the power computation of the
# next section a second answer, beside the one from the paper's spread:

# %%
grid_cells = [
    cell
    for cell in experiments.summarise(experiments.read_results(RESULTS))
    if cell.model == "resnet20"
    and cell.recipe == "quick"
    and not cell.overrides
    and cell.lambda_ in (None, 1e-4)
    and cell.place is None
    and cell.attention in COMPARED
]
by_attention = {cell.attention: cell for cell in grid_cells}
for attention in COMPARED:
    cell = by_attention.get(attention)
    spread = (
        ""
        if cell is None or cell.std is None
        else f", standard deviation {cell.std:.2f} points"
    )
    print(
        f"ResNet-20 + {attention:<6} seeds finished: {0 if cell is None else cell.n}"
        + ("" if cell is None else f", mean {cell.mean:.2f}%{spread}")
    )
# two seeds of each
if experiments.grid_seeds_needed(grid_cells, "resnet20") is not None:
    gain, low, high, _, _ = welch(
        by_attention["simam"].accuracies, by_attention["none"].accuracies
    )
    print(
        f"SimAM - none with the quick recipe: {gain:+.2f} points, "
        f"Welch's 95% CI [{low:+.2f}, {high:+.2f}]"
    )
    figure = experiments.plot_seeds(grid_cells, "resnet20")
    plt.show()
else:
    print(
        "fewer than two seeds per network so far: "
        "the next section uses the paper's spread only"
    )

# %% [markdown]
# Every dot is one run. The seeds of each network scatter over about a point, and the two clouds
# overlap; the gap between their means is wider than either mean's 95% interval (left), and the
# interval of the difference (right) lies above zero. The paper's Table 2 difference, drawn beside
# it from its 5 runs per network, is smaller, and the quick recipe's accuracies sit several points
# below the paper's: these are 8-epoch runs, so compare the differences, not the levels.
# [Chapter 6](06_results_and_attention_maps.ipynb) sets SimAM beside the other modules on the same
# grid and gives the verdict its plan asks for.

# %% [markdown]
# ## 5. What one run can and cannot show
#
# The paper reports, for ResNet-20 on CIFAR-10, $92.33 \pm 0.19$ without attention and
# $92.73 \pm 0.18$ with SimAM: means and standard deviations over $n = 5$ runs each (Table 2;
# [chapter 6](06_results_and_attention_maps.ipynb) shows how to run the whole table with
# `python -m simam.experiments`). How does a gain of $G = 0.40$ points compare with the noise?
#
# **Seed to seed.** Each run's accuracy scatters around its mean with a standard deviation
# $\sigma \approx 0.19$ points. The difference of the means of two independent groups of $n$ runs has
# the standard error
#
# $$
# \sqrt{\frac{\sigma_1^2}{n} + \frac{\sigma_2^2}{n}} .
# $$
#
# **How many runs.** To detect a true difference $G$ with a two-sided test at significance
# $\alpha$ and power $1-\beta$ (the normal approximation, with $\sigma$ taken as known, and $\Phi$ the
# standard normal distribution function), each group needs
#
# $$
# n \;\ge\; \frac{(\sigma_1^2 + \sigma_2^2)\,\bigl(\Phi^{-1}(1-\alpha/2) + \Phi^{-1}(1-\beta)\bigr)^2}{G^2} .
# $$
#
# **The test set itself.** Even a model that never changed would be measured with noise: its
# accuracy on $N$ test images drawn from the data distribution is a binomial proportion $\theta$ with
# standard error $\sqrt{\theta(1-\theta)/N}$.

# %%
# ResNet-20 on CIFAR-10, Yang et al. 2021, Table 2, read from simam.paper_results
RUNS_IN_PAPER = 5
(mean_plain, sd_plain), (mean_simam, sd_simam) = (
    paper_accuracy("cifar10", "resnet20", a) for a in ("none", "simam")
)
gain = mean_simam - mean_plain
variance_sum = sd_plain**2 + sd_simam**2


def difference_se(n: int) -> float:
    """Standard error (points) of the difference of two means of n runs each."""
    return math.sqrt(variance_sum / n)


print(f"gain in the paper: {gain:.2f} points")
for n in (1, 2, RUNS_IN_PAPER, 10):
    print(
        f"  {n:>2} run(s) per network: "
        f"SE of the difference {difference_se(n):.3f} points, "
        f"gain / SE = {gain / difference_se(n):.1f}"
    )

alpha, power = 0.05, 0.80
z_alpha = NormalDist().inv_cdf(1 - alpha / 2)
# the formula above, rounded up
runs_needed = seeds_needed(sd_plain, sd_simam, gain, alpha, power)
print(
    f"runs per network to detect {gain:.2f} points "
    f"(two-sided alpha {alpha}, power {power:.0%}): {runs_needed}"
)
for delta in (0.2, 0.1):
    print(
        f"  ... to detect {delta:.1f} points: "
        f"{seeds_needed(sd_plain, sd_simam, delta, alpha, power)}"
    )
# the same function, chapter 6 too
grid_needed = experiments.grid_seeds_needed(grid_cells, "resnet20", effect=0.4)
# section 4: the spread of the course's own quick-recipe runs
if grid_needed is not None:
    print(
        "  ... to detect 0.4 points with the quick recipe's own spread "
        f"({by_attention['none'].std:.2f} and "
        f"{by_attention['simam'].std:.2f} points): {grid_needed}"
    )
single_run_power = NormalDist().cdf(gain / difference_se(1) - z_alpha)
print(
    f"power of one run per network to find the {gain:.2f}-point gain "
    f"at alpha {alpha}: {single_run_power:.0%}"
)
plain_ahead = NormalDist().cdf(-gain / difference_se(1))
print(
    "chance that a single pair of runs puts the plain network ahead: "
    f"{plain_ahead:.1%} (one pair in {1 / plain_ahead:.0f})"
)

test_images = 10_000
for name, mean in (("none", mean_plain), ("simam", mean_simam)):
    p = mean / 100
    print(
        f"binomial noise of the {test_images:,}-image test set "
        f"at {mean:.2f}% ({name}): "
        f"{100 * math.sqrt(p * (1 - p) / test_images):.2f} points"
    )


# %% [markdown]
# Three things follow.
#
# - **With the paper's five runs the gain stands out**, about 3.4 standard errors, *if* the spreads
#   of Table 2 are the seed-to-seed standard deviations they appear to be. The normal approximation
#   asks for 4 runs per network to find 0.4 points with 80% power at the 5% level; finding a
#   0.1-point gain would take 54 runs per network. The quick recipe's runs scatter more than the
#   paper's (section 4), so the same 0.4 points need more seeds there: the last "to detect" line
#   above, computed from the quick recipe's own spread by `experiments.grid_seeds_needed`, the
#   function [chapter 6](06_results_and_attention_maps.ipynb) applies to the same grid.
# - **One run per network cannot show it.** The difference of two single runs has a standard error
#   of about 0.26 points, so a 0.4-point gain is 1.5 standard errors: a single pair of runs finds it
#   at the 5% level only a third of the time, and puts the plain network ahead in about one pair
#   in sixteen.
# - **The test set is a sample too.** 10,000 images measure one model's accuracy to within about
#   0.26 to 0.27 points (one standard error, as printed above), more than the seed-to-seed spread
#   of Table 2. Both networks are tested on the *same* images, which cancels part of this noise
#   when they are compared (a paired comparison, as McNemar's test makes), but it is why differences
#   of a tenth of a point between CIFAR-10 papers mean little.
#
# The committed grid makes the second point concrete. Pair any one of its runs without attention
# with any one of its runs with SimAM, as a reader with one run of each would: how far apart can
# the two land?

# %%
if len(grid_cells) == len(COMPARED):
    plain_runs, simam_runs = (by_attention[a].accuracies for a in COMPARED)
    pairs = [s - p for p in plain_runs for s in simam_runs]
    print(
        f"{len(pairs)} pairs of one run each: SimAM - plain from {min(pairs):+.2f} "
        f"to {max(pairs):+.2f} points; the plain network ahead in "
        f"{sum(d < 0 for d in pairs)} of them"
    )
    same_seed = [s - p for p, s in zip(plain_runs, simam_runs)]
    print(
        "pairs of the same seed: "
        + ", ".join(f"{d:+.2f}" for d in same_seed)
        + f" (mean {statistics.mean(same_seed):+.2f})"
    )
    print(
        "standard deviation of the differences: "
        f"same seed {statistics.stdev(same_seed):.2f} points, "
        f"all pairs {statistics.stdev(pairs):.2f}"
    )
else:
    print("section 4's grid has no runs of both networks yet")

# %% [markdown]
# The mean gain of the grid, section 4's, is the one number here that several seeds stand
# behind. A reader holding one pair could have seen a gain of less than half of it, more than
# twice it, or the plain network ahead (the range above): one pair of runs is a draw from that
# spread. The pairs of the same seed scatter no less than the others (the two standard deviations
# above): starting from the same weights and seeing the same batches does not make the two runs'
# noise cancel, since the networks' weights part from the first step on.
#
# On a GPU this notebook trained one more pair, with the whole quick recipe: the next cell sets
# it among the grid's pairs. In quick mode the one network of section 2 stopped after about one
# epoch of a subset, far below the 92% where the paper's 0.4 points were measured, and the
# effect of an attention module early in training need not be its effect at the end; a pair of
# such runs would say nothing for or against the paper, so the chapter trains none.

# %% tags=["nbval-ignore-output"]
if QUICK:
    print("quick mode: one network trained here, so no pair of this notebook's own")
else:
    accuracy = {a: stored[a]["final_test_accuracy"] for a in COMPARED}
    tested = run_config.test_subset or 10_000
    for attention, p in accuracy.items():
        print(
            f"ResNet-20 + {attention:<6} {100 * p:.2f}% on {tested:,} test images, "
            f"binomial standard error "
            f"{100 * math.sqrt(p * (1 - p) / tested):.2f} points"
        )
    observed = 100 * (accuracy["simam"] - accuracy["none"])
    print(f"this notebook's pair: SimAM - plain {observed:+.2f} points")
    if len(grid_cells) == len(COMPARED):
        below = sum(d < observed for d in pairs)
        print(f"  above {below} of the grid's {len(pairs)} pairs")
    assert all(0 <= p <= 1 for p in accuracy.values())

# %% [markdown]
# What this notebook's own runs **can** show, in either mode:
#
# - the whole pipeline works on the real data, from the official files to a `final.json`, and the
#   loss falls;
# - SimAM adds no parameter, and two runs from one seed start from the same weights and see the
#   same batches (section 2);
# - how fast the trainer is on this hardware (section 3; on a shared CPU that figure is itself
#   noisy, and [chapter 4](04_baselines.ipynb) measures SimAM's cost properly);
# - that a stopped run resumes exactly (section 6).
#
# What they **cannot** show is whether SimAM helps: that needs several seeds per network, which is
# what section 4's grid has and [chapter 6](06_results_and_attention_maps.ipynb) judges.

# %% [markdown]
# ## 6. Resuming a run
#
# A run folder holds `checkpoint.pt`: the weights, the optimiser's momentum, every random
# generator and the loader's place in its epoch. `train(config, out, resume=True)` continues from
# it, and on the CPU the result is meant to be bit-identical to a run that was never interrupted.
# That claim can be checked here, in either mode, on a run small enough to train three times in
# seconds: ResNet-20 + SimAM for 40 iterations of 32 images of a 512-image subset (16 batches an
# epoch), evaluated every 20 iterations, a checkpoint every 10, on the CPU in float32 on one thread.
# It is trained three ways:
#
# 1. without interruption;
# 2. stopped after 25 steps: the trainer's step function is wrapped so that its 26th call raises
#    `KeyboardInterrupt`, the exception Ctrl-C raises. The last checkpoint is then that of
#    iteration 20, early in the second epoch (4 of its 16 batches), and the 5 steps after it are
#    lost, as they
#    would be if the session died;
# 3. that stopped run, resumed.

# %%
small_config = dataclasses.replace(
    simam.config.QUICK,
    seed=SEED,
    iterations=40,
    batch_size=32,
    lr=0.05,
    warmup=8,
    subset=512,
    test_subset=250,
    eval_every=20,
    checkpoint_every=10,
    device="cpu",
    amp=False,
    channels_last=False,
    compile=False,
    compile_simam=False,
    threads=1,
    download=True,
)
small_root = Path(tempfile.mkdtemp(prefix="simam-resume-"))


def stopped_after(config: simam.config.Config, out: Path, steps: int) -> None:
    """Train ``config`` into ``out`` and stop it after ``steps`` steps, as Ctrl-C
    would: the trainer's step function raises KeyboardInterrupt at the next call."""
    step, calls = simam.train.train_step, itertools.count(1)

    def step_or_stop(*args, **kwargs):
        if next(calls) > steps:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    with mock.patch.object(simam.train, "train_step", step_or_stop):
        try:
            simam.train.train(config, out)
        except KeyboardInterrupt:
            print(f"stopped after {steps} steps")


def untimed_metrics(run: Path) -> list[dict]:
    """The run's metrics rows without their wall-clock field (no two runs share it)."""
    return [
        {key: value for key, value in row.items() if key != "elapsed_seconds"}
        for row in read_metrics(run)
    ]


def same_run(run: Path, other: Path) -> dict[str, bool]:
    """Whether two finished runs hold bit-identical weights, momentum and metrics."""
    ours, theirs = (torch.load(r / CHECKPOINT, weights_only=True) for r in (run, other))
    momentum = [
        (ours["optimizer"]["state"][i], state)
        for i, state in theirs["optimizer"]["state"].items()
        if i in ours["optimizer"]["state"]
    ]
    return {
        "weights": all(
            torch.equal(ours["model"][name], tensor)
            for name, tensor in theirs["model"].items()
        ),
        "momentum": len(momentum) == len(theirs["optimizer"]["state"])
        and all(
            torch.equal(a["momentum_buffer"], b["momentum_buffer"]) for a, b in momentum
        ),
        "metrics": untimed_metrics(run) == untimed_metrics(other),
    }


uninterrupted, stopped = small_root / "uninterrupted", small_root / "stopped"

# %% tags=["nbval-ignore-output"]
simam.train.train(small_config, uninterrupted)
stopped_after(small_config, stopped, steps=25)

# %% [markdown]
# What the stopped run left behind:

# %%
checkpoint = torch.load(stopped / CHECKPOINT, weights_only=True)
loader = checkpoint["loader"]
print(
    f"checkpoint.pt: iteration {checkpoint['iteration']}; the loader "
    f"({loader['num_images']} images, {loader['batches_per_epoch']} batches an epoch) "
    f"in epoch {loader['epoch'] + 1}, {loader['position']} batches of it handed out"
)
print("its entries: " + ", ".join(checkpoint))
print(
    "metrics.jsonl: evaluations at iterations "
    f"{[row['iteration'] for row in read_metrics(stopped)]}"
)
assert checkpoint["iteration"] == 20 and loader["position"] == 4

# %% [markdown]
# Resuming it trains iterations 21 to 40 from that checkpoint, 21 to 25 for the second time. Resuming the finished,
# uninterrupted run has nothing left to do: it loads the checkpoint, trains no step and writes the
# same results again. That is what makes the training cell of section 2 safe to run again.

# %% tags=["nbval-ignore-output"]
simam.train.train(small_config, stopped, resume=True)
metrics_before = read_metrics(uninterrupted)
again = simam.train.train(small_config, uninterrupted, resume=True)

# %%
identical = same_run(stopped, uninterrupted)
print(
    "stopped after 25 steps and resumed, against the uninterrupted run: "
    + ", ".join(
        f"{part} {'bit-identical' if same else 'different'}"
        for part, same in identical.items()
    )
)
assert all(identical.values())
unchanged = read_metrics(uninterrupted) == metrics_before
print(
    f"the finished run resumed: {again['iterations']} iterations, "
    f"metrics file unchanged: {unchanged}"
)
assert unchanged and again["iterations"] == small_config.iterations

# %% [markdown]
# Everything in the checkpoint is there for a reason, and exercise 6 takes parts of it away to see
# which ones matter for this network. Any field that defines the run must match the checkpoint's
# (the number of iterations among them); a different one is an error, not a silent new run. Fields
# that only say how the run is watched or where it runs (`RUN_FIELDS` of section 1) may change.
# On a GPU the trainer lets cuDNN pick its fastest convolution algorithms, and not all of them fix
# the order of their sums, so a resumed run continues correctly without matching bit for bit
# (`deterministic=True` trades speed for repeatability there).

# %% [markdown]
# ## 7. Where a step's time goes, and which tricks help
#
# The quick recipe is the course's measuring stick, and it stays frozen so that every run of the
# grid remains comparable. Two questions about it are still worth asking: how close does its step
# come to what the CPU can do, and which changes to the recipe would buy accuracy in the same
# time?
#
# The first has a clean answer. A training image of ResNet-20 + SimAM costs a fixed amount of
# arithmetic: its convolutions and its one matrix product, forward and backward, as
# `torch.utils.flop_counter` counts them (a lower bound: batch norm, ReLU and SimAM are not in
# it). That work divided by the time of a step is the step's rate, and the natural ceiling is the
# rate of a large matrix product on the same threads, the densest arithmetic the machine does.
# `python -m simam.bench roofline` measures all of it in one run, together with each stage's
# convolution alone and a profile of the step. The course keeps one such run, made with nothing
# else on a 2-core CPU, in `results/roofline.json`; the cell prints it again.

# %%
roofline_record = json.loads((RESULTS / "roofline.json").read_text())
print(roofline.report(roofline_record))
work = roofline_record["mflop_per_image"] * 1e6
step_rate = roofline_record["images_per_second"]["trainer"] * work / 1e9
roof = roofline_record["matrix_gflops"]["bfloat16"]
alone = [
    conv["gflops"] / roof
    for conv in roofline_record["convolutions"]
    if conv["dtype"] == "bfloat16"
]
print(
    f"\nthe step: {step_rate / roof:.2f} of the bfloat16 product; "
    f"its convolutions alone: {min(alone):.2f} to {max(alone):.2f} of it"
)
assert step_rate / roof < max(alone)  # a step cannot outrun its own convolutions

# %% [markdown]
# The convolutions alone reach a large share of the matrix product's rate, even at 16 channels;
# the whole step reaches much less. The difference is the rest of the step: batch norm, SimAM,
# the ReLUs and the residual additions each read and write whole feature maps while doing almost
# no arithmetic, so their time is memory traffic, and the profile above gives it a third of the
# step. The remedy is to fuse them into the convolutions' passes, which is what compiling the
# whole model promises; on this CPU it makes the step slower (the table below), and so does the
# channels_last layout that GPUs prefer. SimAM's own share is the price of the most elementwise
# work of the five modules (chapter 4, section 4.4), already fused into one compiled kernel.
#
# One more suspect is the threads. Torch splits each operation of a step between the two cores
# and joins them at its end, and ResNet-20's operations are small, so the joining might cost a
# visible share. `python -m simam.bench processes` measures it with the trainer itself: one
# process on both cores; two processes of one thread each, side by side, which share nothing; and
# one run split between two one-thread processes that average their gradients every step
# (data-parallel, launched with `torchrun` as on several GPUs). The course's committed run:

# %%
processes_record = json.loads((RESULTS / "processes.json").read_text())
print(processes.report(processes_record))
against_one = {row["pipeline"]: row["ratio"] for row in processes_record["rows"]}
assert against_one["one process"] == 1 and against_one["processes apart"] < 1.15

# %% [markdown]
# Two processes that share nothing train only a little more than one process on both cores, and
# the data-parallel run, which pays for averaging its gradients, gains nothing: with SimAM's
# formula compiled, the threads are not where the step's time goes.
#
# The second question needs training runs, and a plan made before them. The **tricks study**
# (`results/plans/tricks.toml`) changes the quick recipe one cell at a time, two seeds each. Its
# additions come from the fastest CIFAR-10 trainers (K. Jordan's airbench, 2024,
# [arXiv](https://arxiv.org/abs/2404.00498), uses the first four):
#
# - **label smoothing 0.2** instead of 0.1;
# - **a moving average of the weights** (Polyak and Juditsky, 1992): after every step the
#   averaged copy becomes 0.998 of itself plus 0.002 of the trained weights, an average over
#   roughly the last $1/(1 - 0.998) = 500$ steps (a smaller factor in the first steps, so that
#   the random initial weights fade fast), and it is the averaged copy that is evaluated;
# - **alternating flips**: each image is flipped at random in the first epoch and the other way
#   in every epoch after, so that every two epochs show it in both orientations;
# - **reflected translations by 2 pixels**: padding of 2 filled by reflecting the border instead
#   of 4 black pixels, then a random 32 by 32 crop (two changes in one cell);
# - **a larger batch**, 256 at twice the peak rate (the linear scaling of Goyal et al., 2017) for
#   half the iterations, so that every run sees the same images;
# - **other peak rates** (0.4 and 0.1 instead of 0.2) and **a shorter warm-up** (10% of the run).
#
# The other cells take each of the quick recipe's own choices out: Nesterov momentum, label
# smoothing, and the exemption of batch norm and biases from decay; the step schedule cell goes
# back to the paper's schedule, which changes its shape, its peak rate (0.1) and its warm-up
# (none) at once. Every run trains on 45,000 training images and is judged on the 5,000 held out,
# so that choosing a recipe never looks at the test split. Two seeds cannot establish a
# difference of a few tenths of a point, and the plan does not pretend to: it fixes a rule
# instead, adopting a change whose mean beats the base recipe's by a margin set in advance, once
# all its runs are in. The table fills in as runs are committed; the speeds come from
# `python -m simam.bench tricks`, every cell timed side by side.

# %%
tricks_verdict = next(
    found for found in experiments.judge_studies(RESULTS) if found.study.adopt_at
)
speeds = tricks.read_throughput(tricks_verdict.study.results_folder(RESULTS))
display(
    Markdown(
        tricks.trick_caption(tricks_verdict, speeds)
        + "\n"
        + tricks.trick_table(tricks_verdict, speeds)
    )
)
# every seed of every cell, beside base's mean and the rule's threshold
experiments.plot_study(tricks_verdict)
plt.show()
held_out = tricks_verdict.study.cell_specs("base")[0].config().holdout
print(
    f"each run trains on {CIFAR10_TRAIN_IMAGES - held_out:,} of CIFAR-10's training "
    f"images and is judged on the {held_out:,} held out"
)
slowest = min(row["ratio"] for row in speeds["rows"])
print(f"the slowest pipeline against base: {slowest:.2f}x")
# A change that does nothing: its two-seed mean minus base's scatters with the standard
# deviation of one run, at least the
# quick recipe's seed-to-seed spread on the test split.
seed_spread = by_attention["simam"].std
no_effect_adopted = 1 - NormalDist().cdf(tricks_verdict.study.adopt_at / seed_spread)
print(
    f"chance that the rule adopts a change with no effect, at a spread of "
    f"{seed_spread:.2f} points: {no_effect_adopted:.0%} or more"
)
assert slowest > 0 and 0 < held_out < CIFAR10_TRAIN_IMAGES
assert 0 < no_effect_adopted < 0.5

# %% [markdown]
# Read the rule with its error rate in mind. A change that does nothing still passes it fairly
# often (the last line above): the rule screens candidates for the fast recipe, whose own runs,
# planned apart, must then show what it is worth. The same caution holds for the speed column:
# base and lr_04 run exactly the same computation, so the gap between their two speeds is what
# the timing itself scatters.
#
# With all its runs in, the rule adopts two changes, both about what the network is shown and how
# hard it is pushed: the reflected translations and the peak rate of 0.4. Taking any of the quick
# recipe's own choices out lowered the held-out accuracy, so every one of them stays. The smaller
# changes that airbench relies on (label smoothing 0.2, the moving average, alternating flips)
# do not pass the rule with this network at this budget, and neither does the larger batch,
# which trains at about the same speed per image and so only halves the number of steps.

# %% [markdown]
# ## 8. The fast recipe
#
# The quick recipe stays the grid's measuring stick. The changes that the rule adopts, once all
# of the study's runs are in, make a second recipe, `simam.config.FAST`: the quick recipe with
# those changes and nothing else, and with as many iterations as fit in 15 minutes of the whole
# command on the 2-core CPU the course's runs use. Its 30-minute setting, `fast-30`, has the same
# shape over more iterations. The next cell prints what the rule adopted and how each recipe
# differs from the quick one.

# %%
adopted_changes = tricks.adopted(tricks_verdict)
print(f"adopted by the rule: {', '.join(adopted_changes) or 'nothing yet'}")
for recipe in (simam.config.FAST, simam.config.FAST_30):
    changed = [
        f"{field.name} {getattr(QUICK_RECIPE, field.name)!r} -> "
        f"{getattr(recipe, field.name)!r}"
        for field in dataclasses.fields(recipe)
        if getattr(recipe, field.name) != getattr(QUICK_RECIPE, field.name)
    ]
    recipe_epochs = epochs(recipe.iterations, recipe.batch_size)
    print(f"\n{recipe.recipe}: {recipe_epochs:.1f} epochs")
    print("\n".join(f"  {change}" for change in changed))
# every change an adopted cell makes to the quick recipe is in the fast recipe
base_config = tricks_verdict.study.cell_specs("base")[0].config()
for name in adopted_changes:
    cell_config = tricks_verdict.study.cell_specs(name)[0].config()
    for field in dataclasses.fields(cell_config):
        value = getattr(cell_config, field.name)
        if value != getattr(base_config, field.name) and field.name != "warmup":
            assert getattr(simam.config.FAST, field.name) == value, field.name
        elif field.name == "warmup" and value != base_config.warmup:
            cell_share = value / cell_config.iterations
            assert simam.config.FAST.warmup / simam.config.FAST.iterations == cell_share

# %% [markdown]
# How many iterations fit was measured, not guessed: one run of the fast recipe on the held-out
# split, with nothing else on the CPU, timed from the command's start to its exit
# (`results/fast/sizing`). The test split is read only by the fast study's own runs, planned
# before them (`results/plans/fast.toml`): three seeds of each setting, each run alone on the
# CPU, and a target for each, 90.0% final test accuracy in 15 minutes and 91.5% in 30, fixed in
# the plan. The study's table fills in as its runs are committed.

# %%
sizing = read_final(RESULTS / "fast" / "sizing")
command = json.loads((RESULTS / "fast" / "sizing" / "command.json").read_text())
per_iteration = sizing["train_seconds"] / sizing["iterations"]
print(
    f"sizing run on {sizing['device']}: {sizing['iterations']:,} iterations, "
    f"{100 * sizing['final_holdout_accuracy']:.2f}% on the held-out images; "
    f"trained {sizing['train_seconds']:.0f} s ({per_iteration:.3f} s an iteration), "
    f"whole command {command['command_seconds']:.0f} s"
)
around = command["command_seconds"] - sizing["train_seconds"]
for recipe in (simam.config.FAST, simam.config.FAST_30):
    print(
        f"{recipe.recipe}: {recipe.iterations:,} iterations, about "
        f"{recipe.iterations * per_iteration + around:.0f} s for the whole command"
    )
fast_verdict = next(
    found for found in experiments.judge_studies(RESULTS) if found.study.name == "fast"
)
display(
    Markdown(
        targets.target_caption(fast_verdict) + "\n" + targets.target_table(fast_verdict)
    )
)
for recipe in (simam.config.FAST, simam.config.FAST_30):
    low, high = simam.course.estimated_gpu_minutes(recipe)
    print(f"{recipe.recipe} on a T4: about {low:.0f} to {high:.0f} minutes a run")
assert simam.config.FAST.iterations * per_iteration + around < 900

# %% [markdown]
# ## 9. The same from the command line
#
# The notebook called `simam.train.train`; the command `python -m simam.train` (installed as
# `simam-train`) builds the same `Config` from its options, starting from `--recipe` and
# overriding only what is given. The paper recipe, one folder per network:
#
# ```sh
# python -m simam.train --model resnet20 --attention none --recipe paper --seed 0 \
#     --out runs/resnet20-none-paper-seed0
# python -m simam.train --model resnet20 --attention simam --recipe paper --seed 0 \
#     --out runs/resnet20-simam-paper-seed0
# ```
#
# A run that was stopped continues with `--resume` added to the same command. The quick-mode run
# of this notebook is:
#
# ```sh
# python -m simam.train --model resnet20 --attention simam --recipe quick --seed 0 \
#     --iterations 160 --batch-size 32 --lr 0.05 --warmup 32 --subset 5000 --test-subset 1000 \
#     --eval-every 40 --checkpoint-every 80 --no-amp --threads 1 --download \
#     --out build/resnet20-simam-quick-seed0
# ```
#
# and `python -m simam.train --help` lists every option with its default in each recipe.

# %% [markdown]
# ## What this chapter established
#
# - The paper's recipe and the course's quick recipe are `Config` objects of the package; one
#   function, `simam.train.train`, trains either and writes the files that the curves and tables
#   are read back from, and a run stopped and resumed on the CPU ends bit for bit where an
#   uninterrupted one ends (section 6).
# - In the course's committed grid of the quick recipe, the mean of 10 seeds of ResNet-20 with
#   SimAM lies above the plain network's, and Welch's 95% interval of the difference lies above
#   zero (section 4 prints both; [chapter 6](06_results_and_attention_maps.ipynb) explains why its
#   verdict calls the gain only nominally established). Single pairs of those runs range from the
#   plain network ahead to more than twice the mean gain (section 5).
# - A gain of that size is invisible in one run: section 5 computes from the spread between seeds
#   how many runs per network show it, and chapter 6 judges the grid that has them.
# - A short run on a CPU shows that the machinery works and how fast it is, not which network is
#   better.
# - On a 2-core CPU a training step reaches a smaller fraction of a large matrix product's rate
#   than its convolutions alone do (section 7 prints both): the rest of the step is memory-bound
#   work between the convolutions, and neither splitting the run between two processes, nor
#   channels_last, nor compiling the whole model wins it back.
# - Of the twelve changes to the quick recipe that the tricks study screened on held-out images,
#   its rule adopted two, translations and a higher peak rate; they make the fast recipe, sized to
#   a quarter of an hour of a 2-core CPU by measurement. Whether it reaches its targets is the fast
#   study's verdict, on the test split (section 8).

# %% [markdown]
# ## Exercises
#
# Each solution is a folded cell right after its exercise that checks its answer; open it after
# trying. Exercises 5 and 6 ask you to build and to break something, and run in seconds.
#
# **Exercise 1 (the one-cycle schedule).** The quick recipe's learning rate rises linearly for
# `QUICK_RECIPE.warmup` steps, then falls linearly towards zero. At which step is it highest, and
# what is it at the last step? Check with `simam.train.learning_rate`.

# %% jupyter={"source_hidden": true} tags=["solution"]
# The peak is step warmup - 1; the last step uses lr / (iterations - warmup + 1).
rates = [learning_rate(QUICK_RECIPE, step) for step in range(QUICK_RECIPE.iterations)]
peak = max(range(len(rates)), key=rates.__getitem__)
assert peak == QUICK_RECIPE.warmup - 1 and math.isclose(rates[peak], QUICK_RECIPE.lr)
assert math.isclose(
    rates[-1], QUICK_RECIPE.lr / (QUICK_RECIPE.iterations - QUICK_RECIPE.warmup + 1)
)
print(f"highest at step {peak}: {rates[peak]:g}; last step: {rates[-1]:.2e}")

# %% [markdown]
# **Exercise 2 (what an epoch is).** Section 1 counts epochs as the images seen over the 50,000
# training images, which gives the quick recipe its 8.19 epochs. The committed runs of section 3
# report 8.2 epochs (their `final.json` holds a little more, in four decimals). Where does the
# difference come from? Compute the trainer's number for the quick recipe and for the paper's,
# and check the first against a committed `final.json`.

# %% jupyter={"source_hidden": true} tags=["solution"]
# The loader drops the last incomplete batch of every epoch: an epoch is 50,000 // 128 =
# 390 batches, 49,920 images, and the trainer counts iterations / 390.
batches_per_epoch = CIFAR10_TRAIN_IMAGES // QUICK_RECIPE.batch_size
quick_epochs, paper_epochs = (
    round(recipe.iterations / batches_per_epoch, 4) for recipe in (QUICK_RECIPE, PAPER)
)
if finished:  # the committed seed-0 runs of section 3
    assert quick_epochs == read_final(finished["simam"])["epochs"]
print(
    f"{batches_per_epoch} batches an epoch: quick recipe {quick_epochs} epochs "
    f"(images seen / 50,000: {epochs(QUICK_RECIPE.iterations, 128):.4f}), "
    f"paper {paper_epochs} (against {epochs(PAPER.iterations, 128):.2f})"
)

# %% [markdown]
# **Exercise 3 (a wider spread).** Section 5 computed the runs per network needed to detect the
# paper's 0.40-point gain. How many would it take if both standard deviations were twice as large?
# Derive the factor before computing.

# %% jupyter={"source_hidden": true} tags=["solution"]
# n grows with the sum of the variances: twice the deviations, four times the runs
# (before rounding up).
doubled = seeds_needed(2 * sd_plain, 2 * sd_simam, gain, alpha, power)
assert 4 * (runs_needed - 1) < doubled <= 4 * runs_needed
print(f"{doubled} runs per network (with Table 2's deviations: {runs_needed})")

# %% [markdown]
# **Exercise 4 (the test set's noise).** A test set of $N = 10{,}000$ images and an accuracy near
# 92%: what is the binomial standard error of one measured accuracy, in points, and how does it
# compare with the seed-to-seed spread of 0.19 points?

# %% jupyter={"source_hidden": true} tags=["solution"]
# sqrt(p (1 - p) / N), in points.
test_set_se = 100 * math.sqrt(0.92 * 0.08 / 10_000)
assert 0.27 < test_set_se < 0.28
print(f"{test_set_se:.3f} points, larger than the seed-to-seed 0.19")

# %% [markdown]
# **Exercise 5 (a training loop of your own).** The first row of the `metrics.jsonl` of section
# 6's uninterrupted run holds, at iteration 20, the mean training loss of its first 20 steps and
# the test loss after them. Write those 20 steps without `simam.train.train` and reproduce both.
# Take from the package only what is not the loop: `simam.seed_everything(config.seed)`, then the
# network, `simam.config.build_model(config)`, then the two loaders,
# `simam.train.load_data(config)` (the trainer fills in `data_root=str(simam.data_root())`; you
# must too), and `simam.train.learning_rate(config, step)`. Write the optimiser (SGD with momentum
# and Nesterov's look-ahead; weight decay only on the parameters with more than one dimension), the
# loss (cross-entropy with the configuration's label smoothing) and the loop yourself; the loader's
# epoch has 16 batches, so carry on into the next one. Before running, predict the first step's
# loss: a freshly initialised network gives every class about the same probability. Then compare
# your mean training loss, and your test loss, with the trainer's. For the test loss call
# `simam.train.evaluate(model, model, test_loader, None)["test_loss"]`: the network is passed
# twice, once as the function that computes the logits and once as the module that is switched to
# evaluation mode, and `None` asks for no mixed precision. They can agree to the last bit, if you
# add up the training losses as the trainer does, one at a time into a float32 tensor. The
# trainer ran this configuration on one thread; what happens if you run yours on two?

# %% jupyter={"source_hidden": true} tags=["solution", "nbval-ignore-output"]
# The same seed, the same order of construction and the same arithmetic (one thread,
# float32, the losses summed one by one in a float32 tensor as the trainer sums them)
# give the trainer's numbers to the last bit. On two threads the convolutions can add
# in another order, and a difference in the last bit grows from step to step.
config = dataclasses.replace(small_config, data_root=str(simam.data_root()))


def first_steps(threads: int) -> dict[str, float]:
    """The first eval_every steps of ``config`` on ``threads`` threads: the first
    step's loss, the mean training loss and the test loss after them."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    simam.seed_everything(config.seed)
    model = simam.config.build_model(config)
    train_loader, test_loader = simam.train.load_data(config)
    decayed = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [
            {"params": decayed, "weight_decay": config.weight_decay},
            {"params": others, "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
    )
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    batches = itertools.chain.from_iterable(itertools.repeat(train_loader))
    loss_sum, first_loss = torch.zeros(()), None
    model.train()
    for step, (images, labels) in zip(range(config.eval_every), batches):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss = criterion(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        first_loss = loss.item() if first_loss is None else first_loss
    test = simam.train.evaluate(model, model, test_loader, None)
    torch.set_num_threads(before)
    return {
        "first_loss": first_loss,
        "train_loss": loss_sum.item() / config.eval_every,
        "test_loss": test["test_loss"],
    }


theirs = read_metrics(uninterrupted)[0]
ours = {threads: first_steps(threads) for threads in (1, 2)}
print(f"first step's loss {ours[1]['first_loss']:.4f}; ln 10 = {math.log(10):.4f}")
for key in ("train_loss", "test_loss"):
    print(
        f"{key} at iteration 20: the trainer's {theirs[key]:.7f}, ours on one thread "
        f"{ours[1][key]:.7f}, on two {ours[2][key]:.7f}"
    )
assert abs(ours[1]["first_loss"] - math.log(10)) < 0.25
assert all(ours[1][key] == theirs[key] for key in ("train_loss", "test_loss"))

# %% [markdown]
# **Exercise 6 (break the resume).** Section 6 printed what a checkpoint holds. Stop a run of
# `small_config` after 25 steps again (`stopped_after`), make two copies of its folder, and before
# resuming each, load its `checkpoint.pt`, change one entry and save it back. In the first, empty
# the optimiser's state (`checkpoint["optimizer"]["state"] = {}`: the momentum is forgotten). In
# the second, replace the saved random generators (`"rng"` and `"rng_by_rank"`) by those of another
# seed: `torch.manual_seed(1)`, then `simam.train.rng_states()`. For each, predict whether the
# resumed run still ends bit for bit where the uninterrupted one does, then measure with
# `same_run`. Explain the second answer: which networks would give the other one?

# %% jupyter={"source_hidden": true} tags=["solution"]
# Forgetting the momentum changes the first update after the resume, and everything
# after it. The global generators change nothing here: after the network is built,
# nothing draws from them. The loader has a generator of its own, saved under "loader",
# and ResNet-20 has no random layer; a network with dropout or stochastic depth would
# differ.
broken = small_root / "broken"
with contextlib.redirect_stdout(io.StringIO()):  # the trainer's own lines
    stopped_after(small_config, broken, steps=25)
results = {}
for change in ("momentum forgotten", "other random generators"):
    copy = small_root / change.replace(" ", "-")
    shutil.copytree(broken, copy)
    saved = torch.load(copy / CHECKPOINT, weights_only=True)
    if change == "momentum forgotten":
        saved["optimizer"]["state"] = {}
    else:
        torch.manual_seed(1)
        saved["rng"] = simam.train.rng_states()
        saved["rng_by_rank"] = [saved["rng"]]
    torch.save(saved, copy / CHECKPOINT)
    with contextlib.redirect_stdout(io.StringIO()):
        simam.train.train(small_config, copy, resume=True)
    results[change] = same_run(copy, uninterrupted)
    print(f"{change}: {results[change]}")
assert not any(results["momentum forgotten"].values())
assert all(results["other random generators"].values())
