"""`arb validate`: a configured venue checked step by step before anything trades on it, as the
backtesting seed's validation framework lists: connectivity (and the clock), the key's
authentication, balance handling, rate-limit headers (Bybit) or the position mode (OKX,
Bitget, Binance, through their trading clients), error handling, key security.

Each step is one or two requests that cannot place an order; each gives a verdict and what
it saw. A step that cannot run because an earlier one failed says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import aiohttp

from shared.settings import CREDENTIAL_PARTS, Settings
from shared.venues.bybit.trading import BybitTrading, BybitUnreachable, key_problems

MAX_SKEW_MS = 1_000  # a signed request is refused beyond the recv window (5 s); keep well inside it


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def _clock(trading, where: str, more: str = "") -> Check:
    """The venue's clock against ours, and how long it took to answer."""
    sent = time.monotonic()
    skew = await trading.sync_time()
    rtt = (time.monotonic() - sent) * 1000
    return Check("connectivity", abs(skew) <= MAX_SKEW_MS,
                 f"{where} answered in {rtt:.0f} ms; clock skew {skew:+d} ms (limit +-{MAX_SKEW_MS} ms){more}")


async def validate(settings: Settings) -> list[Check]:
    hosts = settings.trading_endpoints("bybit")
    credentials = settings.trading_credentials("bybit")
    checks: list[Check] = []
    async with aiohttp.ClientSession() as http:
        key, secret = credentials or ("", "")
        trading = BybitTrading(http, hosts.rest, key, secret)
        try:
            checks.append(await _clock(trading, hosts.rest))
        except (BybitUnreachable, aiohttp.ClientError, OSError, TimeoutError, KeyError, ValueError) as exc:
            checks.append(Check("connectivity", False, f"{hosts.rest}: {type(exc).__name__}: {exc}"))
            return checks + [Check(n, False, "not run: no connection") for n in
                             ("authentication", "balance_handling", "rate_limits", "error_handling", "key_security")]
        if not credentials:
            return checks + [Check("authentication", False, f"no API key for VENUE_ENV={settings.venue_env}")] + [
                Check(n, False, "not run: no key") for n in
                ("balance_handling", "rate_limits", "error_handling", "key_security")]
        try:
            checks += await _signed_checks(trading, http, hosts.rest, key)
        except BybitUnreachable as exc:
            checks.append(Check("connection", False, f"lost during the checks: {exc}"))
    return checks


async def _signed_checks(trading: BybitTrading, http: aiohttp.ClientSession, rest: str, key: str) -> list[Check]:
    out = []
    code, message, result, headers = await trading.send("GET", "/v5/account/wallet-balance",
                                                        {"accountType": "UNIFIED"})
    out.append(Check("authentication", code == 0, "the key signs requests Bybit accepts" if code == 0 else
                     f"Bybit {code}: {message}"))
    if code == 0:
        out.append(_balance(result))
    else:
        out.append(Check("balance_handling", False, "not run: authentication failed"))
    wanted = ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp")
    seen = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in wanted if h.lower() not in seen]
    out.append(Check("rate_limits", not missing, f"missing {', '.join(missing)}" if missing else
                     f"limit {seen['x-bapi-limit']}/s, {seen['x-bapi-limit-status']} left"))
    out.append(await _errors(trading, http, rest, key))
    if code == 0:
        _, _, info, _ = await trading.send("GET", "/v5/user/query-api", {})
        problems = key_problems(info)
        out.append(Check("key_security", not problems, "; ".join(problems) or
                         f"no Wallet permission; bound to {', '.join(info.get('ips', []))}"))
    else:
        out.append(Check("key_security", False, "not run: authentication failed"))
    return out


def _balance(result: dict) -> Check:
    try:
        account = result["list"][0]
        equity = Decimal(account["totalEquity"])
        usdt = next((Decimal(c["walletBalance"]) for c in account.get("coin", []) if c.get("coin") == "USDT"),
                    Decimal(0))
    except (KeyError, IndexError, TypeError, InvalidOperation) as exc:
        return Check("balance_handling", False, f"wallet-balance not understood: {type(exc).__name__}: {exc}")
    return Check("balance_handling", equity >= 0, f"equity ${equity:,.2f}; USDT {usdt:,.2f}")


async def _errors(trading: BybitTrading, http: aiohttp.ClientSession, rest: str, key: str) -> Check:
    """A request with a bad parameter must get 10001, and one signed with a wrong secret 10004."""
    bad_param, message, _, _ = await trading.send("GET", "/v5/order/realtime", {"category": "no-such-category"})
    wrong = BybitTrading(http, rest, key, "not-the-secret")
    wrong.offset_ms = trading.offset_ms
    bad_sign, sign_message, _, _ = await wrong.send("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"})
    ok = bad_param == 10001 and bad_sign == 10004
    return Check("error_handling", ok, f"bad parameter -> {bad_param} ({message}); wrong signature -> {bad_sign} "
                 f"({sign_message}); expected 10001 and 10004")


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
    lines += [f"{c.name.ljust(width)}  {'PASS' if c.ok else 'FAIL'}    {c.detail}" for c in checks]
    failed = sum(not c.ok for c in checks)
    lines.append(f"{len(checks) - failed}/{len(checks)} passed" + (f"; {failed} failed" if failed else ""))
    return "\n".join(lines)


VENUE_CHECKS = ("authentication", "balance_handling", "position_mode", "error_handling", "key_security")


async def validate_venue(settings: Settings, name: str) -> list[Check]:
    """A venue's checks through its trading client (OKX, Bitget, Binance): the clock, the key
    (it signs, it may trade, it may not withdraw, it is bound to an IP), the account's position
    mode, its balance, and the refusals of a wrong signature and of an order that does not exist."""
    from services.ingestor.service import load_symbols, venue_hosts
    from shared.rest import RestError
    from shared.venues import TITLES, trading_client, venue
    from shared.venues.trading import OutcomeUnknown, Refused

    hosts = settings.trading_endpoints(name)
    credentials = settings.trading_credentials(name)
    demo = settings.demo_keys(name)
    client = trading_client(name)
    checks: list[Check] = []
    async with aiohttp.ClientSession() as http:
        def account(secret: str | None = None):
            given = credentials or ("",) * (1 + len(CREDENTIAL_PARTS[name]))
            given = given if secret is None else (given[0], secret, *given[2:])
            return client.for_account(http, hosts.rest, hosts.ws_private, given, instruments, demo,
                                      **settings.trading_options(name))

        try:
            v = venue(name)
            instruments = list((await load_symbols(v, venue_hosts(settings, v), http)).by_symbol.values())
            trading = account()
            checks.append(await _clock(trading, hosts.rest + (" (demo trading)" if demo else ""),
                                       f"; {len(instruments)} perpetuals listed"))
        except (OutcomeUnknown, Refused, RestError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            checks.append(Check("connectivity", False, f"{hosts.rest}: {type(exc).__name__}: {exc}"))
            return checks + [Check(n, False, "not run: no connection") for n in VENUE_CHECKS]
        if not credentials:
            return checks + [Check("authentication", False, f"no {TITLES[name]} API key for VENUE_ENV="
                                   f"{settings.venue_env}: set {settings.credential_names(name)}")] + [
                Check(n, False, "not run: no key") for n in VENUE_CHECKS[1:]]
        try:
            checks += await _signed_checks_of(trading, account("not-the-secret"), TITLES[name], instruments)
        except OutcomeUnknown as exc:
            checks.append(Check("connection", False, f"lost during the checks: {exc}"))
    return checks


async def _signed_checks_of(trading, wrong, title: str, instruments: list) -> list[Check]:
    from shared.venues.trading import Refused

    try:
        await trading.prepare()
        balance = await trading.balance()
    except Refused as exc:
        return [Check("authentication", False, f"{title} {exc.code}: {exc.message} ({exc.kind})")] + [
            Check(n, False, "not run: authentication failed") for n in VENUE_CHECKS[1:]]
    out = [Check("authentication", True, f"the key signs requests {title} accepts"),
           Check("balance_handling", balance.equity >= 0,
                 f"{balance.currency} equity {balance.equity:,.2f}; available {balance.available:,.2f}")]
    out.append(Check("position_mode", *await trading.position_mode()))
    await wrong.sync_time()
    try:
        await wrong.balance()
        bad_sign = "accepted"
    except Refused as exc:
        bad_sign = f"{exc.code} ({exc.kind})"
    symbol = next((i.symbol for i in instruments if i.symbol == "BTCUSDT"), instruments[0].symbol if instruments
                  else "BTCUSDT")
    try:
        missing = await trading.order(symbol, "validate0notanorder")
        unknown = "none" if missing is None else f"an order: {missing}"
    except Refused as exc:
        unknown = f"{exc.code} ({exc.kind})"
    out.append(Check("error_handling", bad_sign.endswith("(bad_signature)") and unknown == "none",
                     f"wrong signature -> {bad_sign}; an order that does not exist -> {unknown}; expected a "
                     "bad_signature refusal and none"))
    problems = await trading.key_problems()
    out.append(Check("key_security", not problems, "; ".join(problems) or trading.key_checked()))
    return out
