"""`arb validate`: a configured Bybit venue checked step by step before anything trades on it,
as the backtesting seed's validation framework lists: connectivity (and the clock), the
key's authentication, balance handling, rate-limit headers, error handling, key security.

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


async def validate(settings: Settings) -> list[Check]:
    hosts = settings.bybit_endpoints()
    credentials = settings.bybit_credentials()
    checks: list[Check] = []
    async with aiohttp.ClientSession() as http:
        key, secret = (credentials[0], credentials[1].get_secret_value()) if credentials else ("", "")
        trading = BybitTrading(http, hosts.rest, key, secret)
        try:
            sent = time.monotonic()
            skew = await trading.sync_time()
            rtt = (time.monotonic() - sent) * 1000
            checks.append(Check("connectivity", abs(skew) <= MAX_SKEW_MS,
                                f"{hosts.rest} answered in {rtt:.0f} ms; clock skew {skew:+d} ms "
                                f"(limit +-{MAX_SKEW_MS} ms)"))
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
