"""The processes of a running stack, read from /proc: what the memory benchmark and the
reliability soak sample."""

from __future__ import annotations

from pathlib import Path


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> dict[int, str]:
    """The direct children of `pid`: pid -> a short name from the command line."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        words = [w.decode(errors="replace") for w in argv if w]
        if "services.cli" in words:
            rest = words[words.index("services.cli") + 1:]
            name = rest[0] + "".join(f"-{rest[rest.index(flag) + 1].split('/')[0]}" for flag in ("--venue", "--shard")
                                     if flag in rest)
        else:
            name = Path(words[0]).name if words else "?"
        out[int(stat.parent.name)] = name
    return out
