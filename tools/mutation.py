"""Mutation testing of one pure core with mutmut 3, and its score.

    python tools/mutation.py backtest                 # a fresh run, one worker; prints killed/total
    python tools/mutation.py strategy --max-children 2
    python tools/mutation.py backtest --keep NAME...  # run only these mutants again (after a new test)
    python tools/mutation.py backtest --keep --diffs  # the score and each survivor's diff, no run
    python tools/mutation.py executor --only paper.py,trade.py --folder executor-paper  # a part, apart

The files to mutate and the fast tests are `[tool.mutmut]` in pyproject.toml (all three cores);
this narrows them to one core: its modules (`services/<core>/*` minus `do_not_mutate`; for a
venue, `shared/venues/<venue>/private.py` and `signing.py`) and its test files
(`tests/test_<core>_*` of the selection, with their `--deselect`s). Each core works in
its own folder, `mutants/<core>/` (mutmut's copy is `mutants/<core>/mutants/`), so two cores can
run at once without sharing a cache. The copy cannot find `../shared` by walking up from its
tests, so ARB_SHARED_DIR is set to the folder beside the repository unless it is set already.

The score counts a timeout as killed (the mutant made the tests run away; a
survivor never does) and a mutant that no selected test reaches as not killed.

Written against mutmut 3.8.1: mutmut reads its configuration once into
`mutmut.configuration._config`, and this sets that object before calling `mutmut run`'s body.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# core -> (its folder, the modules mutated by default; None: all but do_not_mutate). The venues'
# trading clients are cores too: their pure row parsing, size and price conversion and signing.
CORES = {"strategy": ("services/strategy", None), "executor": ("services/executor", None),
         "backtest": ("services/backtest", None),
         **{v: (f"shared/venues/{v}", ["private.py", "signing.py"]) for v in ("okx", "bitget", "binance")}}
LINKED = ("services", "shared", "tests", "pyproject.toml")  # what mutmut copies from its working folder
KILLED = {"killed", "timeout", "caught by type check"}


def core_config(base, core: str, modules: list[str] | None = None):
    """`base` (the [tool.mutmut] config) narrowed to one core's modules (or only `modules` of
    it, file names like paper.py) and test files."""
    ours = f"tests/test_{core}_"
    selection, args = [], list(base.pytest_add_cli_args_test_selection)
    while args:
        arg = args.pop(0)
        if arg == "--deselect":
            target = args.pop(0)
            if target.startswith(ours):
                selection += [arg, target]
        elif arg.startswith(ours):
            selection.append(arg)
    if not any(a.startswith(ours) for a in selection):
        raise SystemExit(f"mutation: no tests/test_{core}_*.py in [tool.mutmut] pytest_add_cli_args_test_selection")
    folder, default = CORES[core]
    modules = modules or default
    only = [f"{folder}/{m}" for m in modules] if modules else [f"{folder}/*"]
    return dataclasses.replace(base, only_mutate=only, pytest_add_cli_args_test_selection=selection)


def workdir(name: str, fresh: bool) -> Path:
    """mutants/<name>/ with links to what mutmut copies; emptied first when `fresh`."""
    folder = ROOT / "mutants" / name
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    return folder


def outcomes() -> dict[str, str]:
    """Every mutant of the core -> mutmut's verdict, from the results it saved."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    verdicts = {}
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        verdicts.update({name: status_by_exit_code[code] for name, code in data.exit_code_by_key.items()})
    return verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("core", choices=CORES)
    parser.add_argument("mutants", nargs="*", help="run only these mutants again (implies --keep)")
    parser.add_argument("--max-children", type=int, default=1, help="workers (default 1: the machine is shared)")
    parser.add_argument("--keep", action="store_true", help="keep mutants/<core>/ and the verdicts in it")
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    parser.add_argument("--only", default="", help="only these modules, comma-separated (paper.py,trade.py)")
    parser.add_argument("--folder", default="", help="work in mutants/FOLDER/ (default: the core's name), so that "
                        "runs over different modules of one core do not share verdicts")
    args = parser.parse_intermixed_args()  # `okx --keep NAME...` as well as `--keep okx NAME...`
    keep = args.keep or bool(args.mutants)

    os.environ.setdefault("ARB_SHARED_DIR", str(ROOT.parent / "shared"))
    os.environ.setdefault("ARB_HYPOTHESIS_EXAMPLES", "25")  # the property tests, shorter: run once per mutant
    os.chdir(workdir(args.folder or args.core, fresh=not keep))

    import mutmut.configuration
    from mutmut.__main__ import _run, get_diff_for_mutant

    modules = [m.strip() for m in args.only.split(",") if m.strip()]
    mutmut.configuration._config = core_config(mutmut.configuration._load_config(), args.core, modules)
    started, ran = time.monotonic(), not (args.keep and args.diffs and not args.mutants)
    if ran:
        _run(args.mutants, args.max_children)
    took = f"in {time.monotonic() - started:.0f} s with {args.max_children} worker(s)" if ran else "(the last run's)"

    verdicts = outcomes()
    counts = Counter(verdicts.values())
    killed = sum(counts[v] for v in KILLED)
    total = len(verdicts) - counts["skipped"]
    print(f"\n{args.core}: {killed}/{total} mutants killed ({100 * killed / max(1, total):.1f} %) {took}; "
          + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())))
    for name, verdict in sorted(verdicts.items()):
        if verdict not in KILLED:
            print(f"  {verdict}: {name}")
            if args.diffs:
                print(get_diff_for_mutant(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
