"""OKX V5 public market data from the simulator, read by a client written from OKX's docs
(docs-v5: "WS / Order book channel", "GET / Ticker", "GET / Tickers", "GET / Order book",
"Error codes: REST API, public") with raw aiohttp calls and WebSocket frames, checked against
the real 2022 captures in venue-samples/okx.

The `books` client is the documented one: take the snapshot, merge each update (a size "0"
deletes the level, another size replaces it, a new price is inserted in order), check that
each message's `prevSeqId` is the `seqId` before it, and that the CRC32 of the first 25
levels interleaved "bidPx:bidSz:askPx:askSz:..." is the message's `checksum`.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from decimal import Decimal

import aiohttp

from services.sim.market import MarketModel
from services.sim.okx_public import OkxDialect
from services.sim.server import SimServer
from tests.conftest import SAMPLES, serve_app, shape

T0 = 1_800_000_000_000
STEP_MS = 150  # more than the channel's 100 ms, so every step is due whatever the float clock rounds
BTC, DOGE = "BTC-USDT-SWAP", "DOGE-USDT-SWAP"
INST_TYPES_NOT_SIMULATED = ("SPOT", "MARGIN", "FUTURES", "OPTION")


def real(name: str) -> dict:
    return json.loads((SAMPLES / "okx" / name).read_text())


def crc32_signed(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def okx_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """The docs' recipe: the first 25 bids and asks, "bid:size:ask:size:..." alternating, a
    shorter side just stops contributing; CRC32 as a signed 32-bit integer."""
    parts = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return crc32_signed(":".join(parts))


class Book:
    """A local order book kept as OKX documents for `books`."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, list[str]]] = {"bids": {}, "asks": {}}
        self.seq: int | None = None

    def apply(self, message: dict) -> None:
        data = message["data"][0]
        if message["action"] == "snapshot":
            assert data["prevSeqId"] == -1
            self.sides = {"bids": {}, "asks": {}}
        else:
            assert data["prevSeqId"] == self.seq, "a gap in the sequence"
            assert data["seqId"] >= data["prevSeqId"]
        for side in ("bids", "asks"):
            for level in data[side]:
                if level[1] == "0":
                    self.sides[side].pop(Decimal(level[0]), None)
                else:
                    self.sides[side][Decimal(level[0])] = level
        self.seq = data["seqId"]
        assert okx_checksum(self.bids, self.asks) == data["checksum"], f"checksum fails at seqId {self.seq}"

    @property
    def bids(self) -> list[list[str]]:
        return [self.sides["bids"][p] for p in sorted(self.sides["bids"], reverse=True)]

    @property
    def asks(self) -> list[list[str]]:
        return [self.sides["asks"][p] for p in sorted(self.sides["asks"])]


class Client:
    """A user of OKX's public API on the simulator, which the test steps by hand."""

    def __init__(self, server: SimServer, base: str, http: aiohttp.ClientSession, now: list[int]) -> None:
        self.server, self.base, self.http, self.now = server, base, http, now

    async def get(self, path: str, **query: str) -> tuple[int, dict]:
        async with self.http.get(self.base + path, params=query) as response:
            return response.status, await response.json()

    async def ok(self, path: str, **query: str) -> list[dict]:
        status, body = await self.get(path, **query)
        assert status == 200 and body["code"] == "0" and body["msg"] == "", body
        return body["data"]

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(self.base.replace("http", "ws") + "/ws/v5/public")

    def step(self) -> None:
        self.now[0] += STEP_MS
        self.server.step()

    async def lot_sizes(self) -> dict[str, Decimal]:
        return {row["instId"]: Decimal(row["lotSz"]) for row in await self.ok("/api/v5/public/instruments",
                                                                             instType="SWAP")}


@contextlib.asynccontextmanager
async def simulated(symbols=("BTCUSDT", "DOGEUSDT")):
    now = [T0]
    server = SimServer(list(symbols), seed=11, step_ms=10_000_000, clock=lambda: now[0] / 1000)
    async with serve_app(server.app()) as base, aiohttp.ClientSession() as http:
        yield Client(server, base, http, now)


async def subscribe(ws, op: str = "subscribe", channel: str = "books", inst: str = BTC, request_id: str = "b1"):
    await ws.send_json({"id": request_id, "op": op, "args": [{"channel": channel, "instId": inst}]})
    ack = await ws.receive_json(timeout=5)
    assert ack == {"id": request_id, "event": op, "arg": {"channel": channel, "instId": inst},
                   "connId": ack["connId"]}
    assert isinstance(ack["connId"], str) and ack["connId"]


def without_sequence(message: dict) -> dict:
    """The message as the 2022 capture shows it: seqId and prevSeqId came later (docs)."""
    data = [{k: v for k, v in row.items() if k not in ("seqId", "prevSeqId")} for row in message["data"]]
    return {**message, "data": data}


def check_levels(levels: list[list[str]], lot: Decimal, deletions: bool = False) -> None:
    for level in levels:
        assert len(level) == 4 and all(isinstance(x, str) for x in level), level
        price, size, deprecated, orders = level
        assert Decimal(price) > 0 and deprecated == "0" and orders.isdigit()
        if size == "0":
            assert deletions and orders == "0", level
        else:
            assert Decimal(size) > 0 and Decimal(size) % lot == 0, f"{size} is not whole lots of {lot} contracts"
            assert int(orders) >= 1


def test_the_tests_checksum_is_okxs():
    """The test's own CRC32 recipe gives the docs' check strings and the real capture's checksums."""
    assert okx_checksum([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"], ["3368", "8"]]) == \
        crc32_signed("3366.1:7:3366.8:9:3366:6:3368:8")
    assert okx_checksum([["3366.1", "7"]], [["3366.8", "9"], ["3368", "8"], ["3372", "8"]]) == \
        crc32_signed("3366.1:7:3366.8:9:3368:8:3372:8")
    book = Book()
    snapshot, update = real("ws_books_snapshot_swap_2022.json"), real("ws_books_update_swap_2022.json")
    book.seq = -1  # the 2022 capture predates seqId: chain it by hand
    for message in (snapshot, update):
        message["data"][0] |= {"prevSeqId": book.seq, "seqId": book.seq + 1}
        book.apply(message)
    assert book.seq == 1


async def test_the_books_snapshot_is_shaped_as_okx_sends_it():
    async with simulated() as client:
        lots = await client.lot_sizes()
        ws = await client.connect()
        await subscribe(ws)
        snapshot = await ws.receive_json(timeout=5)
        assert shape(without_sequence(snapshot)) == shape(real("ws_books_snapshot_swap_2022.json"))
        data = snapshot["data"][0]
        assert list(data) == ["asks", "bids", "ts", "checksum", "prevSeqId", "seqId"]  # the docs' example
        assert data["ts"] == str(T0) and data["prevSeqId"] == -1
        assert isinstance(data["seqId"], int) and data["seqId"] >= 0 and isinstance(data["checksum"], int)
        check_levels(data["bids"] + data["asks"], lots[BTC])
        bids = [Decimal(level[0]) for level in data["bids"]]
        asks = [Decimal(level[0]) for level in data["asks"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        assert 25 < len(bids) <= 400 and 25 < len(asks) <= 400
        book = Book()
        book.apply(snapshot)  # its checksum holds
        assert book.bids == (await client.ok("/api/v5/market/books", instId=BTC, sz="400"))[0]["bids"]
        await ws.send_json({"op": "subscribe", "args": [{"channel": "books", "instId": "NOPE-USDT-SWAP"}]})
        error = await ws.receive_json(timeout=5)
        assert error["event"] == "error" and error["code"] == "60018" and "NOPE-USDT-SWAP" in error["msg"]
        await ws.close()


async def test_books_updates_chain_verify_and_keep_the_book_equal_to_rest_and_books5():
    async with simulated() as client:
        lots = await client.lot_sizes()
        ws = await client.connect()
        await subscribe(ws, channel="books5", request_id="b5")
        books5 = await ws.receive_json(timeout=5)
        await subscribe(ws)
        book = Book()
        book.apply(await ws.receive_json(timeout=5))
        assert books5["data"][0]["seqId"] == book.seq  # one sequence for the instrument's book
        updates = deletions = 0
        for _ in range(60):
            client.step()
            [rest] = await client.ok("/api/v5/market/books", instId=BTC, sz="400")
            expected = {"books5"} | ({"books"} if rest["seqId"] != book.seq else set())
            while expected:  # this step's pushes, in whatever order
                message = await ws.receive_json(timeout=5)
                channel = message["arg"]["channel"]
                expected.remove(channel)
                data = message["data"][0]
                if channel == "books5":
                    books5 = message
                    continue
                assert message["action"] == "update" and message["arg"] == {"channel": "books", "instId": BTC}
                assert shape(without_sequence(message)) == shape(real("ws_books_update_swap_2022.json"))
                assert data["seqId"] > data["prevSeqId"] and data["ts"] == str(client.now[0])
                check_levels(data["bids"] + data["asks"], lots[BTC], deletions=True)
                deletions += sum(level[1] == "0" for level in data["bids"] + data["asks"])
                book.apply(message)
                updates += 1
            assert rest["seqId"] == book.seq and rest["ts"] == str(client.now[0])
            assert book.bids == rest["bids"] and book.asks == rest["asks"]
            top = books5["data"][0]
            assert top["seqId"] == book.seq and top["bids"] == book.bids[:5] and top["asks"] == book.asks[:5]
            [ticker] = await client.ok("/api/v5/market/ticker", instId=BTC)
            assert [ticker["bidPx"], ticker["bidSz"]] == book.bids[0][:2]
            assert [ticker["askPx"], ticker["askSz"]] == book.asks[0][:2]
            assert Decimal(ticker["bidPx"]) < Decimal(ticker["askPx"])
        assert updates >= 30 and deletions > 0
        await ws.close()


async def test_a_second_subscriber_joins_the_same_sequence():
    async with simulated() as client:
        first, second = await client.connect(), await client.connect()
        await subscribe(first)
        a = Book()
        a.apply(await first.receive_json(timeout=5))
        for _ in range(5):
            client.step()
            [rest] = await client.ok("/api/v5/market/books", instId=BTC, sz="1")
            if rest["seqId"] != a.seq:
                a.apply(await first.receive_json(timeout=5))
        client.now[0] += 20  # the market moves, the stream (every 100 ms) is not due yet
        client.server.step()
        [rest] = await client.ok("/api/v5/market/books", instId=BTC)
        assert rest["seqId"] != a.seq
        await subscribe(second)
        b = Book()
        snapshot = await second.receive_json(timeout=5)
        b.apply(snapshot)  # the book the stream last sent, which the next update changes
        assert snapshot["action"] == "snapshot" and b.seq == a.seq and (b.bids, b.asks) == (a.bids, a.asks)
        seen = 0
        while seen < 3:
            client.step()
            [rest] = await client.ok("/api/v5/market/books", instId=BTC)
            if rest["seqId"] != a.seq:
                message = await first.receive_json(timeout=5)
                assert await second.receive_json(timeout=5) == message  # the same update for both
                a.apply(message)
                b.apply(message)
                seen += 1
        await subscribe(second, op="unsubscribe")
        await subscribe(second)  # subscribing again starts again from a snapshot
        again = await second.receive_json(timeout=5)
        assert again["action"] == "snapshot" and again["data"][0]["seqId"] == a.seq
        for ws in (first, second):
            await ws.close()


def test_a_quiet_book_says_after_a_minute_that_it_is_alive():
    """The docs: no change for about 60 s -> an update with empty sides, prevSeqId == seqId."""
    model = MarketModel(["BTCUSDT"], seed=3, start_ms=T0)
    dialect = OkxDialect(model)
    topic = f"books:{BTC}"
    snapshot = json.loads(dialect.snapshot(topic)[0])["data"][0]
    model.now_ms += 30_000  # time passes, the book stands still (the model is not stepped)
    assert dialect.step_frames({topic}) == {}
    model.now_ms += 30_000
    [frame] = dialect.step_frames({topic})[topic]
    alive = json.loads(frame)
    assert alive["action"] == "update" and alive["data"][0] == {
        "asks": [], "bids": [], "ts": str(T0 + 60_000), "checksum": snapshot["checksum"],
        "prevSeqId": snapshot["seqId"], "seqId": snapshot["seqId"]}
    model.now_ms += 1000
    assert dialect.step_frames({topic}) == {}


async def test_rest_books_takes_sz_from_1_to_400():
    async with simulated() as client:
        lots = await client.lot_sizes()
        [one] = await client.ok("/api/v5/market/books", instId=DOGE)
        assert list(one) == ["asks", "bids", "ts", "seqId"]  # the docs' example
        assert len(one["bids"]) == len(one["asks"]) == 1 and one["ts"] == str(T0) and isinstance(one["seqId"], int)
        [five] = await client.ok("/api/v5/market/books", instId=DOGE, sz="5")
        [deep] = await client.ok("/api/v5/market/books", instId=DOGE, sz="400")
        assert five["bids"] == deep["bids"][:5] and five["asks"] == deep["asks"][:5] and one["bids"] == five["bids"][:1]
        assert 5 < len(deep["bids"]) <= 400 and five["seqId"] == deep["seqId"] == one["seqId"]
        check_levels(deep["bids"] + deep["asks"], lots[DOGE])


async def test_ticker_and_tickers_are_shaped_as_okx_sends_them_and_agree_with_the_book():
    async with simulated() as client:
        for _ in range(10):
            client.step()
        instruments = {row["instId"]: row for row in await client.ok("/api/v5/public/instruments", instType="SWAP")}
        rows = await client.ok("/api/v5/market/tickers", instType="SWAP")
        assert sorted(row["instId"] for row in rows) == sorted(instruments) == [BTC, DOGE]
        sample = real("ws_tickers_swap_2022.json")["data"][0]  # the fields of the docs' REST example too
        for row in rows:
            assert shape(row) == shape(sample) and set(row) == set(sample)
            assert all(isinstance(value, str) for value in row.values())
            assert row["instType"] == "SWAP" and row["ts"] == str(client.now[0])
            assert await client.ok("/api/v5/market/ticker", instId=row["instId"]) == [row]
            assert Decimal(row["bidPx"]) < Decimal(row["askPx"])
            assert Decimal(row["low24h"]) <= Decimal(row["last"]) <= Decimal(row["high24h"])
            ct_val = Decimal(instruments[row["instId"]]["ctVal"])
            assert Decimal(row["vol24h"]) * ct_val == Decimal(row["volCcy24h"])  # contracts and base coin
            [top] = await client.ok("/api/v5/market/books", instId=row["instId"])
            assert [row["bidPx"], row["bidSz"], row["askPx"], row["askSz"]] == top["bids"][0][:2] + top["asks"][0][:2]
        for inst_type in INST_TYPES_NOT_SIMULATED:
            assert await client.ok("/api/v5/market/tickers", instType=inst_type) == []


async def test_errors_are_answered_as_okx_answers_them():
    unknown = "Instrument ID, Instrument ID code or Spread ID doesn't exist."
    cases = [
        ("/api/v5/market/ticker", {}, 400, "50014", "Parameter instId can not be empty."),
        ("/api/v5/market/ticker", {"instId": "NOPE-USDT-SWAP"}, 200, "51001", unknown),
        ("/api/v5/market/ticker", {"instId": "BTC-USDT"}, 200, "51001", unknown),  # spot: not simulated
        ("/api/v5/market/tickers", {}, 400, "50014", "Parameter instType can not be empty."),
        ("/api/v5/market/tickers", {"instType": "PERP"}, 400, "51000", "Parameter instType error"),
        ("/api/v5/market/books", {}, 400, "50014", "Parameter instId can not be empty."),
        ("/api/v5/market/books", {"instId": "NOPE-USDT-SWAP"}, 200, "51001", unknown),
        ("/api/v5/market/books", {"instId": BTC, "sz": "0"}, 400, "51000", "Parameter sz error"),
        ("/api/v5/market/books", {"instId": BTC, "sz": "401"}, 400, "51000", "Parameter sz error"),
        ("/api/v5/market/books", {"instId": BTC, "sz": "five"}, 400, "51000", "Parameter sz error"),
        ("/api/v5/public/funding-rate", {}, 400, "50014", "Parameter instId can not be empty."),
        ("/api/v5/public/funding-rate", {"instId": "NOPE-USDT-SWAP"}, 200, "51001", unknown),
    ]
    async with simulated() as client:
        for path, query, status, code, msg in cases:
            assert await client.get(path, **query) == (status, {"code": code, "msg": msg, "data": []}), (path, query)
