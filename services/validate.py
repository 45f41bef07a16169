"""`arb validate`: a configured venue (Bybit or OKX) checked step by step before anything
trades on it, as the backtesting seed's validation framework lists: connectivity (and the
clock), the key's authentication, balance handling, rate-limit headers (Bybit) or the position
mode (OKX), error handling, key security.

Each step is one or two requests that cannot place an order; each gives a verdict and what
it saw. A step that cannot run because an earlier one failed says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import aiohttp

from shared.settings import Settings
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
    hosts = settings.bybit_endpoints()
    credentials = settings.bybit_credentials()
    checks: list[Check] = []
    async with aiohttp.ClientSession() as http:
        key, secret = (credentials[0], credentials[1].get_secret_value()) if credentials else ("", "")
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


async def validate_okx(settings: Settings) -> list[Check]:
    """OKX's checks through its trading client: the clock, the key (it signs, it may trade, it
    may not withdraw, it is bound to an IP), the account's position mode, its balance, and the
    codes of a wrong signature and of an order that does not exist."""
    from services.ingestor.service import load_symbols, venue_hosts
    from shared.rest import RestError
    from shared.venues import trading_client, venue
    from shared.venues.trading import OutcomeUnknown, Refused

    hosts = settings.okx_endpoints()
    credentials = settings.okx_credentials()
    key, secret, passphrase = (credentials[0], credentials[1].get_secret_value(),
                               credentials[2].get_secret_value()) if credentials else ("", "", "")
    demo = settings.venue_env in ("demo", "testnet")
    checks: list[Check] = []
    async with aiohttp.ClientSession() as http:
        try:
            okx = venue("okx")
            instruments = list((await load_symbols(okx, venue_hosts(settings, okx), http)).by_symbol.values())
            trading = trading_client("okx")(http, hosts.rest, hosts.ws_private, key, secret, passphrase,
                                            instruments=instruments, demo=demo)
            checks.append(await _clock(trading, hosts.rest + (" (demo trading)" if demo else ""),
                                       f"; {len(instruments)} swaps listed"))
        except (OutcomeUnknown, Refused, RestError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            checks.append(Check("connectivity", False, f"{hosts.rest}: {type(exc).__name__}: {exc}"))
            return checks + [Check(n, False, "not run: no connection") for n in OKX_CHECKS]
        if not credentials:
            return checks + [Check("authentication", False, f"no OKX API key for VENUE_ENV={settings.venue_env}")] + [
                Check(n, False, "not run: no key") for n in OKX_CHECKS[1:]]
        try:
            checks += await _okx_signed_checks(trading, http, hosts, key, passphrase, instruments, demo)
        except OutcomeUnknown as exc:
            checks.append(Check("connection", False, f"lost during the checks: {exc}"))
    return checks


OKX_CHECKS = ("authentication", "balance_handling", "position_mode", "error_handling", "key_security")


async def _okx_signed_checks(trading, http: aiohttp.ClientSession, hosts, key: str, passphrase: str,
                             instruments: list, demo: bool) -> list[Check]:
    from shared.venues import trading_client
    from shared.venues.trading import Refused

    try:
        config = await trading._config()
    except Refused as exc:
        return [Check("authentication", False, f"OKX {exc.code}: {exc.message} ({exc.kind})")] + [
            Check(n, False, "not run: authentication failed") for n in OKX_CHECKS[1:]]
    out = [Check("authentication", True, f"the key signs requests OKX accepts (account level {config.get('acctLv')})")]
    balance = await trading.balance()
    out.append(Check("balance_handling", balance.equity >= 0,
                     f"{balance.currency} equity {balance.equity:,.2f}; available {balance.available:,.2f}"))
    mode, level = config.get("posMode"), str(config.get("acctLv", ""))
    if mode == "long_short_mode":
        out.append(Check("position_mode", True, "long/short mode, as the executor trades"))
    elif level in ("2", "3"):
        out.append(Check("position_mode", True, f"{mode}: the executor switches the account to long/short mode at "
                         "start (OKX allows it only with no swap position or order open)"))
    else:
        out.append(Check("position_mode", False, f"{mode} at account level {level}: long/short mode needs the "
                         "futures or multi-currency account mode (set it in OKX's settings)"))
    wrong = trading_client("okx")(http, hosts.rest, hosts.ws_private, key, "not-the-secret", passphrase,
                                  instruments=instruments, demo=demo)
    wrong.rest.offset_ms = trading.rest.offset_ms
    try:
        await wrong._config()
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
                     f"wrong signature -> {bad_sign}; an order that does not exist -> {unknown}; expected "
                     "50113 (bad_signature) and none (51603)"))
    perms = [p.strip() for p in str(config.get("perm", "")).split(",") if p.strip()]
    problems = await trading.key_problems()
    if "trade" not in perms:
        problems.append(f"it may not trade (perm: {', '.join(perms) or 'none'})")
    out.append(Check("key_security", not problems, "; ".join(problems) or
                     f"perm {', '.join(perms)}; bound to {config.get('ip')}"))
    return out
