"""The reliability suite (issue 10), and the table of its figures.

    python benchmarks/reliability.py            # the long form: larger runs of every test
    python benchmarks/reliability.py --short    # the short form, as CI runs it
    python benchmarks/reliability.py -k orders  # only the tests pytest -k selects

It runs `pytest -m reliability` with ARB_RELIABILITY=long (or short) and ARB_FIGURES set,
prints pytest's own progress, then one row per figure: the suite's item, what was measured,
the value, the target and whether it was met. Exits 1 when a test failed or a figure missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the short form (CI's sizes)")
    parser.add_argument("-k", help="a pytest -k expression: only the tests it selects")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.jsonl"
        env = {**os.environ, "ARB_RELIABILITY": "short" if args.short else "long", "ARB_FIGURES": str(figures)}
        command = [sys.executable, "-m", "pytest", "-m", "reliability", "-q", "-p", "no:cacheprovider"]
        if args.k:
            command += ["-k", args.k]
        code = subprocess.call(command, cwd=ROOT, env=env)
        rows = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
    print(table(rows))
    return 1 if code or not rows or not all(r["ok"] for r in rows) else 0


def table(rows: list[dict]) -> str:
    rows = sorted(rows, key=lambda r: r["item"])
    head = ("item", "figure", "value", "target", "met")
    cells = [(str(r["item"]), r["name"], r["value"], r["target"], "yes" if r["ok"] else "NO") for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    line = "  ".join("{:<%d}" % w for w in widths)
    form = rows[0]["form"] if rows else "none"
    return "\n".join([f"\nreliability suite, {form} form: {len(rows)} figures", line.format(*head),
                      line.format(*("-" * w for w in widths)), *(line.format(*c) for c in cells)])


if __name__ == "__main__":
    sys.exit(main())
