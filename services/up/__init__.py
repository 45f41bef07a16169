"""`arb up`: the whole stack on one machine, as separate processes under one supervisor.

- plan.py: what runs in a mode, in start order, and the refusals of a bad configuration (pure);
- redis_place.py: which Redis it uses (the one at REDIS_URL, or one it starts there);
- processes.py: how each process is started and stopped;
- stack.py: the supervisor: start in order, the status line, stop in order, the summary;
- totals.py: what the status line and the summary show, read from Redis.
"""

from services.up.plan import MODES, Plan, Worker, plan, refusals
from services.up.processes import StackError, http_ok, port_free, running_pid
from services.up.stack import Stack, running_redis_url

__all__ = ["MODES", "Plan", "Stack", "StackError", "Worker", "http_ok", "plan", "port_free", "refusals", "running_pid",
           "running_redis_url"]
