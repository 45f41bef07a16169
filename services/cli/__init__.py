"""`arb`: the command line of the arbitrage system.

This builds the typer app and registers the commands, in the order `arb --help` lists them,
from one module per area:

- workers.py: ingest, strategy, executor, rebuild, latency (the long-running workers)
- sim.py: sim (the local exchange)
- run.py: up, stop, resume, reset, check (the whole system on this machine)
- inspection.py: status, trades, report, top, validate, config (looking at a system)
- backtest.py: history, record, replay and the group `backtest` (funding, spread)
- common.py: what they share (settings, logging, CPU pinning, run until a signal, metrics)

The modules import their heavy dependencies inside each command, so `arb --help` starts fast.
"""

from __future__ import annotations

import typer
import typer.core

from services.cli import backtest, inspection, run, sim, workers
from services.cli.common import pin_to_cpu

__all__ = ["app", "pin_to_cpu"]


def _flags_without_type() -> None:
    """Show a flag as a plain flag (`--closed`, `--sim/--no-sim`) in the rich help.

    Typer 0.29's rich help prints each option's value type beside it, and a flag's too
    (`--help <bool>`), though a flag takes no value; its plain help leaves flags out, as
    earlier versions did. Older typer has no `display_type_rich`, and nothing is changed."""
    shown = getattr(typer.core.TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_without_type", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.flags_without_type = True
    typer.core.TyperOption.display_type_rich = display_type_rich


_flags_without_type()

app = typer.Typer(
    help="Crypto perpetual-futures arbitrage on Redis Streams. Settings come from env vars and "
    "./.env (every setting: `arb config`, and docs/operations.md); command-line options override them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

for command in (
    workers.ingest, workers.strategy, workers.executor, workers.rebuild, workers.latency,
    sim.sim,
    run.up, run.stop, run.resume, run.reset, run.check,
    inspection.status, inspection.trades, inspection.report, inspection.top, inspection.validate,
    backtest.history,
    backtest.record, backtest.replay,
    inspection.config,
):
    app.command()(command)
app.add_typer(backtest.backtest_app, name="backtest")
