"""The backtest's matplotlib chart and HTML page (services/backtest/charts.py), read through
matplotlib's own objects rather than pixels: the axes' labels and dates, the equity range and
the capital line, one marker per entry and exit, the drawdown against one computed here, the
funding and fees lines' totals; the PNG's size and bytes; the page's setup, figures and trades,
its escaping and its CSS; and the page without matplotlib."""

from __future__ import annotations

import base64
import re
import struct
import subprocess
import sys
from decimal import Decimal as D
from html.parser import HTMLParser
from pathlib import Path

import pytest

from services.backtest import charts
from services.backtest.funding_arb import BacktestResult, ClosedTrade
from services.backtest.results import trades_csv

mdates = pytest.importorskip("matplotlib.dates")

H, DAY = 3_600_000, 86_400_000
D0 = 1_770_681_600_000  # 2026-02-10 00:00 UTC
CAPITAL = D(20_000)
TITLE = "Funding arbitrage backtest: Bybit / Binance"
ROOT = Path(__file__).resolve().parents[1]


def trade(symbol, opened, closed, fees, funding, price, liquidated=False) -> ClosedTrade:
    return ClosedTrade(symbol, "bybit", "binance", opened, closed, D("0.1"), D(10_000), D(fees), D(funding), D(price),
                       D(price) - D(fees) + D(funding), D("0.2"), liquidated,
                       "liquidated" if liquidated else "funding_converged")


def sample() -> BacktestResult:
    """20 days, a point every 8 h; three trades (the second liquidated), each opening and closing
    on a point of the curve; the flows as the run would keep them."""
    trades = [trade("BTCUSDT", D0 + 1 * DAY, D0 + 5 * DAY, "10", "60", "-2"),
              trade("<b>X</b>", D0 + 7 * DAY, D0 + 9 * DAY, "12", "8", "-700", liquidated=True),
              trade("ETHUSDT", D0 + 12 * DAY, D0 + 18 * DAY, "9", "95", "3")]
    equity, realised = [], D(0)
    for i in range(20 * 3 + 1):
        ts = D0 + i * 8 * H
        realised += sum((t.pnl_usd for t in trades if t.closed_ms == ts), D(0))
        opened = sum((t.funding_usd * (ts - t.opened_ms) / (t.closed_ms - t.opened_ms) - t.fees_usd / 2
                      for t in trades if t.opened_ms <= ts < t.closed_ms), D(0))
        equity.append((ts, realised + opened))
    result = BacktestResult(trades=trades, equity=equity, settlements=len(equity))
    funding = fees = D(0)
    flows = []
    for t in trades:
        funding, fees = funding + t.funding_usd, fees + t.fees_usd
        flows.append((t.closed_ms, funding, fees))
    result.flows = flows
    return result


def axes(fig):
    equity, drawdown, flows = fig.axes
    return equity, drawdown, flows


def labelled(ax, label):
    found = [a for a in [*ax.lines, *ax.collections] if a.get_label() == label
             or a.get_label().startswith(label + " (")]
    assert len(found) == 1, (label, [a.get_label() for a in [*ax.lines, *ax.collections]])
    return found[0]


def ihdr(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", png[8:16])
    assert (length, kind) == (13, b"IHDR")
    return struct.unpack(">II", png[16:24])


def test_the_png_is_a_1200_by_900_png_and_the_same_bytes_every_time():
    result = sample()
    png = charts.report_png(result, CAPITAL, TITLE)
    assert ihdr(png) == (1200, 900)
    assert charts.report_png(sample(), CAPITAL, TITLE) == png
    assert b"Software" not in png  # no matplotlib version in the file


def test_every_axis_is_labelled_and_the_shared_x_axis_is_dated_in_the_datas_months():
    fig = charts.build_figure(sample(), CAPITAL, TITLE)
    fig.canvas.draw()
    equity, drawdown, flows = axes(fig)
    assert fig.get_suptitle() == TITLE
    assert "USD" in equity.get_ylabel() and "%" in drawdown.get_ylabel() and "USD" in flows.get_ylabel()
    assert "UTC" in flows.get_xlabel()
    assert isinstance(flows.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    assert equity.get_shared_x_axes().joined(equity, flows) and drawdown.get_shared_x_axes().joined(drawdown, flows)
    # every tick names its day's month ("09 Feb", "Mar" on the 1st), the year is the offset
    ticks = [t.get_text() for t in flows.get_xticklabels()]
    assert all(re.fullmatch(r"(\d{2} )?(Feb|Mar)", t) for t in ticks), ticks
    assert any("Feb" in t for t in ticks) and any("Mar" in t for t in ticks) and len(ticks) >= 5
    assert flows.xaxis.get_offset_text().get_text() == "2026"
    # the upper panels share those dates without repeating their labels
    assert not any(t.get_visible() and t.get_text() for t in equity.get_xticklabels())
    # the x range is the data's: 2026-02-10 .. 2026-03-02
    lo, hi = (mdates.num2date(x) for x in flows.get_xlim())
    assert lo.date().isoformat() <= "2026-02-10" and hi.date().isoformat() >= "2026-03-02"
    assert hi.date().isoformat() < "2026-03-05"
    # values on the equity axis, with a thousands separator
    assert any(re.fullmatch(r"\d{2},\d{3}", t.get_text()) for t in equity.get_yticklabels())
    # legends name the lines
    assert {t.get_text() for t in equity.get_legend().get_texts()} >= {"equity", "trade entry", "trade exit",
                                                                         "exit by liquidation"}
    # a legend names only what happened: no liquidation, no entry for one
    calm = sample()
    calm.trades = [t for t in calm.trades if not t.liquidated]
    equity = axes(charts.build_figure(calm, CAPITAL, TITLE))[0]
    assert "exit by liquidation" not in {t.get_text() for t in equity.get_legend().get_texts()}


def test_the_equity_panel_covers_the_curve_and_the_capital_line_and_marks_each_entry_and_exit():
    result = sample()
    fig = charts.build_figure(result, CAPITAL, TITLE)
    equity = axes(fig)[0]
    values = [CAPITAL + v for _, v in result.equity]
    low, high = equity.get_ylim()
    assert low < float(min(values)) and high > float(max(values)) and low < float(CAPITAL) < high
    curve = labelled(equity, "equity")
    assert list(curve.get_ydata()) == [float(v) for v in values]
    line = labelled(equity, "starting capital $20,000")
    assert set(line.get_ydata()) == {20_000.0}
    assert line.get_linestyle() != "-" and line.get_zorder() > curve.get_zorder()  # dashed, in front of the curve
    at = dict(result.equity)
    entries = labelled(equity, "trade entry").get_offsets()
    assert len(entries) == len(result.trades) == 3
    assert [tuple(p) for p in entries] == [
        (mdates.date2num(charts._utc(t.opened_ms)), float(CAPITAL + at[t.opened_ms])) for t in result.trades]
    exits = labelled(equity, "trade exit").get_offsets()
    liquidated = labelled(equity, "exit by liquidation").get_offsets()
    assert len(exits) == 2 and len(liquidated) == 1
    assert tuple(liquidated[0]) == (mdates.date2num(charts._utc(result.trades[1].closed_ms)),
                                    float(CAPITAL + at[result.trades[1].closed_ms]))


def test_the_drawdown_is_never_above_zero_and_bottoms_at_the_max_drawdown():
    result = sample()
    peak, worst, when = float(CAPITAL), 0.0, None
    for ts, value in result.equity:
        level = float(CAPITAL + value)
        peak = max(peak, level)
        if (level - peak) / peak * 100 < worst:
            worst, when = (level - peak) / peak * 100, ts
    assert worst < -3  # the liquidation's fall
    drawdown = axes(charts.build_figure(result, CAPITAL, TITLE))[1]
    line = labelled(drawdown, "drawdown")
    assert max(line.get_ydata()) <= 0 and len(line.get_ydata()) == len(result.equity)
    assert min(line.get_ydata()) == pytest.approx(worst, abs=1e-9)
    assert drawdown.get_ylim()[1] == 0 and drawdown.get_ylim()[0] < worst
    assert drawdown.get_title(loc="right") == f"max \u2212{-worst:.2f} % on {charts._utc(when):%Y-%m-%d}"
    assert list(labelled(drawdown, "max drawdown").get_ydata()) == [min(line.get_ydata())]


def test_the_funding_and_fees_lines_end_at_their_totals_also_when_the_run_kept_no_flows():
    result = sample()
    funding, fees = sum(t.funding_usd for t in result.trades), sum(t.fees_usd for t in result.trades)
    for flows in (result.flows, []):  # the spread replay keeps none: they are the trades', at each close
        result.flows = flows
        panel = axes(charts.build_figure(result, CAPITAL, TITLE))[2]
        received, paid = labelled(panel, "funding received"), labelled(panel, "fees paid")
        assert received.get_ydata()[-1] == float(funding) == 163.0
        assert paid.get_ydata()[-1] == float(fees) == 31.0
        assert received.get_ydata()[0] == paid.get_ydata()[0] == 0
        assert received.get_drawstyle() == "steps-post"
        # the first step is the first trade's close
        x = list(received.get_xdata())
        assert x[1] == charts._utc(result.trades[0].closed_ms) and received.get_ydata()[1] == 60.0
        assert {t.get_text() for t in panel.get_legend().get_texts()} == {
            "funding received (total $163.00)", "fees paid (total $31.00)"}


def test_an_empty_backtest_is_a_figure_saying_so_and_one_point_is_a_day_wide():
    fig = charts.build_figure(BacktestResult(), CAPITAL, TITLE)
    assert any("no trades" in t.get_text() for t in fig.texts)
    assert ihdr(charts.report_png(BacktestResult(), CAPITAL, TITLE)) == (1200, 900)
    one = BacktestResult(equity=[(D0, D(0))])
    lo, hi = axes(charts.build_figure(one, CAPITAL, TITLE))[2].get_xlim()
    assert hi - lo == pytest.approx(1.0)  # days
    assert ihdr(charts.report_png(one, CAPITAL, TITLE)) == (1200, 900)


class Page(HTMLParser):
    """The page's tables as rows of (tag, class, text), by the table's class."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str, str]]]] = {}
        self.table = self.cell = None
        self.parents: list[tuple[str, str]] = []
        self.wrapper_of_trades = None

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if tag == "table":
            self.table = cls
            self.tables[cls] = []
            if "trades" in cls.split():
                self.wrapper_of_trades = self.parents[-1] if self.parents else None
        elif tag == "tr" and self.table is not None:
            self.tables[self.table].append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = [tag, cls, ""]
        self.parents.append((tag, cls))

    def handle_endtag(self, tag):
        self.parents.pop()
        if tag in ("td", "th") and self.cell is not None:
            self.tables[self.table][-1].append(tuple(self.cell))
            self.cell = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[2] += data


SETUP = [("Capital", "$20,000"), ("Notional per trade", "$10,000 at 5x"), ("Entry / exit", "3 / 1 bps per 8 h"),
         ("Data", "bybit_funding.csv 2026-02-10 .. 2026-03-02 <raw>")]


def page(result=None) -> str:
    result = result or sample()
    summary = {"trades": "3", "pnl_usd": "-557.00", "max_drawdown": "0.0352", "leg_outs": "0", "custom_key": "x&y"}
    return charts.report_page(TITLE, summary, SETUP, result, CAPITAL, trades_csv(result.trades))


def test_the_page_states_the_setup_the_figures_and_every_trade_and_escapes_them():
    text = page()
    parsed = Page()
    parsed.feed(text)
    setup = [(r[0][2], r[1][2]) for r in parsed.tables["kv setup"]]
    assert setup == SETUP
    assert text.index("Capital") < text.index("<img") < text.index("Max drawdown") < text.index("BTCUSDT")
    # the chart is the PNG itself, inline: the page stands alone
    inline = re.search(r'<img alt="[^"]+" src="data:image/png;base64,([^"]+)">', text).group(1)
    assert base64.b64decode(inline) == charts.report_png(sample(), CAPITAL, TITLE)
    figures = parsed.tables["kv figures"]
    values = [row[1][2] for row in figures]
    assert values == ["3", "-557.00", "0.0352", "0", "x&y"]
    heads = [row[0][2] for row in figures]
    for key in ("trades", "pnl_usd", "max_drawdown", "leg_outs", "custom_key"):
        assert any(h.endswith(key) for h in heads)
    rows = parsed.tables["trades"]
    csv_rows = [line.split(",") for line in trades_csv(sample().trades).strip().splitlines()]
    assert [[c[2] for c in r] for r in rows] == csv_rows  # the header and every trade, cell for cell
    assert rows[0][0][0] == "th" and all(c[0] == "td" for r in rows[1:] for c in r)
    # a hostile symbol is text, never markup
    assert "<b>X</b>" not in text and "&lt;b&gt;X&lt;/b&gt;" in text
    assert "<raw>" not in text and "x&amp;y" in text
    assert f"<title>{TITLE}</title>" in text


def test_the_trades_scroll_sideways_their_dates_do_not_wrap_and_numbers_are_right_aligned():
    text = page()
    css = text[text.index("<style>"):text.index("</style>")]
    parsed = Page()
    parsed.feed(text)
    assert parsed.wrapper_of_trades == ("div", "scroll")
    assert re.search(r"\.scroll\{[^}]*overflow-x:auto", css)
    assert re.search(r"\.trades td\.date\{[^}]*white-space:nowrap", css)
    assert re.search(r"\.num\{[^}]*text-align:right", css) and "tabular-nums" in css
    assert re.search(r"main\{[^}]*max-width:1200px", css)
    assert re.search(r"\.chart img\{[^}]*width:100%", css)
    header, *trades = parsed.tables["trades"]
    names = [c[2] for c in header]
    for row in trades:
        cells = dict(zip(names, row, strict=True))
        assert cells["opened_utc"][1] == cells["closed_utc"][1] == "date"
        assert " " in cells["opened_utc"][2]  # the space nowrap keeps on one line
        assert cells["pnl_usd"][1] == cells["fees_usd"][1] == "num"
        assert cells["symbol"][1] == ""
    assert [r[0][2] for r in trades if any(c[2] == "1" for c in r[-2:-1])] == ["<b>X</b>"]
    assert text.count('<tr class="liquidated">') == 1


def test_the_page_is_the_same_text_every_time():
    assert page() == page()


def test_without_matplotlib_the_page_says_how_to_get_the_chart_and_the_png_refuses(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not charts.available()
    text = page()
    assert "<img" not in text and "pip install -e &#x27;.[charts]&#x27;" in text
    assert "BTCUSDT" in text and "$20,000" in text
    with pytest.raises(charts.ChartsUnavailable, match=re.escape("charts need matplotlib: pip install -e '.[charts]'")):
        charts.report_png(sample(), CAPITAL, TITLE)
    with pytest.raises(RuntimeError):
        charts.build_figure(sample(), CAPITAL, TITLE)


def test_the_module_imports_without_matplotlib():
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from services.backtest import charts\n"
            "assert not charts.available()\n"
            "try:\n    charts.report_png(None, 1, 't')\n"
            "except charts.ChartsUnavailable as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "charts need matplotlib: pip install -e '.[charts]'"
