"""Named points where the reliability suite kills a process on purpose (SIGKILL: no cleanup).

    ARB_FAILPOINTS="signal_read=0.05,after_leg1=0.1"   # point=probability, comma-separated

Each time a named point is reached, the process kills itself with that probability, after
writing `failpoint NAME: SIGKILL` to stderr. Unset (always, outside the suite's crash test),
a point costs one dict lookup. ARB_FAILPOINT_SEED makes the draws repeatable.

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


def _parse(text: str) -> dict[str, float]:
    points = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, p = item.partition("=")
        points[name] = float(p or 1)
    return points


POINTS = _parse(os.environ.get("ARB_FAILPOINTS", ""))
ARMED = bool(POINTS)  # for a caller that would do work only to reach a point
_rng = random.Random(os.environ.get("ARB_FAILPOINT_SEED"))


def failpoint(name: str) -> None:
    p = POINTS.get(name)
    if p and _rng.random() < p:
        sys.stderr.write(f"failpoint {name}: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
