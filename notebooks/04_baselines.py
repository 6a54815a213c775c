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
# # 4. The baselines side by side
#
# SimAM is compared with four attention modules in the paper: Squeeze-and-Excitation (SE),
# CBAM, ECA and the Global Context block (GC). All five take a feature map
# $X \in \mathbb{R}^{C \times H \times W}$ and return one of the same shape, so any of them can
# be dropped into a residual block: SE, CBAM, ECA and GC at the end of its residual branch, and
# SimAM, in this course as in the authors' reference code, between the block's second convolution
# and that convolution's batch norm (sections 4.5 and 4.6 show the place and why it matters).
# They differ in three ways that this chapter measures rather than asserts:
#
# 1. **What they learn.** SE, CBAM and GC carry small neural networks; ECA has a single 1-D kernel;
#    SimAM has nothing to learn.
# 2. **What they cost.** Parameters and multiply-accumulates can be counted exactly, but the
#    elementwise work that dominates the cheap modules is invisible to the usual FLOP counters, and
#    the wall-clock time depends on the hardware, which neither count sees.
# 3. **What shape their weights have.** A module can rescale whole channels, whole positions, or
#    every single neuron. Section 4.5 feeds one real CIFAR-10 image through all five and draws the
#    weights each of them applies.
#
# The numbers are set against the paper's Table 3 (parameters added to ResNet-50 and speed on a
# GPU), and every difference is explained.
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
import math
import statistics
import time

import matplotlib.pyplot as plt
import torch
import torchvision
from torch import nn
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

import simam
from simam.attention import create_attention, eca_kernel_size, list_attentions
from simam.attention.simam import simam_reference
from simam.course import course_cifar10, smoke_test
from simam.data import CIFAR10_MEAN, CIFAR10_STD

QUICK = simam.quick_mode()
# the quick budget, also when a test runs the full mode on a CPU
QUICK_BUDGET = QUICK or smoke_test()
simam.seed_everything(0)
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print(f"quick mode: {QUICK}")

# %% [markdown]
# ## 4.1 Five ways to reweight a feature map
#
# Four of the five modules compute a weight tensor $A$ and return $A \odot X$, with $A$
# broadcast over the dimensions it lacks. The shape of $A$ is the whole story of what a module
# can express:
#
# | module | output | shape of the weight | learned parameters per block |
# | --- | --- | --- | --- |
# | SE | $A \odot X$ | $C \times 1 \times 1$ | $2CC'$ with $C' = C/16$ |
# | CBAM | $A^{\mathrm{sp}} \odot (A^{\mathrm{ch}} \odot X)$ | $C \times 1 \times 1$, then $1 \times H \times W$ | $2CC' + C' + C + 2 \cdot 7^2 + 2$ |
# | ECA | $A \odot X$ | $C \times 1 \times 1$ | $K$ |
# | GC | $X + T$ | an *added* $C \times 1 \times 1$ term | $2CC' + 3C' + 2C$ |
# | SimAM | $A \odot X$ | $C \times H \times W$ | $0$ |
#
# **SE** (Hu et al., 2018). *Squeeze* every channel to its spatial mean,
# $\hat{\boldsymbol\mu} = \frac{1}{HW}\sum_{i,j} X_{:,i,j} \in \mathbb{R}^C$ (chapter 1's channel mean
# $\hat\mu$, for every channel at once), *excite* it through a bottleneck MLP and a sigmoid,
# $A = \operatorname{sigmoid}\!\left(W_2\,\mathrm{ReLU}(W_1 \hat{\boldsymbol\mu})\right)$ with
# $W_1 \in \mathbb{R}^{C' \times C}$, $W_2 \in \mathbb{R}^{C \times C'}$, and scale each channel by
# its gate. By default the bottleneck has $C' = C/16$ units. The library builds the two layers without
# biases by default, which is how the SimAM paper counts SE's parameters (section 4.3 returns to
# this); Hu et al.'s own models have them.
#
# **CBAM** (Woo et al., 2018) applies two gates in sequence. The *channel gate* pools each channel
# twice, by mean and by max, sends both vectors through one shared MLP of the SE shape ($C' = C/16$,
# with biases) and adds the results before the sigmoid. The *spatial gate* then reduces the
# channel-gated map across channels to two maps (max and mean), and a $7 \times 7$ convolution
# from 2 channels to 1, a BatchNorm and a sigmoid turn them into one weight per position, shared
# by all channels.
#
# **ECA** (Wang et al., 2020) keeps SE's squeeze but replaces the MLP with a 1-D convolution of
# size $K$ along the channel axis (no bias): each channel's gate depends on the means of its $K$
# neighbouring channels, and there is no bottleneck. The kernel size grows with the width,
# $K = \left|\frac{\log_2 C + 1}{2}\right|_{\text{odd}}$ (the ECA paper's $\psi(C)$ with its two
# constants written in), where $|\cdot|_{\text{odd}}$ is the odd number nearest to its argument
# (ties go up).
#
# **GC** (Cao et al., 2019) is the odd one out: it *adds* rather than multiplies. A $1 \times 1$
# convolution $C \to 1$ scores every position, a softmax over the $HW$ positions turns the scores
# into pooling weights, and the weighted sum of the feature vectors is one context vector
# $\mathbf{v} \in \mathbb{R}^C$. A bottleneck ($1 \times 1$ conv $C \to C'$, LayerNorm, ReLU,
# $1 \times 1$ conv $C' \to C$, $C' = C/16$) transforms it into $T$, which is added to every
# position. The last convolution starts at zero, so a new GC block is exactly the identity.
#
# **SimAM** (Yang et al., 2021), built in the earlier chapters, weighs every neuron by
# $\operatorname{sigmoid}(1/e^*_t)$, where $e^*_t$ is the minimal energy of that neuron against the rest of its
# channel: one weight per neuron, computed from the channel's mean and variance, nothing learned.
# Its only setting is $\lambda$: $10^{-4}$ by default, as in the paper's CIFAR experiments (the
# paper uses 0.1 on ImageNet).
#
# The factory of `simam.attention` builds every module by name, with the published defaults:

# %%
print("names:", ", ".join(list_attentions()))
for name in ["se", "cbam", "eca", "gc", "simam"]:
    print(f"\n--- {name}, C = 256")
    print(create_attention(name, 256))

# %% [markdown]
# ECA's kernel size for every width this chapter meets. Where the argument $(\log_2 C + 1)/2$ is an
# even integer it lies midway between two odd numbers, and the rule rounds up: $C = 128$ (argument
# 4) gets 5 and $C = 2048$ (argument 6) gets 7.

# %%
for channels in [16, 32, 64, 128, 256, 512, 1024, 2048]:
    argument = (math.log2(channels) + 1) / 2
    print(
        f"C = {channels:4d}: (log2 C + 1)/2 = {argument:4.2f}  ->  "
        f"K = {eca_kernel_size(channels)}"
    )

# %% [markdown]
# ## 4.2 Parameters and FLOPs per block
#
# Parameters are counted by summing `numel()` over `module.parameters()`. For arithmetic we use
# PyTorch's own counter, `torch.utils.flop_counter.FlopCounterMode`, rather than formulas written
# by hand: it watches the operations that actually run and charges each matrix product and
# convolution $2 \times$ its multiply-accumulates. It counts *only* those operations. Here is the
# complete list it knows:

# %%
print(sorted({str(op).removeprefix("aten.") for op in flop_counter.flop_registry}))

# %% [markdown]
# Pooling, sigmoid, softmax, normalisation and the final rescaling are all elementwise or
# reductions, and none of them is counted. How much that leaves out differs by module, as the table
# of section 4.3 shows: for GC, whose context scores and pooling are matrix products over every
# position, the uncounted work is a fraction of the counted; for CBAM, whose $7 \times 7$
# convolution runs over every position, it is of the same order; for SE and ECA, whose only matrix
# products act on a single pooled vector, it is larger; and for SimAM it is all there is, since
# FlopCounterMode charges it 0. The count is true of what it measures and misleading as a statement
# of cost, so after the tables below we count the elementwise work separately.
#
# The widths are those of the networks the paper uses. CIFAR ResNet-20 and ResNet-56 have three
# stages of basic blocks with 16, 32 and 64 channels at $32 \times 32$, $16 \times 16$ and
# $8 \times 8$; ImageNet ResNet-50 has four stages of bottleneck blocks whose outputs have 256,
# 512, 1024 and 2048 channels at $56^2$, $28^2$, $14^2$ and $7^2$. To compare like with like,
# every module sits at the end of the residual branch, on the block's output width, where the
# authors of SE, CBAM, ECA and GC put theirs (section 4.3 notes where SimAM's code puts it in a
# bottleneck). For scale, the first column is the block's last convolution, the layer the module
# follows: a $3 \times 3$ conv $C \to C$ in a basic block, a $1 \times 1$ conv $C/4 \to C$ in a
# bottleneck. FLOPs are for one image.

# %%
MODULES = ["se", "cbam", "eca", "gc", "simam"]
LABELS = {
    "none": "none",
    "se": "SE",
    "cbam": "CBAM",
    "eca": "ECA",
    "gc": "GC",
    "simam": "SimAM",
}
CIFAR_STAGES = [(16, 32), (32, 16), (64, 8)]  # (channels, height = width)
RESNET50_STAGES = [(256, 56), (512, 28), (1024, 14), (2048, 7)]


def last_conv(channels: int, bottleneck: bool) -> nn.Module:
    """The convolution that precedes the attention module in a block of this width."""
    if bottleneck:
        return nn.Conv2d(channels // 4, channels, kernel_size=1, bias=False)
    return nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, in_channels: int, size: int) -> int:
    """FlopCounterMode's total for one forward pass of one image (in eval mode)."""
    x = torch.randn(1, in_channels, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module.eval()(x)
    return counter.get_total_flops()


def block_costs(
    channels: int, size: int, bottleneck: bool
) -> dict[str, tuple[int, int]]:
    """(parameters, FLOPs) of the last conv and of every attention module at this
    width."""
    conv = last_conv(channels, bottleneck)
    costs = {
        "conv": (count_parameters(conv), count_flops(conv, conv.in_channels, size))
    }
    for name in MODULES:
        module = create_attention(name, channels)
        costs[name] = (count_parameters(module), count_flops(module, channels, size))
    return costs


# %%
STAGES = [(c, s, False) for c, s in CIFAR_STAGES] + [
    (c, s, True) for c, s in RESNET50_STAGES
]
COSTS = {(c, s): block_costs(c, s, b) for c, s, b in STAGES}


def print_block_table(index: int, title: str) -> None:
    print(title)
    print(
        f"{'block':>14} {'last conv':>13}"
        + "".join(f"{LABELS[n]:>11}" for n in MODULES)
    )
    for (channels, size), costs in COSTS.items():
        row = f"{f'{channels} @ {size}x{size}':>14} {costs['conv'][index]:>13,}"
        print(row + "".join(f"{costs[n][index]:>11,}" for n in MODULES))


print_block_table(0, "Parameters added by one module")
print()
print_block_table(
    1, "FLOPs of one module, one image (FlopCounterMode: matmuls and convolutions only)"
)

# %% [markdown]
# The counts follow the formulas of section 4.1, and the code checks that they do, so a change in
# a module's defaults would show up here:

# %%
for (channels, size), costs in COSTS.items():
    h = max(1, channels // 16)
    k = eca_kernel_size(channels)
    assert costs["se"][0] == 2 * channels * h
    assert costs["cbam"][0] == 2 * channels * h + h + channels + 2 * 7 * 7 + 2
    assert costs["eca"][0] == k
    assert costs["gc"][0] == 2 * channels * h + 3 * h + 2 * channels
    assert costs["simam"] == (0, 0)
    hw = size * size
    # two FC layers on the squeezed vector
    assert costs["se"][1] == 2 * (2 * channels * h)
    # MLP twice, 7x7 conv
    assert costs["cbam"][1] == 2 * (2 * 2 * channels * h) + 2 * (2 * 7 * 7 * hw)
    assert costs["eca"][1] == 2 * k * channels  # the 1-D conv across channels
    # logits, pooling, transform
    assert costs["gc"][1] == 2 * (channels * hw) * 2 + 2 * (2 * channels * h)
print("all parameter and FLOP counts match the closed forms")

# %% [markdown]
# Two things stand out. First, in FLOPs every module is cheap next to the convolution it follows
# (in parameters it need not be: on ResNet-50's widest stage SE adds 524,288 to the 1,048,576 of
# the $1 \times 1$ convolution). The most expensive by this count are CBAM on the 16-channel CIFAR
# stage, whose $7 \times 7$ spatial convolution runs over all $32 \times 32$ positions (200,832
# FLOPs beside the $3 \times 3$ conv's 4,718,592), and GC on $256 @ 56 \times 56$, whose context
# scores and pooling touch every position (3,227,648 beside the $1 \times 1$ conv's 102,760,448).
# Second, SE's and CBAM's parameters grow as $C^2$ while their MLP FLOPs do not depend on $HW$ at
# all (the MLP acts on one pooled vector), so these modules are heavy in parameters and light in
# arithmetic exactly where ResNet-50 is widest. ECA's kernel grows only as $\log C$.
#
# One more thing hides in the smallest width. At $C = 16$ the bottleneck of SE, CBAM and GC has
# $C' = \max(1, 16 / 16) = 1$ unit. SE and CBAM still pass information through that single unit,
# but GC normalises it with a LayerNorm over that one value, which turns any value into 0 before
# adding the LayerNorm's learned shift: GC's transform then adds a constant that ignores the
# context (exercise 3 checks it). On the first stage of a CIFAR ResNet, GC with its published ratio
# is a learned bias, not an attention.
#
# ### What FlopCounterMode does not see
#
# To count the elementwise work we need a counter that sees *every* operation. PyTorch's dispatch
# mechanism offers one: a `TorchDispatchMode` is called for every ATen operation that runs inside
# it. The one below records each operation other than views (which compute nothing), and the
# number of elements it touches: the larger of its largest input and its output. A reduction of
# $CHW$ values to $C$ means is charged $CHW$, a sigmoid over $CHW$ values $CHW$. Leaving out the
# matmuls and convolutions already counted above and dividing by $CHW$ gives *element operations
# per element*: roughly, how many times the module streams the feature map through the
# processor. It is a coarse unit (an `exp` costs more than an addition), but it is the same unit
# for every module. The number of ATen operations is worth keeping too: on a GPU each one is
# (at least) one kernel launch.
#
# Besides the library's `SimAM` we count `simam_reference`, the reference code's formula written
# out op by op, and the exact leave-one-out variant (`"simam-exact"`).

# %%
class OpCounter(TorchDispatchMode):
    """Record every ATen operation but views: its name, whether FlopCounterMode counts
    it, and the number of elements it touches (the larger of its largest input and its
    output)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, bool, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            sizes = [
                t.numel()
                for t in tree_leaves((args, kwargs, out))
                if isinstance(t, torch.Tensor)
            ]
            counted = func.overloadpacket in flop_counter.flop_registry
            self.ops.append(
                (func.overloadpacket.__name__, counted, max(sizes, default=0))
            )
        return out

    @property
    def element_ops(self) -> int:
        """Elements touched by the operations FlopCounterMode does not count."""
        return sum(n for _, counted, n in self.ops if not counted)


# %%
class ReferenceSimAM(nn.Module):
    """The reference code's formula as a module:
    x * sigmoid(d / (4 (v + lambda)) + 1/2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return simam_reference(x)


def build(name: str, channels: int) -> nn.Module:
    return (
        ReferenceSimAM()
        if name == "simam-reference"
        else create_attention(name, channels)
    )


def count_ops(name: str, channels: int, size: int) -> OpCounter:
    module = build(name, channels).eval()
    x = torch.randn(1, channels, size, size)
    with OpCounter() as counter, torch.no_grad():
        module(x)
    return counter


channels, size = 256, 56
elements = channels * size * size
counters = {
    name: count_ops(name, channels, size)
    for name in MODULES + ["simam-reference", "simam-exact"]
}
print(
    "every ATen operation of one forward pass "
    f"on a {channels} @ {size}x{size} map, one image"
)
print(f"{'module':>16} {'ATen ops':>9} {'element ops per element':>24}")
for name, counter in counters.items():
    print(f"{name:>16} {len(counter.ops):>9} {counter.element_ops / elements:>24.2f}")

for name in ["simam-reference", "simam"]:
    ops = counters[name].ops
    full = [op for op, _, n in ops if n >= elements]
    print(f"\n{name}: {len(full)} passes over the whole map: {', '.join(full)}")
    print(
        f"{'':>{len(name)}}  and {len(ops) - len(full)} "
        "operations on per-channel numbers"
    )

# %% [markdown]
# The reference formula streams the map 8 times: the mean, the deviation, its square, the sum of
# squares, the division by $4(s^2 + \lambda)$ (a per-channel number), the $+\tfrac12$, the sigmoid
# and the product with $X$. Counted as floating-point operations, with the sigmoid as three (an
# exponential, an addition, a reciprocal), that is **about 10 FLOPs per element**, or
# $\approx 10\,CHW$ per block. The library's `SimAM` (the second list) makes a couple of passes
# more: it first finds a power of two per channel that brings the channel into $(-1, 1)$ (a max, a
# min and one multiplication, which keep its squares from overflowing for huge activations), and it
# fuses the square with the sum (a vector norm) and $a\,d^2 + \tfrac12$ with one `addcmul`. Its
# remaining ATen operations are bookkeeping on $C$ numbers per sample: cheap on a CPU, but each one
# is a kernel launch on a GPU.
#
# The channel modules pass over the map twice (the squeeze and the rescale), GC once (the
# additive fusion; its pooling is a matrix product, counted above), CBAM six times (two poolings
# and a rescale for each gate). So SimAM does the most elementwise work of the five and the least
# learned work. Against the $3 \times 3$ convolution of a CIFAR block ($18\,C^2 HW$ FLOPs) its
# $\approx 10\,CHW$ is a fraction $10 / (18 C)$: 3.5% at $C = 16$, under 1% at $C = 64$.

# %% [markdown]
# ## 4.3 Per-network totals, and the paper's Table 3
#
# A network pays for one module per residual block. ResNet-20 has 3 blocks per stage, ResNet-56
# has 9, and ImageNet ResNet-50 has 3, 4, 6 and 3 bottleneck blocks. For ResNet-50 we also count
# the whole backbone (torchvision's `resnet50`, built on the `meta` device so that nothing is
# allocated or computed) and set the paper's Table 3 beside our totals.

# %%
NETWORKS = {
    # (channels, size, blocks) per stage
    "ResNet-20": [
        (16, 32, 3),
        (32, 16, 3),
        (64, 8, 3),
    ],
    "ResNet-56": [(16, 32, 9), (32, 16, 9), (64, 8, 9)],
    "ResNet-50": [(256, 56, 3), (512, 28, 4), (1024, 14, 6), (2048, 7, 3)],
}
# ResNet-50, parameters added
PAPER_TABLE3 = {
    "se": 2.515e6,
    "cbam": 2.533e6,
    "eca": 88,
    "simam": 0,
}

with torch.device("meta"):
    resnet50 = torchvision.models.resnet50()
    with FlopCounterMode(display=False) as counter:
        resnet50(torch.empty(1, 3, 224, 224))
resnet50_parameters, resnet50_flops = (
    count_parameters(resnet50),
    counter.get_total_flops(),
)

ELEMENT_OPS = {
    (c, s): {name: count_ops(name, c, s).element_ops for name in MODULES}
    for c, s, _ in STAGES
}
totals = {}
for network, stages in NETWORKS.items():
    totals[network] = {
        name: (
            sum(blocks * COSTS[c, s][name][0] for c, s, blocks in stages),
            sum(blocks * COSTS[c, s][name][1] for c, s, blocks in stages),
            sum(blocks * ELEMENT_OPS[c, s][name] for c, s, blocks in stages),
        )
        for name in MODULES
    }

# %%
header = f"{'':>20}" + "".join(f"{LABELS[n]:>12}" for n in MODULES)
print("Parameters added to the whole network")
print(header)
for network, total in totals.items():
    print(f"{network:>20}" + "".join(f"{total[n][0]:>12,}" for n in MODULES))
print(
    f"{'ResNet-50, Table 3':>20}"
    + "".join(
        f"{PAPER_TABLE3[n]:>12,.0f}" if n in PAPER_TABLE3 else f"{'-':>12}"
        for n in MODULES
    )
)

print(
    "\nArithmetic added per image, millions: "
    "FLOPs (FlopCounterMode) and element operations"
)
print(header)
for network, total in totals.items():
    print(
        f"{network + ' FLOPs':>20}"
        + "".join(f"{total[n][1] / 1e6:>12.3f}" for n in MODULES)
    )
    print(
        f"{'element ops':>20}" + "".join(f"{total[n][2] / 1e6:>12.3f}" for n in MODULES)
    )

print(
    f"\nResNet-50 itself: {resnet50_parameters:,} parameters, "
    f"{resnet50_flops / 1e9:.2f} GFLOPs per 224x224 image (FlopCounterMode)"
)
for name in MODULES:
    parameters, flops, element_ops = totals["ResNet-50"][name]
    print(
        f"{LABELS[name]:>6} adds "
        f"{100 * parameters / resnet50_parameters:4.1f}% parameters, "
        f"{100 * flops / resnet50_flops:4.2f}% FLOPs, "
        f"element ops {100 * element_ops / resnet50_flops:4.2f}% of its FLOPs"
    )

# %% [markdown]
# Two conventions hide in Table 3's SE and CBAM rows. This cell counts SE's MLP biases over
# ResNet-50, and what CBAM adds beyond an SE with biases.

# %%
resnet50_stages = NETWORKS["ResNet-50"]
resnet50_blocks = sum(blocks for _, _, blocks in resnet50_stages)
se_biases = sum(
    blocks
    * (count_parameters(create_attention("se", c, bias=True)) - COSTS[c, s]["se"][0])
    for c, s, blocks in resnet50_stages
)
spatial_gates = sum(
    blocks * count_parameters(create_attention("cbam", c).spatial_gate)
    for c, _, blocks in resnet50_stages
)
se_total, cbam_total = totals["ResNet-50"]["se"][0], totals["ResNet-50"]["cbam"][0]
assert cbam_total == se_total + se_biases + spatial_gates
print(
    f"ResNet-50, {resnet50_blocks} blocks: SE's MLP biases {se_biases:,}, "
    f"SE with them +{se_total + se_biases:,}"
)
print(
    f"CBAM - SE = {cbam_total - se_total:,} = {se_biases:,} MLP biases "
    f"+ {spatial_gates:,} in the spatial gates"
)

# %% [markdown]
# **SE: +2,514,944, the paper's +2.515M.** Each block adds $2 C^2 / 16 = C^2 / 8$ weights, and
# $\sum_k C_k^2 / 8$ over the 16 blocks $k$ is exactly 2,514,944. That agreement depends on a
# convention: the two FC layers have no bias. Hu et al.'s SE layers do have biases, $C/16 + C$ more
# per block, 16,048 over ResNet-50, which would give 2.531M (the cell above prints both). The
# library follows the paper's count by default; `create_attention("se", C, bias=True)` builds the
# original.
#
# **CBAM: +2,532,592, the paper's +2.533M.** CBAM's shared MLP is SE's *with* biases
# (2,514,944 + 16,048), plus $2 \times 7^2 = 98$ convolution weights and 2 BatchNorm parameters
# for each of the 16 spatial gates (1,600). So Table 3's two figures are matched by counting
# CBAM's MLP with biases and SE's without: of the 17,648 parameters between our two rows, 16,048
# are that difference of convention and only 1,600 are the spatial gate.
#
# **ECA: +86, the paper's +88.** The adaptive rule gives $K = 5$ for 256, 512 and 1024
# channels and $K = 7$ for 2048, so $3 \cdot 5 + 4 \cdot 5 + 6 \cdot 5 + 3 \cdot 7 = 86$. The
# paper does not say which kernel sizes give its 88, and the ECA paper itself reports 80 for
# ECA-Net50; the discrepancy is a couple of kernel taps in a 25.6M-parameter network and changes
# no conclusion.
#
# **GC** is not in Table 3. With $C' = C/16$ it costs about as many parameters as SE (2.548M on
# ResNet-50), because its transform has the same $2 C^2 / 16$ bottleneck, plus the context
# convolution and the LayerNorm.
#
# **SimAM: 0**, as printed, and 0 FLOPs to FlopCounterMode. Its elementwise work, about 55
# million element operations per image on ResNet-50 at the block outputs, is under 1% of the
# backbone's 8.18 GFLOPs, more than any other module's but of the same order as GC's counted
# FLOPs. (In a bottleneck block the reference code places SimAM right after the $3 \times 3$
# convolution, where the map has a quarter of the channels, so there it costs a quarter of that.)
#
# In parameters, then: SE, CBAM and GC add about 10% to ResNet-50 and about 1% to the CIFAR
# ResNets (0.27M and 0.85M parameters in He et al. 2016), ECA a few dozen numbers, SimAM none. In
# arithmetic, counted or not, every module stays below 1% of ResNet-50.
#
# The figure puts the two axes side by side for ResNet-50, each as a share of the backbone:
# parameters on the left, arithmetic on the right (the counted FLOPs and the element operations
# that FlopCounterMode does not count). SimAM has the lowest bar on the left (none) and the
# highest on the right; every bar on the right stays below 1%.

# %%
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
names = [LABELS[n] for n in MODULES]
parameter_share = [
    100 * totals["ResNet-50"][n][0] / resnet50_parameters for n in MODULES
]
flop_share = [100 * totals["ResNet-50"][n][1] / resnet50_flops for n in MODULES]
element_share = [100 * totals["ResNet-50"][n][2] / resnet50_flops for n in MODULES]
left.bar(names, parameter_share, color="tab:blue")
left.set_ylabel("% of ResNet-50's parameters")
left.set_title("parameters added")
positions = torch.arange(len(MODULES)).float()
right.bar(
    positions - 0.2,
    flop_share,
    width=0.4,
    label="FLOPs (FlopCounterMode)",
    color="tab:orange",
)
right.bar(
    positions + 0.2,
    element_share,
    width=0.4,
    label="element operations",
    color="tab:grey",
)
right.set_xticks(positions.tolist(), names)
right.set_ylabel("% of ResNet-50's FLOPs")
right.set_title("arithmetic added per image")
right.legend()
plt.show()
simam_index = MODULES.index("simam")
assert parameter_share[simam_index] == min(parameter_share) == 0 and element_share[
    simam_index
] == max(element_share)
assert max(flop_share + element_share) < 1

# %% [markdown]
# ## 4.4 Measured overhead on this machine
#
# Counts do not run; kernels do. To measure what each module costs in practice we time a small
# layer *with* and *without* it: the block's last convolution and its BatchNorm, followed by the
# attention module (or by nothing). We time this layer rather than the module alone against an
# identity because an identity costs nothing, so "module versus identity" ratios would be
# unbounded and say nothing about how much slower a network becomes; against the layer it
# follows, the ratio is the slowdown of the part of the network the module touches. (A whole
# network adds the stem, the shortcuts and the head, which dilute the ratio further.) Three shapes
# stand for the rest: the widest map of the CIFAR ResNets ($16 @ 32 \times 32$, after a
# $3 \times 3$ conv), their narrowest ($64 @ 8 \times 8$), and the first bottleneck output of
# ResNet-50 ($256 @ 56 \times 56$, after a $1 \times 1$ conv).
#
# Timing is noisy. To make the ratios fair we time all six variants in the same run,
# *interleaved*: each repeat times every variant once, in an order rotated from repeat to repeat,
# so a slow moment hurts all variants alike. Each timing averages a few calls, and we report the
# median over repeats. "Forward" is inference (`torch.inference_mode`, eval mode); "forward +
# backward" is a training step in train mode, with the gradient flowing to the input as it would
# in the middle of a network. On a CPU we time with a single thread: on a small, shared machine
# the threads of a multi-threaded kernel also wait for each other and for other work, which makes
# timings of small kernels vary from run to run by more than the differences we are after.

# %%
def timing_layer(name: str, channels: int, bottleneck: bool) -> nn.Module:
    conv = last_conv(channels, bottleneck)
    return nn.Sequential(
        conv, nn.BatchNorm2d(channels), create_attention(name, channels)
    ).to(device)


def synchronise() -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step(layer: nn.Module, x: torch.Tensor, backward: bool) -> None:
    if backward:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()
    else:
        with torch.inference_mode():
            layer(x)


# %%
def time_side_by_side(
    layers: dict[str, nn.Module],
    x: torch.Tensor,
    backward: bool,
    repeats: int,
    calls: int,
) -> dict[str, float]:
    """Median seconds per call of every layer, the layers timed interleaved in rotating
    order."""
    names = list(layers)
    for layer in layers.values():
        layer.train(backward)
        for _ in range(2):  # warm-up: memory allocator, kernel selection
            step(layer, x, backward)
    samples = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            synchronise()
            start = time.perf_counter()
            for _ in range(calls):
                step(layers[name], x, backward)
            synchronise()
            samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(s) for name, s in samples.items()}


VARIANTS = ["none"] + MODULES
REPEATS, CALLS = (11, 3) if QUICK_BUDGET else (25, 10)
TIMED_SHAPES = [  # (label, channels, size, bottleneck, batch)
    ("CIFAR 16 @ 32x32", 16, 32, False, 16 if QUICK_BUDGET else 128),
    ("CIFAR 64 @ 8x8", 64, 8, False, 16 if QUICK_BUDGET else 128),
    ("R-50 256 @ 56x56", 256, 56, True, 1 if QUICK_BUDGET else 32),
]

# %% tags=["nbval-ignore-output"]
threads = torch.get_num_threads()
if device.type == "cpu":
    torch.set_num_threads(1)
print(
    f"device: {device}, {torch.get_num_threads()} thread(s), "
    f"{REPEATS} repeats x {CALLS} calls"
)
generator = torch.Generator().manual_seed(0)
timings = {}
started = time.perf_counter()
for label, channels, size, bottleneck, batch in TIMED_SHAPES:
    torch.manual_seed(0)
    layers = {name: timing_layer(name, channels, bottleneck) for name in VARIANTS}
    in_channels = layers["none"][0].in_channels
    x = (
        torch.randn(batch, in_channels, size, size, generator=generator)
        .to(device)
        .requires_grad_()
    )
    for backward in (False, True):
        timings[label, backward] = time_side_by_side(
            layers, x, backward, REPEATS, CALLS
        )
torch.set_num_threads(threads)

for backward, title in [(False, "forward"), (True, "forward + backward")]:
    print(f"\n{title}: time relative to conv + BN alone (= 1.00)")
    print(
        f"{'shape':>18} {'batch':>6} {'alone, ms':>10}"
        + "".join(f"{LABELS[n]:>8}" for n in MODULES)
    )
    for label, _channels, _size, _bottleneck, batch in TIMED_SHAPES:
        t = timings[label, backward]
        ratios = "".join(f"{t[n] / t['none']:>8.2f}" for n in MODULES)
        print(f"{label:>18} {batch:>6} {t['none'] * 1e3:>10.2f}{ratios}")
print("\ncheapest to dearest, as measured here:")
for (label, backward), t in timings.items():
    order = sorted(MODULES, key=t.get)
    print(
        f"  {label:>18}, {'forward + backward' if backward else 'forward':<18}: "
        f"{' < '.join(LABELS[n] for n in order)}"
    )
    assert all(math.isfinite(t[n]) and t[n] > 0 for n in VARIANTS)
print(f"\ntimed in {time.perf_counter() - started:.0f} s")

# %% tags=["nbval-ignore-output"]
figure, axes = plt.subplots(
    1, len(TIMED_SHAPES), figsize=(12, 3.2), sharey=True, layout="constrained"
)
positions = torch.arange(len(MODULES)).float()
for axis, (label, *_) in zip(axes, TIMED_SHAPES):
    for offset, backward, colour in ((-0.2, False, "tab:blue"), (0.2, True, "tab:red")):
        t = timings[label, backward]
        axis.bar(
            positions + offset,
            [t[n] / t["none"] for n in MODULES],
            width=0.4,
            color=colour,
            label="forward + backward" if backward else "forward",
        )
    axis.axhline(1, color="grey", lw=0.8, ls="--")
    axis.set_xticks(positions.tolist(), [LABELS[n] for n in MODULES])
    axis.set_title(label)
axes[0].set_ylabel("time / conv + BN alone")
axes[0].legend()
plt.show()

# %% [markdown]
# The ratios change from run to run on a shared machine, and the order the cell prints can change
# between CPUs and between runs where two modules are close; read them from your own run, not
# from this text. Three things are worth looking for. First, whether the order follows the FLOPs
# of section 4.2 or its passes over memory: FlopCounterMode charges SimAM nothing, so any cost
# SimAM shows here is memory traffic and element operations. Second, the shapes: per element of
# the map it produces, ResNet-50's $1 \times 1$ bottleneck convolution does the least arithmetic
# of the three layers, so if arithmetic alone set the times, the modules would weigh most against
# the layer there; see whether your run agrees. Third, training. The layer's own time (the
# "alone" column) grows severalfold from the first table to the second: the convolution's
# backward pass computes two gradients, for its input and for its weights, each about as costly
# as its forward pass. A module's ratio falls towards 1 in training only where its own time grows
# by a smaller factor than the layer's, and nothing guarantees that: CBAM also runs its poolings,
# its $7 \times 7$ convolution and its BatchNorm backwards, and its ratio can rise.
#
# **These ratios do not predict a GPU.** A GPU runs elementwise kernels at memory bandwidth, so a
# few passes over a map cost little, but every operation is a separate kernel launch, and at
# small batch sizes the launches, not the arithmetic, set the time. The paper's Table 3 measures
# exactly that regime: ResNet-50, one image at a time, on a GTX 1080 Ti. The cell below turns its
# frames per second into the same kind of ratio (time with the module over time without):

# %%
# Table 3, GTX 1080 Ti
PAPER_FPS = {
    "none": 89,
    "se": 64,
    "cbam": 33,
    "eca": 64,
    "simam": 64,
}
for name, fps in PAPER_FPS.items():
    added_ms = 1e3 / fps - 1e3 / PAPER_FPS["none"]
    print(
        f"{LABELS[name]:>6}: {fps:3d} FPS, {1e3 / fps:5.1f} ms per image, "
        f"time ratio {PAPER_FPS['none'] / fps:.2f}, added {added_ms:4.1f} ms, "
        f"{added_ms / resnet50_blocks:.2f} ms per block"
    )

# %% [markdown]
# SE, ECA and SimAM add the same 4.4 ms per image, about 0.27 ms for each of the 16 blocks, although
# SE has 2.5M parameters, ECA 88 and SimAM none; CBAM adds 19 ms, 1.2 ms per block. One image
# leaves a GPU of that size mostly idle, so these times are mostly the cost of issuing operations
# rather than of arithmetic, and the "ATen ops" column of section 4.2 is a better guide to them
# than any FLOP count. It is a rough guide: it sets CBAM (19 operations per block) apart from the
# rest (SE 6, ECA 4, the reference formula of SimAM 11, which is what the paper timed), but it
# would make SimAM dearer than SE and ECA, which the paper measures alike.
#
# Two consequences for this library. Its `SimAM` runs more operations per block than the reference
# formula (section 4.2), the extra ones being its overflow guards and their per-channel
# bookkeeping; at batch size 1 on a GPU those launches may well cost more than the arithmetic, so
# the paper's 64 FPS is a figure for the reference formula, not a promise for this implementation.
# And at training batch sizes a GPU is limited by memory traffic instead, where the "element ops"
# column becomes the better guide. In both cases the answer is to measure: the timing cell above
# runs unchanged on a GPU, with larger batches and more repeats.

# %% [markdown]
# ## 4.5 What each module does to one image
#
# Finally, the weights themselves. We take a CIFAR-10 test image, pass it through a random but
# seeded $3 \times 3$ convolution with 64 output channels, and normalise every channel with the
# mean and standard deviation it has over a batch of 256 test images, as a BatchNorm before the
# module would. The resulting $64 \times 32 \times 32$ map goes through all five modules, and we
# read each module's *effective* weight off its input and output:
#
# - SE and ECA multiply each channel by one number, $A_c = \langle Y_c, X_c \rangle / \|X_c\|^2$, with
#   $Y$ the module's output;
# - CBAM's channel gate is read the same way from the output of its first stage, and its spatial
#   map from its second, as one number per position shared by all channels;
# - GC adds one number per channel, $T_c = \operatorname{mean}_{ij}(Y_{c,i,j} - X_{c,i,j})$;
# - SimAM multiplies every neuron by its own number, $\operatorname{sigmoid}(1/e^*_t)$, computed by
#   `simam.importance`.
#
# Each reading is checked: the module's output is rebuilt from the weights and compared with the
# real one. The modules other than SimAM are *untrained*: their weights show the form a module
# can express, not what it would learn. For GC that matters more than for the others, since an
# untrained GC block adds exactly zero (its last convolution starts at zero); for the figure we
# redraw that convolution with PyTorch's default initialisation, under a fixed seed, so that the
# shape of what it adds is visible.
#
# Where the input comes from matters for SimAM. The baselines sit after a block's last batch norm,
# so they do see normalised features. SimAM does not: in every network of the course, as in the
# reference code, it sits by default between the block's second convolution and that convolution's
# batch norm, and sees the raw convolution output. SimAM's weight depends on a channel only through
# $(t - \hat\mu)^2 / (s^2 + \lambda)$, which a per-channel shift and scale (what a batch norm
# applies) leaves unchanged when $\lambda$ is negligible against the channel's variance, and
# changes when it is not. So whether the raw or the normalised map goes in makes little difference
# unless a channel's raw variance comes near $\lambda$; the cell below checks this for the raw
# output of our convolution, and [chapter 6](06_results_and_attention_maps.ipynb) (section 6.7)
# measures the raw variances inside a trained network.

# %%
INDEX = 13
# downloaded into simam.data_root() when missing
images, labels, classes = course_cifar10(train=False)
images, source = (
    images[:256],
    f"CIFAR-10 test image {INDEX}, a {classes[int(labels[INDEX])]}",
)
print(f"input: {source}")

mean = torch.tensor(CIFAR10_MEAN)[:, None, None]
std = torch.tensor(CIFAR10_STD)[:, None, None]
torch.manual_seed(0)
stem = nn.Conv2d(3, 64, kernel_size=3, padding=1, bias=False)
with torch.no_grad():
    maps = stem((images.float() / 255 - mean) / std)
    batch_mean = maps.mean(dim=(0, 2, 3), keepdim=True)
    batch_std = maps.std(dim=(0, 2, 3), keepdim=True)
    features = (maps[INDEX : INDEX + 1] - batch_mean) / batch_std
image = images[INDEX]
print("feature map:", tuple(features.shape))

raw = maps[INDEX : INDEX + 1]
raw_variance = raw.var(dim=(2, 3), correction=1)
on_raw, on_normalised = (
    torch.sigmoid(simam.importance(raw)),
    torch.sigmoid(simam.importance(features)),
)
gap = (on_raw - on_normalised).abs().max().item()
print(
    f"raw channel variances {'>' if raw_variance.min() > 100 * 1e-4 else '<='} "
    "100 lambda; "
    "SimAM's weights on the raw and on the normalised map differ by "
    f"{'<' if gap < 1e-3 else '>='} 1e-3"
)
assert raw_variance.min() > 100 * 1e-4 and gap < 1e-3

# %%
def per_channel(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The least-squares factor A_c with Y_c ~ A_c X_c, one per channel."""
    return (y * x).sum(dim=(2, 3)) / x.square().sum(dim=(2, 3))


def per_position(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The least-squares factor a_ij with y_:ij ~ a_ij x_:ij, one per position."""
    return (y * x).sum(dim=1) / x.square().sum(dim=1)


torch.manual_seed(0)
modules = {name: create_attention(name, 64).eval() for name in MODULES}
modules["gc"].transform[
    -1
].reset_parameters()  # away from its zero start, so that GC adds something
x = features
weights, errors = {}, {}
with torch.no_grad():
    for name in ["se", "eca"]:
        y = modules[name](x)
        weights[name] = per_channel(y, x)[0]
        errors[name] = (y - weights[name][:, None, None] * x).abs().max()
    cbam = modules["cbam"]
    y_channel = cbam.channel_gate(x)
    weights["cbam channel"] = per_channel(y_channel, x)[0]
    weights["cbam spatial"] = per_position(cbam.spatial_gate(y_channel), y_channel)[0]
    rebuilt = weights["cbam spatial"] * weights["cbam channel"][:, None, None] * x
    errors["cbam"] = (cbam(x) - rebuilt).abs().max()
    y = modules["gc"](x)
    weights["gc"] = (y - x).mean(dim=(2, 3))[0]
    errors["gc"] = (y - x - weights["gc"][:, None, None]).abs().max()
    y = modules["simam"](x)
    weights["simam"] = torch.sigmoid(simam.importance(x))[0]
    errors["simam"] = (y - weights["simam"] * x).abs().max()

assert all(error < 1e-5 for error in errors.values()), errors
print("every module's output is rebuilt from the weights read off it, to within 1e-5")
for name, w in weights.items():
    print(
        f"{name:>13}: {str(tuple(w.shape)):>12}, from {w.min():6.3f} to {w.max():6.3f}"
    )

# %% [markdown]
# SimAM's weights lie between $\operatorname{sigmoid}(\tfrac12) \approx 0.622$ and 1, as they must:
# the importance $1/e^*_t$ is never below $\tfrac12$. The gates of the untrained modules spread
# around $\operatorname{sigmoid}(0) = 0.5$: SE's narrowly (two small random layers without biases
# shrink the pooled signal), ECA's more (three weights applied directly to the channel means),
# CBAM's channel gate the most (two MLP passes summed, with biases). A freshly built SE or ECA gate
# roughly halves every channel, and CBAM's spatial map shrinks its channels further; it is training
# that has to make the gates selective. GC's offsets are as large as the features only because its
# last convolution was redrawn for the figure; at its real start they are all zero.

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 5.5), sharex=True, layout="constrained")
for ax, (name, title) in zip(
    axes.flat,
    [
        ("se", "SE: one weight per channel"),
        ("eca", "ECA: one weight per channel"),
        ("cbam channel", "CBAM: channel gate (before the spatial map)"),
        ("gc", "GC: context added to each channel"),
    ],
):
    additive = name == "gc"
    ax.bar(
        torch.arange(64), weights[name], color="tab:green" if additive else "tab:blue"
    )
    ax.axhline(
        0 if additive else 0.5, color="grey", lw=0.8, ls="-" if additive else "--"
    )
    ax.set_title(title)
    ax.set_ylabel("added value" if additive else "weight")
    if not additive:
        ax.set_ylim(0, 1)
for ax in axes[1]:
    ax.set_xlabel("channel")
fig.suptitle(
    f"Channel-wise weights of the untrained modules on the same input ({source})"
)
plt.show()

# %% [markdown]
# SE and ECA differ in how their channel weights relate to each other. SE mixes all channels
# through its bottleneck, so its gates have no order; ECA's 1-D kernel sees only neighbouring
# channels, so each gate depends on $K = 3$ channels, itself and its two neighbours in the
# (arbitrary) channel order. CBAM's channel gate is SE's with biases and max pooling added. GC's
# bars are not multipliers at all but offsets added to every position of their channel.
#
# The maps are where SimAM differs. Below, the top row shows the image and three of the 64 feature
# channels (of those whose SimAM weights vary most, three whose weight maps differ); the bottom row
# shows CBAM's single spatial map and SimAM's weights for the same three channels.

# %%
# The three channels whose SimAM weights vary most, skipping any whose map resembles one
# already chosen (correlation above 0.5), so that the three show different things.
shown = []
for c in weights["simam"].flatten(1).std(dim=1).argsort(descending=True).tolist():
    maps_so_far = [weights["simam"][d].flatten() for d in shown]
    if all(
        torch.corrcoef(torch.stack([weights["simam"][c].flatten(), m]))[0, 1].abs()
        < 0.5
        for m in maps_so_far
    ):
        shown.append(c)
    if len(shown) == 3:
        break
print("channels shown:", shown)

fig, axes = plt.subplots(2, 4, figsize=(12, 6.2), layout="constrained")
axes[0, 0].imshow(image.permute(1, 2, 0).numpy())
axes[0, 0].set_title("input image")
cbam_shade = axes[1, 0].imshow(weights["cbam spatial"], cmap="magma")
axes[1, 0].set_title("CBAM: one spatial map")
fig.colorbar(
    cbam_shade, ax=axes[1, 0], location="left", shrink=0.8, label="CBAM weight"
)
for col, c in enumerate(shown, start=1):
    limit = features[0, c].abs().max()
    axes[0, col].imshow(features[0, c], cmap="coolwarm", vmin=-limit, vmax=limit)
    axes[0, col].set_title(f"feature channel {c}")
    shade = axes[1, col].imshow(weights["simam"][c], cmap="magma", vmin=0.62, vmax=1)
    axes[1, col].set_title(f"SimAM weights, channel {c}")
fig.colorbar(shade, ax=axes[1, 1:], shrink=0.8, label="SimAM weight")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# SimAM's weight is high wherever a neuron stands out from the rest of its channel, in either
# direction: the feature maps are signed (blue negative, red positive), SimAM's
# importance $(t - \hat\mu)^2 / \bigl(4(s^2 + \lambda)\bigr) + \tfrac12$ is not. Each channel gets
# its own map, so two channels can emphasise different places of the same image, which neither
# the channel-wise modules (one number per channel) nor CBAM (one map for all channels) can
# express. (The bright frame in some maps comes from the convolution's zero padding: border
# neurons differ from the rest of their channel, and SimAM weighs them up too; CBAM's $7 \times 7$
# convolution, padded with zeros as well, marks the border in its map for the same reason.) The
# price is the elementwise work counted in section 4.2 and, in training, the feature map it keeps
# for the backward pass ([chapter 3](03_building_simam.ipynb), section 3.5).


# %% [markdown]
# ## 4.6 In a network you did not write
#
# Most networks a reader uses come from torchvision or timm, whose residual blocks have no slot
# for attention between the $3 \times 3$ convolution and its batch norm. `simam.insert_attention`
# finds the blocks (by their layout: `conv1`, `bn1`, `conv2`, `bn2`, in a bottleneck also `conv3`,
# `bn3`, and a `downsample`) and wraps the layer the attention follows: SimAM goes after `conv2`,
# as in the reference code, the other modules after the branch's last batch norm, as their
# authors place them. It refuses, with an error, a network where it recognises no block.
#
# Put into torchvision's ImageNet ResNet-50, built on the `meta` device again, every module must
# add exactly the parameters that section 4.3 summed block by block:

# %%
for name in MODULES:
    with torch.device("meta"):
        network = torchvision.models.resnet50()
    simam.insert_attention(network, name)
    added = count_parameters(network) - resnet50_parameters
    assert added == totals["ResNet-50"][name][0], (name, added)
    print(
        f"{LABELS[name]:>6} inserted into torchvision's resnet50: "
        f"+{added:,} parameters, as summed in 4.3"
    )

# %% [markdown]
# And in torchvision's `resnet18` (with `weights="IMAGENET1K_V1"` for a fine-tuning; this course
# runs offline, so its weights here are random), SimAM sits right after each block's second
# convolution. A block computed by hand, layer by layer, must give what the block computes:

# %%
resnet18 = torchvision.models.resnet18(num_classes=10)
parameters_before = count_parameters(resnet18)
simam.insert_attention(resnet18, "simam")
print(resnet18.layer1[0])
inserted = [
    name for name, module in resnet18.named_modules() if isinstance(module, simam.SimAM)
]
print(
    f"{len(inserted)} SimAM modules, in {inserted[0]}, ..., {inserted[-1]}; "
    f"parameters {parameters_before:,} before and {count_parameters(resnet18):,} after"
)
assert len(inserted) == 8 and count_parameters(resnet18) == parameters_before

block = resnet18.layer1[0].eval()
features = torch.randn(2, 64, 16, 16, generator=torch.Generator().manual_seed(0))
convolution, attention = block.conv2
by_hand = torch.relu(
    block.bn2(attention(convolution(torch.relu(block.bn1(block.conv1(features))))))
    + features
)
assert torch.allclose(block(features), by_hand)
print(
    "layer1[0] by hand: relu(bn2(SimAM(conv2(relu(bn1(conv1(x)))))) + x), "
    "as the block computes it"
)

try:
    simam.insert_attention(torchvision.models.vgg11(), "simam")
except ValueError as error:
    print(f"VGG-11: {error}")

# %% [markdown]
# The module can be named, as above, or given as a class (or a `functools.partial` of one, with
# its settings): `insert_attention` builds one per block with the block's channel count, which is
# how a module of your own goes in. Its place can be chosen too, for any module, with
# `position=`: `"after_conv"` (after the $3 \times 3$ convolution, before its batch norm) or
# `"end_of_branch"` (after the branch's last batch norm); the default, `"paper"`, is the rule
# above, SimAM after the convolution and every other module at the end of the branch. The layer
# the module follows becomes a two-layer `nn.Sequential`, so the block itself says where it went:


# %%
def attended_layer(block: nn.Module, module: type[nn.Module]) -> str:
    """The layer of a basic block that `module` was inserted after."""
    return next(
        name
        for name in ("conv2", "bn2")
        if isinstance(getattr(block, name), nn.Sequential)
        and isinstance(getattr(block, name)[1], module)
    )


for module in (simam.SimAM, simam.attention.ECA):
    paper_place = "conv2" if module is simam.SimAM else "bn2"
    asked = {"paper": paper_place, "after_conv": "conv2", "end_of_branch": "bn2"}
    for position, expected in asked.items():
        network = torchvision.models.resnet18(num_classes=10)
        simam.insert_attention(network, module, position=position)
        layer = attended_layer(network.layer1[0], module)
        assert layer == expected, (module, position, layer)
        print(f"{module.__name__:>5} with position={position!r}: after {layer}")

# %% [markdown]
# ## What this chapter established
#
# - SE, CBAM and GC add millions of parameters to ResNet-50, ECA a few dozen, SimAM none; by
#   FlopCounterMode's count, and with the elementwise work it does not count, every module stays
#   below 1% of the network's FLOPs.
# - What a module costs in time depends on the hardware, so section 4.4 measures it on yours; in
#   the paper's GPU timings, one image at a time, SE, ECA and SimAM cost the same, whatever their
#   arithmetic.
# - SimAM alone gives every neuron its own weight, from a convolution's raw output, and
#   `simam.insert_attention` puts any of the five, or a module of your own (exercise 4), into
#   torchvision's ResNets and any network whose blocks are laid out like theirs.
#
# Next, [chapter 5](05_training_cifar_resnets.ipynb) trains CIFAR ResNets with them.

# %% [markdown]
# ## Exercises
#
# Four exercises, each followed by its folded solution. In the first three you check a count or a
# claim of this chapter; in the last you build a module of your own and measure it with the
# chapter's tools.
#
# **Exercise 1 (SE's parameters).** SE's two layers map $C$ channels to $C' = C/16$ and back.
# Write its parameter count for $C$ channels and $C'$ hidden units, without and with biases, and
# check it against `create_attention("se", 256)` and `create_attention("se", 256, bias=True)`.

# %% jupyter={"source_hidden": true} tags=["solution"]
# Two C x C' weight matrices, C' = C/16; the biases add C' + C.
for bias in (False, True):
    se = create_attention("se", 256, bias=bias)
    by_hand = 2 * 256 * (256 // 16) + (256 // 16 + 256 if bias else 0)
    assert count_parameters(se) == by_hand
    print(f"1. SE, 256 channels, C' = 16, bias={bias}: {by_hand:,} parameters")

# %% [markdown]
# **Exercise 2 (ECA's kernel size).** ECA picks its kernel size from the channel count:
# $K = \left|\frac{\log_2 C + 1}{2}\right|_{\text{odd}}$, the odd number nearest to
# $(\log_2 C + 1)/2$, ties going up (section 4.1). Compute $K$ by hand for $C = 64, 256, 2048$ and
# compare with `eca_kernel_size`.

# %% jupyter={"source_hidden": true} tags=["solution"]
# The odd number nearest to t = (log2 C + 1)/2, ties up: the integer part of t, plus
# one if that is even.
for channels in (64, 256, 2048):
    t = (math.log2(channels) + 1) / 2
    k = int(t) if int(t) % 2 else int(t) + 1
    assert k == eca_kernel_size(channels)
    print(f"2. ECA, {channels} channels: (log2 C + 1)/2 = {t:g}, K = {k}")

# %% [markdown]
# **Exercise 3 (GC at its start, and at $C = 16$).** Section 4.5 redrew GC's last convolution "so
# that it adds something". Check that a GC block as built returns its input unchanged, and say why
# a residual network starts well that way. Then redraw that convolution, as section 4.5 does, in a
# GC block for 16 channels and in one for 32, and feed each block two unrelated inputs. Predict
# from section 4.2 which of the two blocks adds the same to both inputs, then check.

# %% jupyter={"source_hidden": true} tags=["solution"]
# As built, the last convolution of GC's transform is zero, so the block adds nothing:
# a residual branch with GC starts as the branch without it, and the network as the
# plain ResNet. At C = 16 the bottleneck has one unit, which the LayerNorm sets to its
# shift whatever the input: the block adds a learned constant.
gc = create_attention("gc", 64)
x = torch.randn(2, 64, 8, 8, generator=torch.Generator().manual_seed(0))
unchanged = torch.equal(gc(x), x)
assert unchanged
print(f"3. GC as built returns its input unchanged: {unchanged}")
inputs_generator = torch.Generator().manual_seed(1)
for channels in (16, 32):
    torch.manual_seed(0)
    gc = create_attention("gc", channels)
    gc.transform[-1].reset_parameters()
    added = []
    hook = gc.transform.register_forward_hook(
        lambda m, i, out, added=added: added.append(out)
    )
    with torch.no_grad():
        for scale in (1.0, 5.0):
            gc(scale * torch.randn(1, channels, 8, 8, generator=inputs_generator))
    hook.remove()
    same = torch.equal(added[0], added[1])
    assert same == (channels == 16)
    print(
        f"3. GC, {channels} channels (C' = {max(1, channels // 16)}), last convolution "
        f"redrawn: adds the same to two unrelated inputs: {same}"
    )

# %% [markdown]
# **Exercise 4 (a module of your own).** SimAM measures how far a neuron lies from its channel's
# *mean*, which the very neurons it looks for pull towards themselves. Write `MedianSimAM`: SimAM
# with each channel's median in place of its mean, the spread measured around the median too
# (divided by $M - 1$). Give it the shape of the package's modules: the channel count first, then
# `lambda_`, and keyword arguments `device` and `dtype` that it accepts and ignores, as `SimAM`
# does, since it has nothing to create. Before measuring, predict:
#
# - how many parameters `simam.insert_attention(resnet18, MedianSimAM)` adds to torchvision's
#   `resnet18`, and how many FLOPs per image FlopCounterMode adds;
# - how many element operations per element `OpCounter` charges it on the $256 @ 56 \times 56$ map
#   of section 4.2, against the 8.00 of `simam-reference`, and whether that count can tell a
#   median from a mean;
# - where in a block `insert_attention` puts it, and how to put it where SimAM goes.
#
# Then measure all three.

# %% jupyter={"source_hidden": true} tags=["solution"]
# No parameters, and nothing FlopCounterMode counts. The same eight passes as the
# reference formula, the median's among them: the counter charges a selection like a
# sum. insert_attention keeps the place after conv2 for SimAM (section 4.6), so any
# other module goes after bn2 unless position="after_conv" says otherwise.
class MedianSimAM(nn.Module):
    """SimAM with the median of each channel in place of its mean."""

    def __init__(
        self,
        channels: int | None = None,
        lambda_: float = 1e-4,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.channels, self.lambda_ = channels, lambda_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        median = flat.median(dim=-1, keepdim=True).values
        squared_distance = (flat - median).square()
        variance = squared_distance.sum(dim=-1, keepdim=True) / (flat.shape[-1] - 1)
        weight = torch.sigmoid(squared_distance / (4 * (variance + self.lambda_)) + 0.5)
        return x * weight.view_as(x)


def flops_per_image(network: nn.Module) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network.eval()(torch.randn(1, 3, 64, 64))
    return counter.get_total_flops()


plain = torchvision.models.resnet18(num_classes=10)
with_median = simam.insert_attention(
    torchvision.models.resnet18(num_classes=10), MedianSimAM
)
added_parameters = count_parameters(with_median) - count_parameters(plain)
added_flops = flops_per_image(with_median) - flops_per_image(plain)
assert added_parameters == 0 and added_flops == 0
print(
    f"4. MedianSimAM in resnet18: +{added_parameters} parameters, "
    f"+{added_flops} FLOPs (FlopCounterMode, one 64x64 image)"
)

x = torch.randn(1, 256, 56, 56, generator=torch.Generator().manual_seed(0))
with OpCounter() as counter, torch.no_grad():
    MedianSimAM(256)(x)
per_element = counter.element_ops / x.numel()
reference_per_element = counters["simam-reference"].element_ops / elements
assert round(per_element, 2) == round(reference_per_element, 2)
full_passes = [op for op, _, n in counter.ops if n >= x.numel()]
print(
    f"4. element ops per element: MedianSimAM {per_element:.2f}, "
    f"simam-reference {reference_per_element:.2f}"
)
print(f"4. MedianSimAM's {len(full_passes)} passes: {', '.join(full_passes)}")

block = with_median.layer1[0]
after_conv = simam.insert_attention(
    torchvision.models.resnet18(num_classes=10), MedianSimAM, position="after_conv"
).layer1[0]
assert isinstance(block.bn2[1], MedianSimAM) and isinstance(
    after_conv.conv2[1], MedianSimAM
)
default_place = ", ".join(type(m).__name__ for m in block.bn2)
conv_place = ", ".join(type(m).__name__ for m in after_conv.conv2)
print(f"4. by default: bn2 = Sequential({default_place}), the end of the branch")
print(f"4. with position='after_conv': conv2 = Sequential({conv_place})")

# %% [markdown]
# ## References
#
# - Cao, Xu, Lin, Wei and Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks and
#   Beyond", ICCV Workshops 2019.
# - He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
# - Hu, Shen and Sun, "Squeeze-and-Excitation Networks", CVPR 2018.
# - Wang, Wu, Zhu, Li, Zuo and Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
#   Neural Networks", CVPR 2020.
# - Woo, Park, Lee and Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018.
# - Yang, Zhang, Li and Xie, "SimAM: A Simple, Parameter-Free Attention Module for Convolutional
#   Neural Networks", ICML 2021.
