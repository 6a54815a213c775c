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
# # SimAM on one page
#
# SimAM (Yang, Zhang, Li and Xie, ICML 2021) is an attention module with no parameters: it
# multiplies every neuron of a feature map by a weight between $\operatorname{sigmoid}(1/2)$ and 1
# that says how far the neuron stands out from the other neurons of its channel. This page is the
# course in brief: the formula, the code, where the module goes in a residual block, its one
# setting $\lambda$, and what the course measured. Every number on it is printed by a cell below.
# The six chapters derive, build, compare and train what this page states; the list at the end says
# where each thing is shown.
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
import operator

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

import simam
from simam import experiments
from simam.config import RECIPES
from simam.course import verdicts
from simam.paper_results import PAPER_LAMBDA, PAPER_TABLE2

QUICK = simam.quick_mode()
print(
    f"quick mode: {QUICK} (nothing on this page trains, so both modes print the same)"
)

# %% [markdown]
# ## 1. The formula
#
# Take one channel of a feature map, with $M = H \cdot W$ neurons, and one neuron $t$ of it. Let
# $\hat\mu$ be the channel's mean, $d = t - \hat\mu$ the neuron's deviation from it,
# $S = \sum_{i=1}^{M} (x_i - \hat\mu)^2$ the channel's sum of squared deviations, and
# $s^2 = S/(M-1)$ its variance as the authors' reference code computes it. The importance of $t$
# is
#
# $$\frac{1}{e_t^*} = \frac{(t - \hat\mu)^2}{4\,(s^2 + \lambda)} + \frac12 = \frac{d^2}{4\,(s^2 + \lambda)} + \frac12 ,$$
#
# its weight is $\operatorname{sigmoid}(1/e_t^*)$, and SimAM's output is every neuron times its weight,
# $x \cdot \operatorname{sigmoid}(1/e^*)$, for all channels and positions at once: a full 3-D weight,
# one per neuron.
#
# Where it comes from: $e_t^*$ is the smallest *energy* of neuron $t$, how well a straight line
# $w_t x + b_t$ can separate $t$ from the other neurons of its channel (equation 2 of the paper);
# the lower the energy, the more distinctive the neuron. [Chapter 1](01_energy_function.ipynb)
# derives the minimum from equation (2), finds a sign error in the printed equation (3), and shows
# that the paper's equation (5), with $\hat\sigma^2 = S/M$ in place of $s^2$, is an approximation
# of the exact leave-one-out energy; the package's default is the reference code's $s^2$, the form
# behind the paper's results. [Chapter 2](02_closed_form_vs_numeric.ipynb) checks the closed form
# against numerical minimisation, and [chapter 3](03_building_simam.ipynb) builds the module.
#
# ## 2. The code
#
# In plain PyTorch, for a batch of feature maps of shape $(N, C, H, W)$, the formula is five lines.
# The cell checks them against the package's module, `simam.SimAM()`, on a random tensor in double
# precision. (The package computes the same formula with a hand-written backward pass, and guards
# the cases where these five lines fail: $M = 1$ and 16-bit inputs, [chapter 3](03_building_simam.ipynb),
# section 5; constant channels with $\lambda = 0$, [chapter 2](02_closed_form_vs_numeric.ipynb), section 4.)

# %%
def simam_in_five_lines(x: torch.Tensor, lambda_: float = 1e-4) -> torch.Tensor:
    m = x.shape[2] * x.shape[3]  # M = H·W neurons per channel
    d = x - x.mean(dim=(2, 3), keepdim=True)  # d = t − μ̂, per sample and channel
    s2 = d.square().sum(dim=(2, 3), keepdim=True) / (m - 1)  # s² = S/(M−1)
    importance = d.square() / (4 * (s2 + lambda_)) + 0.5  # 1/e*
    return x * torch.sigmoid(importance)


module = simam.SimAM()
x = torch.randn(
    2, 16, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
)
TOLERANCE = 1e-12
difference = (simam_in_five_lines(x, module.lambda_) - module(x)).abs().max().item()
assert difference <= TOLERANCE, difference
assert module.lambda_ == PAPER_LAMBDA  # the paper's value on CIFAR
print(
    f"simam.SimAM(): lambda = {module.lambda_:g}, "
    f"{sum(p.numel() for p in module.parameters())} parameters"
)
print(
    f"the five lines and simam.SimAM() agree within {TOLERANCE:g} "
    f"on a {tuple(x.shape)} float64 tensor"
)

# %% [markdown]
# ## 3. Where it goes
#
# In the course's CIFAR ResNets, as in the authors' reference code, SimAM sits inside the residual
# branch, right after the $3 \times 3$ convolution whose output it weighs and before that
# convolution's batch norm: after `conv2` in a basic block (ResNet-20 to 110) and after the
# $3 \times 3$ `conv2` in a bottleneck block (ResNet-164). The shortcut and the final ReLU come
# after. The next cell reads the order of the steps from the package's own blocks with
# `torch.fx`, which traces each block's forward pass, and checks that place; the
# drawing after it is made from that same record. (SE, CBAM, ECA and GC go elsewhere, after the
# branch's last batch norm; [chapter 4](04_baselines.ipynb).)

# %%
class EveryModuleALeaf(torch.fx.Tracer):
    """Records each submodule as one step instead of tracing into it."""

    def is_leaf_module(self, module: torch.nn.Module, qualified_name: str) -> bool:
        return True


def block_steps(block: torch.nn.Module) -> list[str]:
    """The names of the block's steps, in the order its forward pass runs them."""
    graph = EveryModuleALeaf().trace(block)
    return [
        node.target if node.op == "call_module" else node.target.__name__
        for node in graph.nodes
        if node.op in ("call_module", "call_function")
    ]


def first_block(model_name: str) -> tuple[str, torch.nn.Module]:
    model = simam.create_model(model_name, attention="simam")
    return next(
        (name, module)
        for name, module in model.named_modules()
        if hasattr(module, "conv2")
    )


BLOCKS = {}
for model_name in ("resnet20", "resnet164"):
    block_name, block = first_block(model_name)
    steps = block_steps(block)
    simam_at = steps.index("attention")
    assert isinstance(block.attention, simam.SimAM)
    assert steps[simam_at - 1 : simam_at + 2] == ["conv2", "attention", "bn2"]
    # inside the residual branch, before the add
    assert simam_at < steps.index(operator.add.__name__)
    BLOCKS[model_name] = block, steps
    print(f"{model_name}, {block_name} ({type(block).__name__}): {' → '.join(steps)}")

# %% jupyter={"source_hidden": true}
def step_label(block: torch.nn.Module, step: str) -> str:
    if step in ("relu", "add"):
        return {"relu": "ReLU", "add": "+"}[step]
    module = block.get_submodule(step)
    if isinstance(module, torch.nn.Conv2d):
        return f"{step}: {module.kernel_size[0]}×{module.kernel_size[1]} conv"
    if isinstance(module, torch.nn.BatchNorm2d):
        return f"{step}: BN"
    return type(module).__name__


def draw_block(ax, block: torch.nn.Module, steps: list[str], title: str) -> None:
    """The block's steps top to bottom from the record, SimAM filled, the shortcut on
    the right."""
    add = steps.index("add")
    path = [
        "x",
        *(step_label(block, s) for s in steps[:add] if s != "shortcut"),
        "+",
        *(step_label(block, s) for s in steps[add + 1 :]),
        "out",
    ]
    for row, text in enumerate(path):
        y = -row
        colour = (
            "tab:orange"
            if text == "SimAM"
            else ("none" if text in ("x", "out") else "white")
        )
        ax.add_patch(
            FancyBboxPatch(
                (-1, y - 0.3),
                2,
                0.6,
                boxstyle="round,pad=0.02",
                facecolor=colour,
                edgecolor="none" if text in ("x", "out") else "black",
            )
        )
        ax.text(
            0,
            y,
            text,
            ha="center",
            va="center",
            fontsize=10,
            weight="bold" if text == "SimAM" else None,
        )
        if row:
            ax.add_patch(
                FancyArrowPatch(
                    (0, y + 0.7), (0, y + 0.32), arrowstyle="-|>", mutation_scale=12
                )
            )
    plus = -path.index("+")
    shortcut = block.get_submodule("shortcut")
    kind = (
        "identity"
        if isinstance(shortcut, torch.nn.Identity)
        else " + ".join(
            step_label(shortcut, name).split(": ")[-1]
            for name, _ in shortcut.named_children()
        )
    )
    ax.plot([0.3, 1.6, 1.6], [0, 0, plus], color="black", lw=1)
    ax.add_patch(
        FancyArrowPatch((1.6, plus), (1.02, plus), arrowstyle="-|>", mutation_scale=12)
    )
    ax.text(
        1.7,
        plus / 2,
        f"shortcut: {kind}",
        rotation=90,
        ha="left",
        va="center",
        fontsize=9,
    )
    ax.set(xlim=(-1.3, 2.3), ylim=(-len(path) + 0.4, 0.6), title=title)
    ax.set_axis_off()


# %%
figure, axes = plt.subplots(1, 2, figsize=(9, 6.5))
for ax, (model_name, (block, steps)) in zip(axes, BLOCKS.items()):
    draw_block(ax, block, steps, f"{type(block).__name__} ({model_name})")
plt.show()

# %% [markdown]
# ## 4. $\lambda$
#
# $\lambda$ is added to the channel's variance $s^2$: a channel whose variance is far above
# $\lambda$ is weighted as if $\lambda$ were 0, and one whose variance is far below it gets weights
# close to $\operatorname{sigmoid}(1/2)$ everywhere. The package's default, printed in section 2, is
# the paper's value for CIFAR ([chapter 1](01_energy_function.ipynb), section 1; its section 4
# shows that the weights depend on $\lambda$ only through its ratio to the channel's variance; try
# it with sliders in [chapter 3, section 4.1](03_building_simam.ipynb)).
#
# ## 5. What the course measured
#
# The course trained ResNet-20 on CIFAR-10 with each attention module, several seeds each, with
# its *quick recipe* (a few thousand iterations; [chapter 5](05_training_cifar_resnets.ipynb)),
# and committed the results in `results/results.jsonl`. The cell below reads that file and prints
# the final test accuracy per module beside the paper's Table 2, which used the paper's recipe.
# The two columns are not the same experiment: compare the differences between modules, not the
# accuracies. The verdict below it is [chapter 6](06_results_and_attention_maps.ipynb)'s, generated
# from the same file: whether the gains are established at this budget, with intervals and p-values.

# %%
all_lines = experiments.read_results(simam.zoo.DEFAULT_RESULTS)  # the committed runs
lines = [
    line
    # the grid: the paper's λ and place, the quick recipe as it is
    for line in all_lines
    if (line["dataset"], line["model"], line["recipe"])
    == ("cifar10", "resnet20", "quick")
    and line["lambda"] in (None, 1e-4)
    and line.get("place") is None
    and not experiments.overrides(line["config"], line["recipe"])
]
cells = experiments.summarise(lines)
print(
    "ResNet-20, CIFAR-10, final top-1 %: course "
    f"({RECIPES['quick'].iterations:,} iterations, mean ± std)"
    f" | paper, Table 2 ({RECIPES['paper'].iterations:,} iterations, 5 runs)"
)
for cell in cells:
    spread = "" if cell.std is None else f" ± {cell.std:.2f}"
    paper = PAPER_TABLE2[("cifar10", "resnet20", cell.attention)]
    seeds = f"{cell.n}" if cell.complete else f"{cell.n} of {cell.seeds_asked}"
    print(
        f"{cell.attention:>6}: {cell.mean:.2f}{spread:7} ({seeds} seeds) | "
        f"{paper[0]:.2f} ± {paper[1]:.2f}"
    )

# %% [markdown]
# Each study of the course has a plan, committed before its runs (the grid's was written after
# them, and says so: its seeds were extended after a look, so its verdicts are nominal). A study
# decides by its primary comparisons alone, and only once all its planned runs are in; until then
# it prints an interim look, which decides nothing. The grid asks whether any module beats no
# attention; the placement study whether SimAM's gain is the module or its place before the batch
# norm; the budget study whether the gain survives four times more training (chapter 6 explains
# these three, prints every p-value and shows every seed). The tricks study screens changes to
# the quick recipe for a faster one, judged on training images held out from training, and adopts
# a change by a rule fixed in its plan ([chapter 5](05_training_cifar_resnets.ipynb) shows its
# table). The fast study measures the recipe that the adopted changes make on the test split,
# against targets its plan fixed: 90.0% in 15 minutes of a 2-core CPU, and 91.5% in 30.

# %%
for study_verdict in experiments.judge_studies(simam.zoo.DEFAULT_RESULTS):
    print(verdicts.study_summary(study_verdict))
paper_gain = (
    PAPER_TABLE2[("cifar10", "resnet20", "simam")][0]
    - PAPER_TABLE2[("cifar10", "resnet20", "none")][0]
)
print(f"paper, Table 2: SimAM − none {paper_gain:+.2f} points")

# %% [markdown]
# ## 6. How to read this course
#
# 1. [The energy function, derived](01_energy_function.ipynb): SimAM's weights on a picture,
#    then equation (2) solved in SymPy, a verdict on each printed equation, and leave-one-out
#    versus channel statistics.
# 2. [Closed form versus numerical minimisation](02_closed_form_vs_numeric.ipynb): optimisers reach
#    the closed form on real CIFAR-10 feature maps; what $\lambda$ does; a gradient check.
# 3. [Building SimAM](03_building_simam.ipynb): from $1/e^*$ to a vectorised module, its backward
#    pass, its 3-D weights, and the $\lambda$ explorer.
# 4. [The baselines side by side](04_baselines.ipynb): SE, CBAM, ECA and GC, their parameters,
#    FLOPs and measured cost.
# 5. [Training CIFAR ResNets](05_training_cifar_resnets.ipynb): the paper's recipe and the quick
#    one, a real run, and how many runs a small effect needs.
# 6. [Results and attention maps](06_results_and_attention_maps.ipynb): Table 2 as data, the
#    course's grid beside it, and Grad-CAM and SimAM's own weights on test images.
