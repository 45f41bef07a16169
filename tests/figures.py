"""The reliability suite's figures (issue 10): what each test measured, against its target.

A test calls `figure(item, name, value, target, ok)` once per figure. The figure is printed
in brackets (seen with `pytest -s`). When ARB_FIGURES names a file, it is appended there as
a JSON line; `benchmarks/reliability.py` collects those lines into its table.

The suite has a short form (CI) and a long form (`ARB_RELIABILITY=long`, what the runner
sets). `scale(short, long)` picks a test's size for the form that runs.
"""

from __future__ import annotations

import json
import os

LONG = os.environ.get("ARB_RELIABILITY", "short") == "long"


def scale(short, long):
    """The test's size in the form being run."""
    return long if LONG else short


def figure(item: int, name: str, value, target: str, ok: bool) -> None:
    """Record one figure of suite item `item`; `ok` says whether it meets `target`."""
    text = value if isinstance(value, str) else f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"
    print(f"\n[{item}. {name}: {text} (target {target}){'' if ok else ' MISSED'}]")
    path = os.environ.get("ARB_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"item": item, "name": name, "value": text, "target": target, "ok": ok,
                                  "form": "long" if LONG else "short"}) + "\n")
