"""The ``simam-experiments`` command (``python -m simam.experiments``): run a grid, print its
commands, run one of them, summarise a results folder, export weights. (The course's README section
is written by ``python -m simam.course.readme``.)"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from simam.config import OneLineParser
from simam.experiments.grid import (
    RunOutcome,
    run_grid,
    run_one,
    shell_commands,
)
from simam.experiments.plan import (
    DEFAULT_ATTENTIONS,
    GridError,
    RunSpec,
    check_extra_args,
    plan,
    plan_lambda_ablation,
)
from simam.experiments.plots import write_summary
from simam.experiments.results import read_results, results_path
from simam.experiments.study import read_study
from simam.experiments.summary import summarise, summary_markdown
from simam.experiments.weights import export
from simam.paper_results import FIGURE4_DATASET


class _Parser(OneLineParser):
    error_type = GridError


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        values = [int(part) for part in _names(text)]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(
            f"expected a count such as 5 or seeds such as 0,1,2, got {text!r}"
        )
    return list(range(values[0])) if len(values) == 1 and "," not in text else values


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers such as 1e-4,1e-5, got {text!r}"
        ) from None


def _add_grid_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--models", type=_names, help="comma-separated networks (default resnet20)")
    add(
        "--attentions",
        type=_names,
        help=f"comma-separated attentions (default {','.join(DEFAULT_ATTENTIONS)})",
    )
    add(
        "--datasets",
        type=_names,
        help="comma-separated data sets (default cifar10; "
        f"{FIGURE4_DATASET} with --lambda-ablation)",
    )
    add(
        "--seeds",
        type=_seeds,
        default=list(range(5)),
        help="a count (seeds 0..N-1) or comma-separated seeds (default 5)",
    )
    add(
        "--recipe",
        type=_names,
        default=["paper"],
        help="recipe, or comma-separated recipes (default paper)",
    )
    add(
        "--lambdas",
        type=_floats,
        help="comma-separated lambdas for the SimAM attentions (default: the trainer's, 1e-4)",
    )
    add(
        "--plan",
        help="a study's plan (results/plans/*.toml): run exactly its cells; no other grid option",
    )
    add(
        "--place",
        help="where each block puts the attention: after_conv or end_of_branch "
        "(default: the paper's place)",
    )
    add(
        "--lambda-ablation",
        action="store_true",
        help="the paper's Figure 4 grid: resnet20 without attention "
        "and with simam at lambda 1e-1..1e-6",
    )
    add("--out", default="results", help="results folder (default results)")
    add(
        "--gpus-per-run",
        type=int,
        default=1,
        help="GPUs per run; above 1 the run is launched by torchrun (default 1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="simam-experiments",
        description="Grids of simam.train runs, their results and summary. "
        "Trainer options for every run follow a lone --, e.g. -- --iterations 60 --subset 512.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run a grid (resuming what is unfinished)")
    _add_grid_options(run)
    run.add_argument(
        "--workers", type=int, help="runs at once (default: one per GPU group, else 1)"
    )
    _add_grid_options(
        commands.add_parser("commands", help="print one shell command per pending run")
    )
    one = commands.add_parser(
        "run-one", help="train one run and append its line (what `commands` prints)"
    )
    for option in ("dataset", "model", "attention"):
        one.add_argument(f"--{option}", required=True)
    one.add_argument("--recipe", default="paper")
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--lambda", dest="lambda_", type=float)
    one.add_argument("--place")
    one.add_argument(
        "--variant", help="a study's cell whose trainer options change the recipe (with --options)"
    )
    one.add_argument(
        "--options",
        type=shlex.split,
        default=[],
        help="that cell's trainer options, as one quoted string",
    )
    one.add_argument("--seeds-asked", type=int, default=1)
    one.add_argument("--gpus-per-run", type=int, default=1)
    one.add_argument("--out", default="results")
    summary = commands.add_parser(
        "summary", help="mean ± std per cell beside the paper's Table 2: Markdown, CSV, plots"
    )
    summary.add_argument("out", help="results folder")
    summary.add_argument(
        "--seeds", type=int, help="seeds asked per cell (default: what the grid asked)"
    )
    summary.add_argument("--to", help="folder for the files (default: the results folder)")
    weights = commands.add_parser(
        "weights", help="write the trained weights of finished runs for simam.pretrained"
    )
    weights.add_argument("out", help="results folder")
    weights.add_argument(
        "--seeds",
        type=_seeds,
        default=[0],
        help="seeds whose weights to write, a count or comma-separated as for run "
        "(default: seed 0)",
    )
    weights.add_argument(
        "--attentions",
        type=_names,
        help="comma-separated attentions whose weights to write (default: all)",
    )
    return parser


def _grid(args: argparse.Namespace) -> list[RunSpec]:
    if args.plan:
        given = [
            option
            for option in ("models", "attentions", "datasets", "lambdas", "place")
            if getattr(args, option) is not None
        ] + (["lambda-ablation"] if args.lambda_ablation else [])
        if given:
            raise GridError(f"--plan sets the cells itself; drop --{given[0]}")
        return read_study(args.plan).specs()
    if args.lambda_ablation:
        given = [
            option
            for option in ("models", "attentions", "lambdas")
            if getattr(args, option) is not None
        ]
        if given:
            raise GridError(
                "--lambda-ablation sets the models, attentions and lambdas itself; "
                f"drop --{given[0]}"
            )
        return [
            spec
            for dataset in (args.datasets or [FIGURE4_DATASET])
            for recipe in args.recipe
            for spec in plan_lambda_ablation(args.seeds, recipe, dataset)
        ]
    return plan(
        args.models or ["resnet20"],
        args.attentions or DEFAULT_ATTENTIONS,
        args.datasets or ["cifar10"],
        args.seeds,
        args.recipe,
        args.lambdas,
        args.place,
    )


def main(argv: list[str] | None = None) -> int:
    """The ``simam-experiments`` command; returns the exit status
    (2: bad options, 1: a run failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    argv, extra_args = argv[:split], argv[split + 1 :]
    try:
        args = build_parser().parse_args(argv)
        if extra_args and args.command in ("summary", "weights"):
            raise GridError(f"{args.command} takes no trainer options")
        return _COMMANDS[args.command](args, extra_args)
    except SystemExit as exit_:  # --help
        return exit_.code or 0
    except GridError as error:
        print(f"simam-experiments: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "simam-experiments: interrupted; run the same command again to resume", file=sys.stderr
        )
        return 130


def _run(args: argparse.Namespace, extra_args: list[str]) -> int:
    out = _results_folder(args)
    outcomes = run_grid(_grid(args), out, args.workers, args.gpus_per_run, extra_args)
    return _report(outcomes)


def _results_folder(args: argparse.Namespace) -> Path:
    """``--out``, or the folder inside it where ``--plan``'s study keeps its runs."""
    return read_study(args.plan).results_folder(args.out) if args.plan else Path(args.out)


def _report(outcomes: Sequence[RunOutcome]) -> int:
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} runs failed:", file=sys.stderr)
        for outcome in failed:
            print(f"  {outcome.spec.run_id}: {outcome.message}", file=sys.stderr)
        return 1
    return 0


def _commands(args: argparse.Namespace, extra_args: list[str]) -> int:
    if args.gpus_per_run < 1:
        raise GridError(f"gpus per run must be at least 1, got {args.gpus_per_run}")
    out = _results_folder(args)
    for command in shell_commands(_grid(args), out, extra_args, args.gpus_per_run):
        print(command)
    return 0


def _run_one(args: argparse.Namespace, extra_args: list[str]) -> int:
    check_extra_args(extra_args)
    spec = plan(
        [args.model],
        [args.attention],
        [args.dataset],
        [args.seed],
        [args.recipe],
        None if args.lambda_ is None else [args.lambda_],
        args.place,
    )[0]
    if (args.variant is None) != (not args.options):
        raise GridError("--variant and --options go together: a study's cell and its options")
    if args.variant is not None:
        check_extra_args(args.options)
        spec = dataclasses.replace(spec, variant=args.variant, options=tuple(args.options))
    if args.gpus_per_run < 1 or args.seeds_asked < 1:
        raise GridError("--gpus-per-run and --seeds-asked must be at least 1")
    outcome = run_one(spec, args.out, extra_args, args.gpus_per_run, args.seeds_asked)
    print(f"{spec.run_id}: {outcome.status}, {outcome.message}")
    return _report([outcome])


def _summary(args: argparse.Namespace, extra_args: list[str]) -> int:
    results = read_results(args.out)
    if not results:
        raise GridError(f"no finished runs in {results_path(args.out)}")
    cells = summarise(results, args.seeds)
    paths = write_summary(cells, args.to or args.out)
    print(summary_markdown(cells))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _weights(args: argparse.Namespace, extra_args: list[str]) -> int:
    for path in export(
        args.out, tuple(args.seeds), None if args.attentions is None else tuple(args.attentions)
    ):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


_COMMANDS = {
    "run": _run,
    "commands": _commands,
    "run-one": _run_one,
    "summary": _summary,
    "weights": _weights,
}


if __name__ == "__main__":
    sys.exit(main())
