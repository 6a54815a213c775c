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
# CIFAR-10 twice, once plain (`attention="none"`) and once with SimAM at the end of every residual
# branch, from the same seed. Everything goes through one function of the package,
# `simam.train.train(config, out)`, and one configuration object, `simam.config.Config`:
#
# 1. **The recipes.** The paper's CIFAR recipe (section 4.1) as a `Config`, its learning-rate
#    schedule, and the quick recipe that the course uses when there is no GPU, with the reason and
#    the source of each choice.
# 2. **The run.** On a GPU the quick recipe on all of CIFAR-10, minutes per network on a
#    T4-class GPU (section 2 estimates them), into folders of `runs/` (or of `$SIMAM_RUNS`) that survive a dead session. In quick mode (CI, or no GPU)
#    a short demonstration of the trainer on the real CIFAR-10 that keeps the whole chapter within
#    about three minutes of a 2-core CPU. The paper's 64,000-iteration recipe is one command away
#    (section 7).
# 3. **The curves and the numbers**, read back from the files each run wrote.
# 4. **Trained once.** The course's real runs of the quick recipe, made by a command and committed
#    under `results/`: their curves, and the spread between their seeds.
# 5. **What one run can show.** The paper's gain from SimAM on ResNet-20 / CIFAR-10 is 0.4 points
#    (92.73 ± 0.18 against 92.33 ± 0.19 over 5 runs). We compute how large the noise of a single
#    run is next to that, and how many runs it takes to see such an effect.
# 6. **Resuming** a run, and (7) the same runs from the command line.
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
import json
import math
import tempfile
import time
from pathlib import Path
from statistics import NormalDist

import matplotlib.pyplot as plt
import torch

import simam
import simam.config
import simam.course
import simam.train
from simam import experiments
from simam.config import PAPER
from simam.paper_results import paper_accuracy
from simam.plots import plot_training_curves
from simam.runs import FINAL, read_metrics
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
# Section 4.1 of the paper trains every CIFAR network the same way, the way He et al. (2016)
# trained the original CIFAR ResNets: SGD with momentum 0.9 and weight decay $5\cdot10^{-4}$,
# batches of 128 images, a learning rate of 0.1 divided by 10 at iterations 32,000 and 48,000,
# and 64,000 iterations in all. Each training image is padded by 4 pixels on every side, a random
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
# 64,000 iterations of ResNet-20 are work for a GPU: on a 2-core CPU they take about five hours
# (computed below). `simam.config.QUICK` is what the package does with a quarter of an hour of such a
# CPU: about eight epochs, sized at the speed printed below. Two things make that quarter of an
# hour go far. The trainer computes in bfloat16 where the CPU does so natively (AVX-512 BF16 or
# AMX), and it compiles SimAM's formula into one fused kernel per shape, to shrink SimAM's share
# of the step. How much either saves depends on the CPU: `python -m simam.bench train` and
# `python -m simam.bench compile_simam` measure it on yours, side by side. The recipe itself
# changes only the optimisation, never the network, and each change is a standard trick for short
# runs:
#
# - **One-cycle schedule** (Smith and Topin, *Super-Convergence*, 2019): the rate rises linearly to
#   a peak above the paper's (0.2) over the first 20% of the run, a warm-up as Goyal et al. (2017)
#   use before a large rate, then falls linearly to almost zero. A short run with a step schedule
#   would stop while the rate is still high and the weights still noisy; this one ends annealed.
# - **Nesterov momentum** (Sutskever et al., ICML 2013): the gradient taken at the look-ahead
#   point is a little better behaved at high learning rates.
# - **No weight decay on batch-norm scales and shifts and on biases** (He et al., *Bag of Tricks*,
#   CVPR 2019, section 3.1): decay regularises the weights that can overfit, and these are few.
# - **Label smoothing 0.1** (Szegedy et al., CVPR 2016): the training targets put 0.9 on the true
#   class and share 0.1 among all ten, which keeps the logits from growing without bound early on.
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
# Both networks are trained from the same seed. The seed fixes the initial weights, the order of
# the batches and every crop and flip. SimAM has no parameters, so with the same seed the two
# networks start from *identical* weights and see identical batches: the one difference between
# the runs is the SimAM operation in each block. The next cell checks the first half of that
# claim.

# %%
SEED = 0
initial = {}
for attention in ("none", "simam"):
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
# **On a GPU** the configuration is the quick recipe itself, on the whole training set and
# evaluated on all 10,000 test images: the same runs as `python -m simam.train --recipe quick`,
# so their numbers compare directly with the CPU runs that [chapter 6](06_results_and_attention_maps.ipynb) summarises. Each run writes
# into a folder of `simam.settings.runs_root()` (`runs/`, or the folder `SIMAM_RUNS` names) and
# checkpoints as it goes; the cell passes `resume=True`, so when a
# Colab session dies in the middle, running the cell again continues both runs from their last
# checkpoint, and running it on finished runs only reads them back. (A Colab virtual machine takes
# its disk with it when it is recycled: to keep checkpoints across machines, mount Google Drive and
# set `SIMAM_RUNS` to a folder on it before this cell, e.g.
# `os.environ["SIMAM_RUNS"] = "/content/drive/MyDrive/simam-runs"`.) How long that takes on a T4, the GPU of a free Colab session,
# is estimated in the next cell; the paper's 64,000-iteration runs are left to the command line
# (section 7).
#
# **In quick mode** the chapter has about three minutes of a 2-core CPU, shared with everything
# else, for two runs: a demonstration of the trainer, not trained networks. `dataclasses.replace`
# overrides a recipe's fields and keeps the rest, which is how any variation of a recipe is
# written. Starting from `QUICK`:
#
# - 160 iterations of 32 images (under a minute per network at one thread).
#   Smaller batches give more steps for the same images, and a short run gains from steps. The
#   peak learning rate is scaled with the batch, $0.2 \cdot 32/128 = 0.05$: the linear scaling
#   rule of Goyal et al. (2017). The warm-up stays 20% of the run.
# - A class-balanced subset of 5,000 training images (500 per class), so that the 160 iterations
#   make about one epoch rather than a tenth of one.
# - Evaluation on a class-balanced 1,000 of the 10,000 test images every 40 iterations. A forward
#   pass costs roughly a third of a training step (the backward pass costs about twice the
#   forward), so four evaluations on all 10,000 images would take longer than the training.
# - One thread and float32, so that the runs do the same arithmetic on every CPU that they can:
#   the accuracies still differ in the last digits between CPU models and instruction sets, so
#   the cells that print them are not compared when the notebook is tested, and asserts check
#   what must hold anywhere instead.
#
# The runs go into a fresh temporary folder, so executing the notebook again starts afresh and
# nothing is written into the repository. Both configurations set `download=True`: where CIFAR-10 is
# not yet under `simam.data_root()` (on Colab, say), the first run fetches the official archive.

# %%
ATTENTIONS = ("none", "simam")
if QUICK:
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
# `simam.course.estimated_gpu_minutes`. On a GPU the trainer compiles the whole network
# (`torch.compile`) during its first steps, and how long that takes is not measured here: the
# estimate adds an assumed 30 s to 3 minutes per run (`simam.course.GPU_COMPILE_SECONDS`: the low
# end when inductor's on-disk cache already holds the network's kernels, the high end from cold on
# two CPU cores, as Colab has) and prints the range. Data loading and start-up are left out; on a
# real GPU the timing cell below prints what the runs took.

# %%
flops_per_image = simam.models.training_flops_per_image(
    simam.create_model("resnet20", attention="simam")
)
gpu_config = dataclasses.replace(simam.config.QUICK, seed=SEED, attention="simam")
low, high = simam.course.estimated_gpu_minutes(gpu_config, runs=len(ATTENTIONS))
print(f"training FLOPs per image (forward and backward): {flops_per_image / 1e6:.0f} M")
print(
    f"GPU mode: {len(ATTENTIONS)} runs of "
    f"{gpu_config.iterations * gpu_config.batch_size:,} "
    f"training images -> about {low:.0f} to {high:.0f} minutes on a T4 at "
    f"{simam.course.T4_ACHIEVED_FLOPS / 1e12:g} TFLOP/s, compilation included"
)

# %% [markdown]
# The training itself. `train` prints one line per evaluation and returns what it wrote into
# `final.json`. Its output holds wall-clock times, so this cell's output is not compared when the
# notebook is tested; the numbers that matter are printed again, from the files, below.

# %% tags=["nbval-ignore-output"]
finals = {}
for attention in ATTENTIONS:
    config = dataclasses.replace(run_config, attention=attention)
    finals[attention] = simam.train.train(config, run_folders[attention], resume=True)

# %% [markdown]
# ## 3. Curves and numbers
#
# Everything below is read from the run folders: `metrics.jsonl` holds one line per evaluation,
# `final.json` the summary. `plot_training_curves` draws the test accuracy, the two losses and the
# learning rate. The training loss (dashed) is the mean over the iterations since the previous
# evaluation and includes label smoothing, which puts a floor under it; the test loss (solid) is
# plain cross-entropy.

# %%
figure = plot_training_curves(
    [run_folders[attention] for attention in ATTENTIONS],
    labels=[f"ResNet-20 + {attention}" for attention in ATTENTIONS],
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

# The accuracies differ in their last digits from one CPU model or GPU to another, so
# this cell's output is not compared when the notebook is tested; these checks hold on
# every machine.
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
    # 160 quick iterations: well above chance (about 30%); the whole quick recipe:
    # about 88%
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
# that section 1 used. Time and speed vary from one execution to the next, so they get a cell of
# their own:

# %% tags=["nbval-ignore-output"]
for attention in ATTENTIONS:
    final = stored[attention]
    print(
        f"ResNet-20 + {attention:<6} wall time {final['wall_seconds']:7.1f} s, "
        f"training {final['train_images_per_second']:7.1f} images/s "
        f"on {final['device']}"
    )
slowdown = (
    stored["none"]["train_images_per_second"]
    / stored["simam"]["train_images_per_second"]
)
print(
    f"SimAM's cost in training speed here: the plain network is {slowdown:.2f}x as fast"
)

# %% [markdown]
# ## 4. Trained once: the course's runs of the quick recipe
#
# The runs above are a demonstration. The networks that the course presents as trained come from
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
# Each run is the whole quick recipe on all of CIFAR-10, evaluated on all 10,000 test images. Its
# small files are committed: a line in `results/results.jsonl`, and `metrics.jsonl` and
# `final.json` in `results/runs/<run-id>/`. This section reads them; nothing here trains. A grid
# that is not finished yet shows what it has.

# %%
RESULTS = simam.zoo.DEFAULT_RESULTS  # results/ of this checkout of the course
committed = {
    attention: RESULTS / "runs" / f"cifar10-resnet20-{attention}-quick-seed0"
    for attention in ATTENTIONS
}
finished = {
    attention: folder
    for attention, folder in committed.items()
    if (folder / FINAL).is_file()
}
for attention, folder in finished.items():
    final = json.loads((folder / FINAL).read_text())
    print(
        f"ResNet-20 + {attention:<6} {final['iterations']:,} iterations "
        f"({final['epochs']:.1f} epochs): "
        f"final test accuracy {100 * final['final_test_accuracy']:.2f}% "
        f"(flip-averaged {100 * final['final_test_accuracy_flip']:.2f}%), "
        f"{final['wall_seconds'] / 60:.1f} minutes at "
        f"{final['train_images_per_second']:.0f} images/s on {final['device']}"
    )
for attention in [attention for attention in ATTENTIONS if attention not in finished]:
    print(f"ResNet-20 + {attention}: not yet run (the command above trains it)")
if finished:
    figure = plot_training_curves(
        list(finished.values()),
        labels=[f"ResNet-20 + {a}, quick recipe" for a in finished],
    )
    plt.show()

# %% [markdown]
# Every seed of the grid gives one more final accuracy per network. With two or more seeds of
# both networks, their spread gives the power computation of the next section a second answer,
# beside the one from the paper's spread:

# %%
grid_cells = [
    cell
    for cell in experiments.summarise(experiments.read_results(RESULTS))
    if cell.model == "resnet20"
    and cell.recipe == "quick"
    and not cell.overrides
    and cell.lambda_ in (None, 1e-4)
    and cell.place is None
]
by_attention = {cell.attention: cell for cell in grid_cells}
for attention in ATTENTIONS:
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
else:
    print(
        "fewer than two seeds per network so far: "
        "the next section uses the paper's spread only"
    )

# %% [markdown]
# ## 5. What one run can and cannot show
#
# The paper reports, for ResNet-20 on CIFAR-10, $92.33 \pm 0.19$ without attention and
# $92.73 \pm 0.18$ with SimAM: means and standard deviations over $n = 5$ runs each (Table 2;
# [chapter 6](06_results_and_attention_maps.ipynb) reproduces the whole table with `python -m simam.experiments`). How does a gain of
# $G = 0.40$ points compare with the noise?
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
RUNS_IN_PAPER = (
    5  # ResNet-20 on CIFAR-10, Yang et al. 2021, Table 2, read from simam.paper_results
)
(mean_plain, sd_plain), (mean_simam, sd_simam) = (
    paper_accuracy("cifar10", "resnet20", a) for a in ("none", "simam")
)
gain = mean_simam - mean_plain
variance_sum = sd_plain**2 + sd_simam**2


def difference_se(n: int) -> float:
    """Standard error (points) of the difference of two means of n runs each."""
    return math.sqrt(variance_sum / n)


print(f"gain in the paper: {gain:.2f} points")
for n in (1, 2, 5, 10):
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
#   asks for 4 runs per network to find 0.4 points with 80% power at the 5% level; finding a 0.1-point
#   gain would take 54 runs per network. The quick recipe's runs scatter more than the paper's (the
#   grid's spread, section 4), so the same 0.4 points need more seeds there: the last of those lines,
#   computed by `experiments.grid_seeds_needed`, the function [chapter 6](06_results_and_attention_maps.ipynb) applies to the same grid.
# - **One run per network cannot show it.** The difference of two single runs has a standard error
#   of about 0.26 points, so a 0.4-point gain is 1.5 standard errors: a single pair of runs finds it
#   at the 5% level only a third of the time, and puts the plain network ahead in about one pair
#   in sixteen.
# - **The test set is a sample too.** 10,000 images measure one model's accuracy to within about
#   0.26 to 0.27 points (one standard error, as printed above), already the size of the seed-to-seed spread. Both networks
#   are tested on the *same* images, which cancels part of this noise when they are compared (a
#   paired comparison, as McNemar's test makes), but it is why differences of a tenth of a point
#   between CIFAR-10 papers mean little.
#
# The quick run of this notebook is much further from the question. Its numbers, computed:

# %% tags=["nbval-ignore-output"]
quick_accuracy = {
    attention: stored[attention]["final_test_accuracy"] for attention in ATTENTIONS
}
tested = run_config.test_subset or 10_000
for attention, p in quick_accuracy.items():
    print(
        f"ResNet-20 + {attention:<6} {100 * p:.1f}% on {tested:,} test images, "
        f"binomial standard error {100 * math.sqrt(p * (1 - p) / tested):.1f} points"
    )
observed = 100 * (quick_accuracy["simam"] - quick_accuracy["none"])
binomial_se = 100 * math.sqrt(
    sum(p * (1 - p) for p in quick_accuracy.values()) / tested
)
print(
    f"observed difference (SimAM - plain): {observed:+.1f} points, "
    f"{observed / binomial_se:+.1f} binomial standard errors "
    "(test-set noise alone, seed noise not counted)"
)
simam_ahead = sum(
    s["test_accuracy"] > n["test_accuracy"] for s, n in zip(rows["simam"], rows["none"])
)
print(
    f"SimAM ahead at {simam_ahead} of the {len(rows['simam'])} "
    "evaluations along the way"
)
# p(1 - p) <= 1/4 for each network
assert 0 < binomial_se <= 100 * math.sqrt(0.5 / tested)

# %% [markdown]
# What this run **can** show:
#
# - the whole pipeline works on the real data, from the official files to a `final.json`, for both
#   networks, and the loss falls;
# - SimAM adds no parameter, and two runs from one seed start from the same weights and see the
#   same batches;
# - what SimAM costs in training speed on this hardware (the timing cell above; on a shared CPU
#   that ratio is itself noisy, [chapter 4](04_baselines.ipynb) measures it properly).
#
# What it **cannot** show is whether SimAM helps. In quick mode the networks stopped after about
# one epoch (the configuration cell of section 2 prints the count), far below the 92% where the
# paper's 0.4 points were measured, and the effect of an attention module early in training need
# not be the effect at the end. The binomial noise of the few test images they are scored on in
# quick mode, printed above, is several times the effect in question; there is one seed per network,
# so the seed-to-seed spread, which is also larger at this stage of training, cannot even be
# estimated. Whatever sign the difference above has, and however often the lead changed along the
# curves, it is not evidence for or against the paper. On a GPU the same cell trains the whole quick
# recipe on all the images: one run per network then gives two numbers to set beside the course's
# grid of section 4, several points below Table 2 as every quick-recipe run is (about 8 epochs,
# not the paper's 164). Whether SimAM *beats* the baseline needs several seeds per network: chapter
# 6 judges the course's grid.

# %% [markdown]
# ## 6. Resuming a run
#
# A run folder holds `checkpoint.pt`: the weights, the optimiser's momentum, every random
# generator and the loader's place in its epoch. `train(config, out, resume=True)` continues from it,
# and on the CPU the result is bit-identical to a run that was never interrupted (the package's
# tests check this). On a finished run it has nothing left to do: it loads the checkpoint, trains
# no step and writes the same results again. That is what makes the training cell above safe to
# run again. Any field that defines the run must match the checkpoint's (the number of iterations
# among them); a different one is an error, not a silent new run. Fields that only say how the run
# is watched or where it runs (`RUN_FIELDS` above) may change.

# %% tags=["nbval-ignore-output"]
start = time.perf_counter()
again = simam.train.train(
    dataclasses.replace(run_config, attention="simam"),
    run_folders["simam"],
    resume=True,
)
print(f"resumed a finished run in {time.perf_counter() - start:.1f} s")

# %% tags=["nbval-ignore-output"]
assert again["iterations"] == finals["simam"]["iterations"] == run_config.iterations
assert again["final_test_accuracy"] == finals["simam"]["final_test_accuracy"]
metrics_unchanged = read_metrics(run_folders["simam"]) == rows["simam"]
print(
    f"after resume=True: {again['iterations']:,} iterations, final test accuracy "
    f"{100 * again['final_test_accuracy']:.1f}% "
    f"(before: {100 * finals['simam']['final_test_accuracy']:.1f}%), "
    f"metrics file unchanged: {metrics_unchanged}"
)
assert metrics_unchanged

# %% [markdown]
# ## 7. The same from the command line
#
# The notebook called `simam.train.train`; the command `python -m simam.train` (installed as
# `simam-train`) builds the same `Config` from its options, starting from `--recipe` and
# overriding only what is given. The paper recipe, one folder per network:
#
# ```sh
# python -m simam.train --model resnet20 --attention none  --recipe paper --seed 0 --out runs/resnet20-none-paper-seed0
# python -m simam.train --model resnet20 --attention simam --recipe paper --seed 0 --out runs/resnet20-simam-paper-seed0
# ```
#
# A run that was killed continues with `--resume` added to the same command. The quick-mode runs of
# this notebook are:
#
# ```sh
# python -m simam.train --model resnet20 --attention simam --recipe quick --seed 0 \
#     --iterations 160 --batch-size 32 --lr 0.05 --warmup 32 --subset 5000 --test-subset 1000 \
#     --eval-every 40 --checkpoint-every 80 --no-amp --threads 1 --out build/resnet20-simam-quick-seed0
# ```
#
# and `python -m simam.train --help` lists every option with its default in each recipe.

# %% [markdown]
# ## What this chapter established
#
# - The paper's recipe and the course's quick recipe are `Config` objects of the package; one
#   function, `simam.train.train`, trains either, resumes a killed run exactly and writes files that
#   the curves and tables are read back from.
# - The course's committed runs of the quick recipe differ between ResNet-20 with and without SimAM
#   by about half a point on average over 10 seeds each (section 4 prints it), the scale of the
#   paper's own gain, while one pair of seeds can differ by a whole point.
# - A gain of that size is invisible in one run: section 5 computes from the spread between seeds
#   how many runs per network show it, and [chapter 6](06_results_and_attention_maps.ipynb) judges
#   the grid that has them.

# %% [markdown]
# ## Exercises
#
# 1. The quick recipe's learning rate rises linearly for `QUICK_RECIPE.warmup` steps, then falls linearly
#    towards zero. At which step is it highest, and what is it at the last step? Check with
#    `simam.train.learning_rate`.
# 2. How many epochs of CIFAR-10's 50,000 training images does the quick recipe see, and how many
#    the paper's (64,000 iterations of 128 images)?
# 3. Section 5 computed the runs per network needed to detect the paper's 0.40-point gain. How many
#    would it take if both standard deviations were twice as large? Derive the factor before computing.
# 4. A test set of $N = 10{,}000$ images and an accuracy near 92%: what is the binomial standard error
#    of one measured accuracy, in points, and how does it compare with the seed-to-seed spread of
#    0.19 points?

# %% jupyter={"source_hidden": true} tags=["solution"]
# 1. The peak is step warmup - 1; the last step uses lr / (iterations - warmup + 1).
rates = [learning_rate(QUICK_RECIPE, step) for step in range(QUICK_RECIPE.iterations)]
assert max(
    range(len(rates)), key=rates.__getitem__
) == QUICK_RECIPE.warmup - 1 and math.isclose(
    rates[QUICK_RECIPE.warmup - 1], QUICK_RECIPE.lr
)
assert math.isclose(
    rates[-1], QUICK_RECIPE.lr / (QUICK_RECIPE.iterations - QUICK_RECIPE.warmup + 1)
)
print(
    f"1. highest at step {QUICK_RECIPE.warmup - 1}: {QUICK_RECIPE.lr:g}; "
    f"last step: {rates[-1]:.2e}"
)
# 2. Epochs are images seen over the training set's size.
quick_epochs, paper_epochs = (
    QUICK_RECIPE.iterations * QUICK_RECIPE.batch_size / 50_000,
    PAPER.iterations * PAPER.batch_size / 50_000,
)
assert math.isclose(paper_epochs, 163.84)
print(f"2. quick recipe {quick_epochs:.1f} epochs, paper {paper_epochs:.1f}")
# 3. n grows with the sum of the variances: twice the deviations, four times the runs
#    (before rounding up).
doubled = seeds_needed(2 * sd_plain, 2 * sd_simam, gain, alpha, power)
assert 4 * (runs_needed - 1) < doubled <= 4 * runs_needed
print(f"3. {doubled} runs per network (one deviation each: {runs_needed})")
# 4. sqrt(p (1 - p) / N), in points.
binomial_se = 100 * math.sqrt(0.92 * 0.08 / 10_000)
assert 0.27 < binomial_se < 0.28
print(f"4. {binomial_se:.3f} points, larger than the seed-to-seed 0.19")

