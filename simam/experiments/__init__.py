"""Grids of training runs, their results file, and the tables and plots made from it:
``python -m simam.experiments``.

Read top to bottom: a grid is planned as a list of :class:`RunSpec` (one training run each), run
(several at once, resuming what was interrupted), recorded one line per finished run, then
summarised beside the SimAM paper's Table 2 and plotted. The course writes them into its results
page and the README's headline (:mod:`simam.course.readme`).

**The output folder** (``--out``, default ``results/``):

- ``runs/<run-id>/``: one ordinary :mod:`simam.train` run folder per run (``metrics.jsonl``,
  ``checkpoint.pt``, ``final.json``) plus ``train.log``, the trainer's output; beside it
  ``runs/<run-id>.lock``, locked by the one process that trains the run (another skips it). Run ids
  read like ``cifar10-resnet20-simam-paper-seed0`` (``...-simam-lambda1e-05-paper-seed0`` off the
  default lambda).
- ``results.jsonl``: one JSON line per finished run (the grid cell, the full configuration, final
  and best test accuracy, wall time, library versions, device). It is only ever appended to, one
  line per run in one locked write, and read under the same lock, so several cluster jobs can feed
  the same file. A run is finished when its line is there (its first line, should a file hold two).

**Resuming.** Running the same grid again skips the finished runs, continues each unfinished run
from its checkpoint (``--resume``) and starts afresh a run that was killed before its first
checkpoint. A results folder holds one set of trainer options: a finished run whose configuration
differs from the one asked for is an error, not a silent reuse.

**Several runs at once.** Each run is a child process, so runs are isolated. On a CPU machine
``--workers`` runs share the cores (``--threads cores // workers`` each, unless the trainer options
say otherwise). With GPUs each worker owns ``--gpus-per-run`` GPUs through ``CUDA_VISIBLE_DEVICES``
(default: as many workers as GPU groups; a parent ``CUDA_VISIBLE_DEVICES`` limits the GPUs used). A
run with one GPU is ``python -m simam.train``; with K > 1 it is launched by torchrun, as
``python -m torch.distributed.run --standalone --nproc_per_node=K -m simam.train`` (the module
behind the ``torchrun`` command, run by this interpreter). ``commands`` prints one shell command per
pending run instead, for any cluster scheduler; each command (``run-one``) trains its run on the
GPUs the scheduler gave it (``CUDA_VISIBLE_DEVICES`` is left alone) and appends its line.

**Summary.** Per cell (data set, model, attention, lambda, recipe and any other trainer option that
differs from the recipe): the mean and sample standard deviation of the *final* test accuracy over
seeds, the number of seeds (marked when fewer than asked), Table 2's value
(:mod:`simam.paper_results`) and the difference, as Markdown and CSV, and plots.

**Studies** (:mod:`simam.experiments.study`): a plan under ``results/plans/`` (TOML), committed
before its runs, names a study's question, cells, seeds, primary metric and comparisons;
``run --plan FILE`` trains exactly its cells. **Verdicts** (:mod:`simam.experiments.study_verdict`,
on :mod:`simam.stats`): each planned comparison with Welch's 95% interval, Welch's and an exact
permutation test's p-values (also with runs exchanged only within a CPU model) and Holm's correction
over the primary family; the course tells them as tables and sentences
(:mod:`simam.course.verdicts`). A grid without a plan gets the standard comparisons
(:func:`~simam.experiments.verdict.judge`): each module against no attention, and SimAM against the
best other module, as exploratory. The command ``readme`` prints them with the figures
(``plot_seeds``, ``plot_study``, ``plot_lambda_ablation``).

**The lambda study** (``--lambda-ablation``): the paper's Figure 4 grid, ResNet-20 with SimAM for
lambda from 1e-1 down to 1e-6 plus the baseline without attention, on CIFAR-100 as the paper's
figure is (``--datasets`` changes it).
"""

from simam.experiments.grid import (
    LOG,
    RunOutcome,
    launch_command,
    run_grid,
    run_one,
    shell_commands,
    visible_gpus,
    worker_slots,
)
from simam.experiments.plan import (
    DEFAULT_ATTENTIONS,
    GridError,
    RunSpec,
    check_extra_args,
    plan,
    plan_lambda_ablation,
)
from simam.experiments.plots import (
    plot_lambda_ablation,
    plot_seeds,
    plot_study,
    plot_summary,
    write_summary,
)
from simam.experiments.results import (
    RESULTS,
    RUNS,
    append_result,
    pending,
    read_results,
    result_line,
    results_path,
)
from simam.experiments.study import Study, read_studies, read_study
from simam.experiments.study_verdict import StudyVerdict, judge_in, judge_studies, judge_study
from simam.experiments.summary import (
    Cell,
    overrides,
    summarise,
    summary_csv,
    summary_markdown,
)
from simam.experiments.verdict import grid_seeds_needed, judge

__all__ = [
    "DEFAULT_ATTENTIONS",
    "LOG",
    "RESULTS",
    "RUNS",
    "Cell",
    "GridError",
    "RunOutcome",
    "RunSpec",
    "Study",
    "StudyVerdict",
    "append_result",
    "check_extra_args",
    "grid_seeds_needed",
    "judge",
    "judge_in",
    "judge_studies",
    "judge_study",
    "launch_command",
    "overrides",
    "pending",
    "plan",
    "plan_lambda_ablation",
    "plot_lambda_ablation",
    "plot_seeds",
    "plot_study",
    "plot_summary",
    "read_results",
    "read_studies",
    "read_study",
    "result_line",
    "results_path",
    "run_grid",
    "run_one",
    "shell_commands",
    "summarise",
    "summary_csv",
    "summary_markdown",
    "visible_gpus",
    "worker_slots",
    "write_summary",
]
