"""Named points where the reliability suite kills a process on purpose (SIGKILL: no cleanup).

    ARB_FAILPOINTS="signal_read=0.05,after_leg1=0.1"   # point=probability, comma-separated
    ARB_FAILPOINTS="signal_read=1:stop"                # SIGSTOP instead, once: a stall

Each time a named point is reached, the process kills itself with that probability, after
writing `failpoint NAME: SIGKILL` to stderr; with `:stop` it stops itself (SIGSTOP, until a
SIGCONT) the first time, and the point is spent. Unset (always, outside the suite's crash and
stall tests), a point costs one dict lookup. ARB_FAILPOINT_SEED makes the draws repeatable.

The executor's points, in the order a trade meets them:
- `signal_read`: a signal entry was read, nothing decided yet;
- `before_write`: facts decided, not yet written to strategy:events;
- `after_write`: facts written, the orders they describe not yet sent;
- `after_leg1`, `after_leg2`: the fill of the first (harder) or second entry leg written;
- `before_ack`: entries handled and written, their XACK not yet sent.
"""

from __future__ import annotations

import os
import random
import signal
import sys


def _parse(text: str) -> dict[str, tuple[float, str]]:
    points = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, spec = item.partition("=")
        p, _, action = spec.partition(":")
        points[name] = (float(p or 1), action or "kill")
    return points


POINTS = _parse(os.environ.get("ARB_FAILPOINTS", ""))
ARMED = bool(POINTS)  # for a caller that would do work only to reach a point
_rng = random.Random(os.environ.get("ARB_FAILPOINT_SEED"))


def failpoint(name: str) -> None:
    point = POINTS.get(name)
    if point is None or _rng.random() >= point[0]:
        return
    if point[1] == "stop":
        del POINTS[name]
        sys.stderr.write(f"failpoint {name}: SIGSTOP\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    sys.stderr.write(f"failpoint {name}: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
