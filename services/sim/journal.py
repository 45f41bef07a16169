"""The simulator's journal of signed requests (`SimServer.journal`): what the reliability
tests count, on every venue the simulator trades."""

from __future__ import annotations

from typing import NamedTuple


class Request(NamedTuple):
    """One signed request as the venue saw it."""

    ts_ms: int
    path: str
    api_key: str | None
    ret_code: int  # the venue's code (OKX: the item's sCode when it failed per item), 0 = accepted
    link_id: str | None = None  # orderLinkId (OKX: clOrdId), where the request named one
    reduce_only: bool = False
    dropped: bool = False  # carried out, its answer lost (drop_order_responses)
