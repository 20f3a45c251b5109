"""The `moonas` command line: parses arguments, configures logging, turns errors into one line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from moonas.bars import advance, progress_bar
from moonas.errors import MoonasError, Terminated, UsageError

if TYPE_CHECKING:
    from moonas.run import Run

__all__ = ["main", "build_parser"]

log = logging.getLogger("moonas")

_HELP = {
    "search": "run a multi-budget architecture search -> a Pareto front in a run directory",
    "cost": "price architectures (params, MACs) without training",
}


def _cmd_cost(args: argparse.Namespace) -> int:
    from moonas.config import load_config
    from moonas.pricing import latency_pricer, price_architectures, space_extremes

    if args.extremes and (args.arch or args.from_file):
        raise UsageError("--extremes prices the space's cheapest and dearest architectures, "
                          "not the ones given: drop --extremes, or the architectures")
    config = load_config(args.config, list(args.set))  # once, for every pricing below
    latency = latency_pricer(config, ())  # a missing table: one line, first
    if args.extremes:
        for record in space_extremes(config):
            print(json.dumps(latency.add(record) if latency else record))
        if latency:
            for record in latency.extremes():
                print(json.dumps(record))
        return 0
    # (where, text): bare ints as separate arguments (`3 3 0 1 2 4`) are one architecture.
    bare = [a.strip().lstrip("-").isdigit() for a in args.arch]
    args_ints = bool(args.arch) and all(bare)
    if sum(bare) > 1 and not args_ints:  # `3 3 0 1 2 abc`: the odd one out is the bad one
        i = bare.index(False)
        raise MoonasError(f"argument {i + 1} {args.arch[i]!r} is not an int, and bare ints "
                          f"({' '.join(a for a, b in zip(args.arch, bare) if b)}) are the "
                          "choices of one architecture: give every choice as an int, or each "
                          "architecture as one argument (arch_str, JSON list or comma-separated "
                          "ints)")
    sources = ([("arguments", " ".join(args.arch))] if args_ints
               else [(f"argument {i + 1}", a) for i, a in enumerate(args.arch)])
    if args.from_file:
        sources += [(f"{args.from_file} line {i + 1}", line)
                    for i, line in enumerate(_arch_lines(Path(args.from_file)))
                    if line.strip() and not line.lstrip().startswith("#")]
    if not sources:
        raise MoonasError(
            "no architectures given: pass them as arguments, with --from FILE, "
            "or use --extremes for the cheapest and dearest of the space"
        )
    records = price_architectures(config, [text for _, text in sources])
    lines = []  # every architecture priced before any is printed: a failure prints nothing
    for where, _ in sources:
        try:
            record = next(records)
        except MoonasError as err:
            raise MoonasError(f"{where}: {err}") from None
        lines.append(json.dumps(latency.add(record) if latency else record))
    for line in lines:
        print(line)
    return 0


def _arch_lines(path: Path) -> list[str]:
    """The lines of `cost --from FILE`, or one line saying why it cannot be read."""
    if path.is_dir():
        raise MoonasError(f"--from {path} is a folder: give a text file with one architecture "
                          "per line")
    if not path.is_file():
        raise MoonasError(f"--from {path}: no such file; give a text file with one "
                          "architecture per line")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise MoonasError(f"--from {path} is not UTF-8 text (a binary file?): give a text file "
                          "with one architecture per line (arch_str, JSON list or "
                          "comma-separated ints)") from None
    except OSError as err:
        raise MoonasError(f"--from {path} cannot be read ({err.strerror}): give a readable "
                          "text file") from None


class _Bar:
    """A tqdm bar (ETA, step, losses) fed by the library's progress callback."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None
        self.phase = None

    def __call__(self, done: int, total: int, info: dict) -> None:
        phase = info.get("phase", "train")
        if "run" in info:  # asng-separate: one bar per phase of each budget's run
            phase = f"{phase} budget {info['run'] + 1}/{info['runs']}"
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = progress_bar(total or None, f"{self.desc} {phase}", info.get(
                "unit", "step" if phase.startswith("train") else "arch"))
        post = {}
        if "epoch" in info:
            post["epoch"] = info["epoch"]
        if "train_loss" in info:
            post["train"] = f"{info['train_loss']:.3f}"
        if "val_loss" in info:
            post["val"] = "/".join(f"{v:.2f}" for v in info["val_loss"])
        self.bar.set_postfix(post, refresh=False)
        advance(self.bar, done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _version() -> str:
    """`moonas --version`: moonas's own version and what it runs on (a bug report's first
    line)."""
    import platform

    from moonas import __version__

    try:
        from importlib.metadata import version

        torch_version = version("torch")
    except Exception:  # noqa: BLE001 - a broken torch install still gets moonas's version
        torch_version = "not installed"
    return f"moonas {__version__} (torch {torch_version}, Python {platform.python_version()})"


class _VersionAction(argparse.Action):
    """`--version`, its text made only when asked for (argparse's own takes it when the parser
    is built, and the package metadata look-up would then slow every command)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(_version())
        parser.exit()


def _amount(value: float) -> str:
    """A budget as `pick` prints amounts: whole counts with separators (1,000,000), others in
    six significant digits (3.39986)."""
    return f"{int(value):,}" if value >= 1 and value == round(value) else f"{value:.6g}"


def front_summary(run: Run) -> list[str]:
    """What `moonas search` prints at the end: the front, each budget's pick, and a note when
    one architecture dominates every other measured."""
    front = run.front
    latency = front.cost.startswith("latency:")
    unit = " ms" if latency else ""
    n = len(front.architectures)
    out = [f"front of {n} architecture{'' if n == 1 else 's'} -> {run.dir}/pareto.json"]
    for k, pick in enumerate(front.picks):
        limit = (f"{front.cost} <= {_amount(front.budgets[k])}{unit}"
                 if front.budgets is not None else f"eps = {front.coefficients[k]:g}")
        if pick is None:
            out.append(f"  budget {k} ({limit}): nothing on the front fits")
            continue
        c = next(a for a in front.architectures if a.id == pick)
        ms = (f"  latency {c.latency_ms:.4g} ms" if latency and c.latency_ms is not None
              else "")
        out.append(f"  budget {k} ({limit}): id {c.id}  accuracy {c.accuracy:.4f}  "
                   f"params {c.params:,}  macs {c.macs:,}{ms}  {c.arch_str}")
    if len(front.architectures) == 1 and len(run.candidates) > 1:
        only = front.architectures[0]
        out.append(f"note: of {len(run.candidates)} measured candidates, id {only.id} is at "
                   f"least as accurate as every other and no costlier in {front.cost}, so every "
                   f"budget {'' if None not in front.picks else 'it fits '}picks it; the others "
                   f"are in {run.dir}/candidates.csv (a harder task, a longer search or a larger "
                   "validation split separates them)")
    return out


def _cmd_search(args: argparse.Namespace) -> int:
    from moonas.config import load_config

    _check_search_flags(args)
    # The config first: a typo in it is one line in a fraction of a second, before the search
    # machinery (torch) loads. A resume reads the run's own config.
    config = args.config if args.resume else load_config(args.config, list(args.set))
    from moonas.search import search

    bar = _Bar("search")
    try:
        run = search(config, args.resume or args.out, overrides=tuple(args.set) if args.resume
                     else (), resume=bool(args.resume), force=args.force,
                     progress=None if args.quiet else bar)
    finally:
        bar.close()
    print("\n".join(front_summary(run)))
    return 0


def _check_search_flags(args: argparse.Namespace) -> None:
    """Flags that contradict --resume (it continues the run where it is, as it was)."""
    if args.resume and args.out is not None and Path(args.out) != Path(args.resume):
        raise UsageError(f"--resume {args.resume} continues that run in place: drop --out "
                          f"{args.out} (copy the folder first to continue a copy)")
    if args.resume and args.force:
        raise UsageError("--resume continues a run and --force starts one over: pass one")


def _precheck_search(args: argparse.Namespace) -> None:
    """What every process of `search --processes N` would reject, checked once."""
    from moonas.config import load_config
    from moonas.distributed import check_launch
    from moonas.lock import check_free
    from moonas.search.runner import check_out_dir, recover, resume_config

    _check_search_flags(args)

    if args.resume:
        # A --force replacement killed in this folder is sorted out first: the run checked
        # is then the run every process resumes. What a single run would say, else.
        recover(Path(args.resume))
        config = resume_config(Path(args.resume))
    else:
        config = load_config(args.config, list(args.set))
        if args.out is None:
            raise MoonasError("with --processes, name the run directory with --out")
        check_free(Path(args.out))
        check_out_dir(Path(args.out), args.force)
    check_launch(config, args.processes)


def build_parser() -> argparse.ArgumentParser:
    from moonas.distributed import add_processes_argument

    parser = _Parser(
        prog="moonas",
        description="Multi-budget one-shot neural architecture search: one run, several budget "
        "distributions updated jointly by importance sampling, a Pareto front of accuracy vs cost.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the versions of moonas, torch and Python, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    search = sub.add_parser("search", help=_HELP["search"], description=_HELP["search"])
    search.add_argument("config", nargs="?", default=None,
                        help="YAML config or packaged name (default: the embedded default, "
                        "digits + nb201 + 5 budgets)")
    search.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set search.epochs=50")
    search.add_argument("--out", default=None,
                        help="run directory (default: runs/SPACE-DATASET-STRATEGY-TIME)")
    search.add_argument("--resume", metavar="DIR", default=None,
                        help="continue the run in DIR from its last checkpoint")
    search.add_argument("--force", action="store_true",
                        help="overwrite the run already in --out")
    search.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_processes_argument(search)
    search.set_defaults(func=_cmd_search, precheck=_precheck_search)

    from moonas.bench.cli import register as register_bench
    from moonas.deploy.cli import register as register_deploy

    register_deploy(sub)
    register_bench(sub)

    cost = sub.add_parser("cost", help=_HELP["cost"], description=_HELP["cost"] + ". Prints one "
                          "JSON object per architecture with arch, arch_str, params and macs, "
                          "and device and latency_ms when the config names a latency table "
                          "(search.latency_table, search.cost=latency:DEVICE).")
    cost.add_argument("arch", nargs="*", help="architectures, each an arch_str (the space's "
                      "text form: nb201's |nor_conv_3x3~0|+..., mobilenet's k3e3-skip-...), a JSON "
                      "list of ints or comma-separated ints; bare ints (3 3 0 1 2 4) are one "
                      "architecture")
    cost.add_argument("--config", default=None,
                      help="YAML config or packaged name (default: the embedded default)")
    cost.add_argument("--from", dest="from_file", metavar="FILE",
                      help="read architectures from FILE, one per line")
    cost.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config key, e.g. --set space.channels=16")
    cost.add_argument("--extremes", action="store_true",
                      help="print the cheapest and dearest architecture per cost instead")
    cost.set_defaults(func=_cmd_cost)
    for name, command in sub.choices.items():  # `moonas cost -v ...` as `moonas -v cost ...`
        if "-v" not in command._option_string_actions:
            # Unset unless given here, so a -v before the subcommand is kept.
            command.add_argument("-v", "--verbose", action="store_true",
                                 default=argparse.SUPPRESS, help="debug logging")
    return parser


def _terminated(signum: int, frame: object) -> None:
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: the error and where the help is, not the usage
    block (subcommand parsers are of this class too), and no abbreviated flags: `--proc 2`
    would reach the launched processes as a `--processes` they cannot strip."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _out_of_memory(err: BaseException) -> bool:
    """Whether `err` is an allocation failure (torch's CPU and CUDA ones included)."""
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text)


def main(argv: Sequence[str] | None = None) -> int:
    """The `moonas` command; its exit code. Ctrl-C while it is still starting up (parsing,
    importing torch) is the same one line as later."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        sys.stderr.write("moonas: interrupted\n")
        return 130


def _main(argv: Sequence[str] | None) -> int:
    from moonas.distributed import SINGLE, follow_launcher, launched

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand, which is where the flag was given
        prog = f"moonas {args.command}" if args.command else "moonas"
        hint = ("; config keys go through --set KEY=VALUE" if args.command in ("search", "cost")
                else "")
        parser.exit(2, f"{prog}: error: unrecognized arguments: {' '.join(unknown)} (see "
                       f"{prog} --help{hint})\n")
    try:
        world = launched()
    except MoonasError as err:
        print(f"moonas: error: {err}", file=sys.stderr)
        return err.exit_code
    # Under torchrun rank 0 speaks for the run; the others log warnings and errors only.
    logging.basicConfig(
        level=logging.WARNING if not world.main else
        logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if not world.parallel else
        f"%(levelname)s [rank {world.rank}] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:  # a usage error, as argparse's own (exit 2): scripts see it
        parser.print_help(sys.stderr)
        return 2
    where = "" if world == SINGLE else f" (rank {world.rank} of {world.size})"
    if world.parallel:
        try:
            follow_launcher()  # a killed --processes launcher stops this process too
        except Terminated:
            sys.stderr.write(f"moonas {args.command}{where}: terminated (its launcher died)\n")
            return 128 + signal.SIGTERM
    # The commands that checkpoint; a launcher (--processes N) keeps torch's own handling.
    previous = None
    if args.command in ("search", "train") and getattr(args, "processes", 1) == 1:
        with contextlib.suppress(ValueError):  # signals go to the main thread only
            previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(args, argv, world, where)
    finally:
        if previous is not None:  # main() called in-process leaves the handler as it was
            signal.signal(signal.SIGTERM, previous)


def _check_flags(args: argparse.Namespace) -> None:
    """Flags every command rejects the same way, before any work: an empty --out."""
    if getattr(args, "out", None) == "":  # else taken for `.`, the folder it was typed in
        raise UsageError("--out is empty: " + ("name a folder, e.g. --out runs/NAME"
                         if args.command in ("search", "bench") else "give the path to write"))


def _run(args: argparse.Namespace, argv: list[str], world, where: str) -> int:
    """The parsed command, its errors turned into one line and an exit code."""
    from moonas.distributed import (PeerStopped, cause_noted, launch, launcher_speaks,
                                    note_failure, without_processes)

    try:
        _check_flags(args)
        if getattr(args, "processes", 1) != 1:  # this process launches the workers
            if args.processes >= 1 and getattr(args, "precheck", None) is not None:
                args.precheck(args)  # a bad setting: one line before any process starts
            # The run whose manifest records a failed process's own error.
            run_dir = (getattr(args, "resume", None) or getattr(args, "out", None)
                       if args.command == "search" else None)
            launch(args.processes, without_processes(argv), run_dir)
            return 0
        if not world.main:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except MoonasError as err:
        # Under --processes a process's own error is left to the launcher, which says it once
        # (every process may hit the same bad setting), and a process stopped by another's
        # end stays silent: the launcher names that process's error or the signal it died of.
        if note_failure(world, err) or (isinstance(err, PeerStopped) and (
                cause_noted() or launcher_speaks())):
            return err.exit_code
        # One write: the lines of several processes sharing a terminal do not interleave.
        sys.stderr.write(f"moonas {args.command}{where}: error: {err}\n")
        sys.stderr.flush()
        return err.exit_code
    except Terminated:
        if not (world.parallel and launcher_speaks()):  # else the launcher says it, once
            sys.stderr.write(f"moonas {args.command}{where}: terminated (SIGTERM)\n")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        if not (world.parallel and launcher_speaks()):
            sys.stderr.write(f"moonas {args.command}{where}: interrupted\n")
        return 130
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        first = (str(err).strip().splitlines() or ["MemoryError"])[0]
        sys.stderr.write(f"moonas {args.command}{where}: error: out of memory ({first[:160]}): "
                         "lower space.channels, data.batch_size or the network's size\n")
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
