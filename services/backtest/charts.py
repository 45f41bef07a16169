"""A backtest's charts and its self-contained HTML report; the same inputs give the same bytes.

report_png draws one matplotlib figure of three panels on a shared UTC date axis:
equity in USD (capital + PnL so far) with the starting capital and each trade's entry and exit,
the drawdown from the running peak in percent, and the cumulative funding received and fees
paid. report_page is the HTML page: the setup first, then that chart, the figures and the
trades. matplotlib is optional (pip install -e '.[charts]'): without it report_page says how
to get the chart and report_png raises ChartsUnavailable.
"""

from __future__ import annotations

import base64
import bisect
import csv
import html
import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from services.backtest.funding_arb import BacktestResult



INSTALL_HINT = "charts need matplotlib: pip install -e '.[charts]'"
SIZE_IN, DPI = (12.0, 9.0), 100  # 1200 x 900 px
_RC = {"font.size": 10.0, "axes.titlesize": 11.0, "axes.labelsize": 10.0, "legend.fontsize": 9.0, "timezone": "UTC"}
EQUITY, CAPITAL, DRAWDOWN, FUNDING, FEES = "#1f5ab4", "#333333", "#c0392b", "#1e8449", "#d35400"
ENTRY, EXIT, LIQUIDATED = "#1e8449", "#7d3c98", "#e60000"




class ChartsUnavailable(RuntimeError):
    """matplotlib is not installed."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _matplotlib():
    try:
        import matplotlib
        from matplotlib import dates, ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ChartsUnavailable() from None
    return matplotlib, dates, ticker, FigureCanvasAgg, Figure


def _utc(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


def flows_of(result: BacktestResult) -> list[tuple[int, Decimal, Decimal]]:
    """(time, funding received so far, fees paid so far): result.flows when the run kept them,
    else the trades' own, added up at each trade's close."""
    if result.flows:
        return list(result.flows)
    out, funding, fees = [], Decimal(0), Decimal(0)
    for t in sorted(result.trades, key=lambda t: t.closed_ms):
        funding, fees = funding + t.funding_usd, fees + t.fees_usd
        out.append((t.closed_ms, funding, fees))
    return out


def drawdown_pct(equity: list[tuple[int, Decimal]], capital: Decimal) -> list[float]:
    """Each point's fall from the running peak of capital + equity (the capital the first peak),
    in percent of that peak: 0 or below, as results.max_drawdown measures it."""
    peak, out = capital, []
    for _, value in equity:
        level = capital + value
        peak = max(peak, level)
        out.append(float((level - peak) / peak * 100))
    return out


def _number_formatter(ticker):
    class Number(ticker.Formatter):
        """Thousands separators, a true minus, and as few decimals as show every tick exactly
        (ticks 2.5 apart keep their .5)."""

        decimals = 0

        def set_locs(self, locs):
            super().set_locs(locs)
            scale = max((abs(x) for x in locs), default=1.0) or 1.0
            self.decimals = next((d for d in range(6) if all(
                abs(x * 10 ** d - round(x * 10 ** d)) <= 1e-6 * max(1.0, scale * 10 ** d) for x in locs)), 6)

        def __call__(self, x, pos=None):
            text = f"{x:,.{self.decimals}f}"
            return "0" if text.strip("-0.,") == "" else text.replace("-", "\u2212")

    return Number()


def _no_trades(Figure, FigureCanvasAgg, title: str) -> Figure:
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=14, fontweight="bold")
    fig.text(0.5, 0.5, "no trades: the backtest has no equity points to chart", ha="center", va="center",
             fontsize=16, color="#555555")
    return fig


def build_figure(result: BacktestResult, capital: Decimal, title: str) -> Figure:
    """The report's figure (not drawn yet), on its own Agg canvas; no pyplot state is touched."""
    matplotlib, mdates, ticker, FigureCanvasAgg, Figure = _matplotlib()
    with matplotlib.rc_context(_RC):
        if not result.equity:
            return _no_trades(Figure, FigureCanvasAgg, title)
        fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(title, fontsize=14, fontweight="bold")
        eq_ax, dd_ax, fl_ax = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1.4, 1.6]})

        times = [_utc(ts) for ts, _ in result.equity]
        stamps = [ts for ts, _ in result.equity]
        levels = [float(capital + v) for _, v in result.equity]
        cap = float(capital)

        # (1) equity: the entry and exit markers under the curve (they never hide it), the capital line
        # dashed over it, a liquidation on top of all
        eq_ax.plot(times, levels, color=EQUITY, lw=1.4, label="equity", zorder=3,
                   marker="o" if len(times) == 1 else None)  # one point is no line: show it as a dot
        eq_ax.axhline(cap, color=CAPITAL, ls=(0, (6, 3)), lw=1.2, zorder=4,
                      label=f"starting capital ${cap:,.0f}")

        def level_at(ts: int) -> float:
            i = bisect.bisect_right(stamps, ts)
            return levels[i - 1] if i else cap

        trades = sorted(result.trades, key=lambda t: (t.opened_ms, t.closed_ms, t.symbol))
        size = 42 if len(trades) <= 60 else 18
        marks = {"alpha": 0.85, "edgecolors": "white", "linewidths": 0.6, "zorder": 2}
        eq_ax.scatter([_utc(t.opened_ms) for t in trades], [level_at(t.opened_ms) for t in trades], s=size,
                      marker="^", color=ENTRY, label="trade entry", **marks)
        closed = [t for t in trades if not t.liquidated]
        eq_ax.scatter([_utc(t.closed_ms) for t in closed], [level_at(t.closed_ms) for t in closed], s=size,
                      marker="v", color=EXIT, label="trade exit", **marks)
        liquidated = [t for t in trades if t.liquidated]
        if liquidated:  # no legend entry for what did not happen
            eq_ax.scatter([_utc(t.closed_ms) for t in liquidated], [level_at(t.closed_ms) for t in liquidated],
                          s=size * 2.2, marker="X", color=LIQUIDATED, label="exit by liquidation",
                          **{**marks, "alpha": 1.0, "zorder": 5})
        lo, hi = min(*levels, cap), max(*levels, cap)
        pad = (hi - lo) * 0.08 or max(abs(cap) * 0.001, 1.0)
        eq_ax.set_ylim(lo - pad, hi + pad)
        eq_ax.set_ylabel("equity, USD")
        eq_ax.yaxis.set_major_formatter(_number_formatter(ticker))
        eq_ax.set_title("Equity: capital + realised PnL + open funding \u2212 fees", loc="left")
        # above the panel, right of its title: never over the curve
        eq_ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=5, frameon=False, borderaxespad=0.2,
                     handletextpad=0.4, columnspacing=1.2)

        # (2) drawdown from the running peak
        dd = drawdown_pct(result.equity, capital)
        dd_ax.fill_between(times, dd, 0, color=DRAWDOWN, alpha=0.25, lw=0, label="_drawdown area")
        dd_ax.plot(times, dd, color=DRAWDOWN, lw=1.0, label="drawdown")
        worst = min(range(len(dd)), key=lambda i: (dd[i], i))
        dd_ax.set_ylim(min(dd[worst] * 1.15, -0.01), 0)
        if dd[worst] < 0:  # the deepest point dotted, its value in the panel's title: never over the line
            dd_ax.plot([times[worst]], [dd[worst]], "o", color=DRAWDOWN, ms=5, label="max drawdown", zorder=4)
            dd_ax.set_title(f"max {dd[worst]:.2f} % on {times[worst]:%Y-%m-%d}".replace("-", "\u2212", 1),
                            loc="right", color=DRAWDOWN)
        dd_ax.set_ylabel("drawdown, %")
        dd_ax.yaxis.set_major_formatter(_number_formatter(ticker))
        dd_ax.set_title("Drawdown from the running peak", loc="left")

        # (3) funding received and fees paid so far, stepping at each change
        flows = flows_of(result)
        t0 = min(result.equity[0][0], flows[0][0]) if flows else result.equity[0][0]
        t1 = max(result.equity[-1][0], flows[-1][0]) if flows else result.equity[-1][0]
        f_times = [_utc(t0)] + [_utc(ts) for ts, _, _ in flows] + [_utc(t1)]
        last_f, last_c = (flows[-1][1], flows[-1][2]) if flows else (Decimal(0), Decimal(0))
        funding = [0.0] + [float(f) for _, f, _ in flows] + [float(last_f)]
        fees = [0.0] + [float(c) for _, _, c in flows] + [float(last_c)]
        fl_ax.plot(f_times, funding, drawstyle="steps-post", color=FUNDING, lw=1.5,
                   label=f"funding received (total ${float(last_f):,.2f})")
        fl_ax.plot(f_times, fees, drawstyle="steps-post", color=FEES, lw=1.5,
                   label=f"fees paid (total ${float(last_c):,.2f})")
        fl_ax.axhline(0, color="#999999", lw=0.8, zorder=1)
        fl_ax.set_ylabel("cumulative, USD")
        fl_ax.yaxis.set_major_formatter(_number_formatter(ticker))
        fl_ax.set_title("Funding received and fees paid, so far", loc="left")
        fl_ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False, borderaxespad=0.2)
        fl_ax.set_xlabel("date (UTC)")

        if t1 == t0:  # one instant: a day around it, not matplotlib's four years
            fl_ax.set_xlim(_utc(t0 - 43_200_000), _utc(t0 + 43_200_000))
        locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=12)
        fl_ax.xaxis.set_major_locator(locator)
        # day ticks carry their month ("09 Feb", not a bare "09" under a "2026-Mar" offset)
        fl_ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(
            locator, tz=UTC, show_offset=True, formats=["%Y", "%b", "%d %b", "%H:%M", "%H:%M", "%S.%f"],
            zero_formats=["", "%Y", "%b", "%d %b", "%H:%M", "%H:%M"],
            offset_formats=["", "%Y", "%Y", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"]))
        for ax in (eq_ax, dd_ax, fl_ax):
            ax.grid(True, color="#e3e3e3", lw=0.8)
            ax.set_axisbelow(True)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
        return fig


def report_png(result: BacktestResult, capital: Decimal, title: str) -> bytes:
    """The report's figure as PNG bytes, 1200 x 900 px, the same bytes for the same inputs (no
    software or date in them); raises ChartsUnavailable without matplotlib."""
    matplotlib = _matplotlib()[0]
    fig = build_figure(result, capital, title)
    out = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(out, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return out.getvalue()


LABELS = {
    "trades": "Trades", "pnl_usd": "PnL, USD", "price_pnl_usd": "Price PnL, USD", "fees_usd": "Fees paid, USD",
    "funding_usd": "Funding received, USD", "win_rate": "Win rate (fraction of trades)",
    "liquidations": "Liquidations", "closest_to_liquidation": "Closest approach to liquidation (fraction of mark)",
    "sharpe": "Sharpe (daily, annualised)", "sortino": "Sortino (daily, annualised)",
    "max_drawdown": "Max drawdown (fraction of peak)", "utilization": "Utilization (margin / capital, mean)",
    "apr": "APR (fraction of capital)", "days": "Days", "settlements": "Funding settlements",
    "past_liquidation": "Furthest seen past a liquidation price (fraction)", "bars": "Bars used",
    "gaps": "Data gaps (gaps.csv)", "entries_skipped": "Entries not taken, by reason",
    "stopped": "Stopped by the equity stop (UTC)", "leg_outs": "Leg-outs", "leg_out_loss_usd": "Leg-out loss, USD",
}
_NUMBER = re.compile(r"^[+\-\u2212]?\$?\d[\d,]*(\.\d+)?%?$")
NUM = ' class="num"'
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")

_CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1200px;margin:0 auto;padding:16px 20px 48px;background:#fff}
h1{font-size:1.5em;margin:.4em 0 .6em}
h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #e3e3e3;padding-bottom:.2em}
table{border-collapse:collapse}
th,td{padding:4px 10px;border-bottom:1px solid #e6e6e6;vertical-align:top}
th{text-align:left;font-weight:600}
.kv th{font-weight:normal;color:#444;padding-right:24px}
.kv td,.num,.date{font-variant-numeric:tabular-nums;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.kv code{color:#888;font-size:.85em;margin-left:.5em}
.num{text-align:right}
.chart img{display:block;width:100%;height:auto}
.note{padding:10px 14px;background:#fff8e1;border:1px solid #f0d98c;border-radius:4px}
.scroll{overflow-x:auto;overflow-y:auto;max-height:80vh;border:1px solid #e3e3e3}
.trades{font-size:13px;min-width:100%}
.trades thead th{position:sticky;top:0;background:#f3f3f3;z-index:1;border-bottom:1px solid #ccc}
.trades th{white-space:nowrap}
.trades td.date{white-space:nowrap}
.trades tbody tr:nth-child(even){background:#f8f9fb}
.trades tr.liquidated td{background:#fdecea;color:#9b1c1c}
""".strip()


def _cell(text: str, header: str = "") -> str:
    kind = "date" if header.endswith("_utc") or _DATE.match(text) else "num" if _NUMBER.match(text) else ""
    attr = f' class="{kind}"' if kind else ""
    return f"<td{attr}>{html.escape(text)}</td>"


def _trades_table(trades_csv: str) -> str:
    rows = list(csv.reader(io.StringIO(trades_csv)))
    if not rows:
        return "<p>No trades.</p>"
    header, body = rows[0], rows[1:]
    if not body:
        return "<p>No trades.</p>"
    liq = header.index("liquidated") if "liquidated" in header else None
    numeric = [bool(_NUMBER.match(body[0][i])) if i < len(body[0]) else False for i in range(len(header))]
    head = "".join(f"<th{NUM if numeric[i] else ''}>{html.escape(h)}</th>" for i, h in enumerate(header))
    lines = []
    for row in body:
        cls = ' class="liquidated"' if liq is not None and liq < len(row) and row[liq] in ("1", "True", "true") else ""
        cells = "".join(_cell(c, header[i] if i < len(header) else "") for i, c in enumerate(row))
        lines.append(f"<tr{cls}>{cells}</tr>")
    return (f'<div class="scroll"><table class="trades"><thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(lines) + "\n</tbody></table></div>")


def report_page(title: str, summary: dict[str, str], setup: list[tuple[str, str]], result: BacktestResult,
                capital: Decimal, trades_csv: str, png: bytes | None = None) -> str:
    """The self-contained HTML report: the setup, the chart (the PNG inline, `png` when the caller
    has drawn it already; without matplotlib a line saying how to get it), the figures and the
    trades. The same inputs give the same text."""
    esc = html.escape
    setup_rows = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in setup)
    if png is None and available():
        png = report_png(result, capital, title)
    if png is not None:
        chart = (f'<div class="chart"><img alt="{esc(title)}: equity, drawdown, funding and fees over time" '
                 f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></div>')
    else:
        chart = f'<p class="note">No chart: {esc(INSTALL_HINT)}</p>'
    figures = "\n".join(
        f'<tr><th>{esc(LABELS.get(k, k.replace("_", " ").capitalize()))}<code>{esc(k)}</code></th>'
        f'<td class="num">{esc(str(v))}</td></tr>' for k, v in summary.items())
    n = len(result.trades)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>
{_CSS}
</style></head>
<body><main>
<h1>{esc(title)}</h1>
<h2>Setup</h2>
<table class="kv setup">
{setup_rows}
</table>
<h2>Chart</h2>
{chart}
<h2>Figures</h2>
<table class="kv figures">
{figures}
</table>
<h2>Trades ({n})</h2>
{_trades_table(trades_csv)}
</main></body></html>
"""
