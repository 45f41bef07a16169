"""The README is a first screen a newcomer can follow: short, its links to docs/ real, and every
`arb` command it prints one the real command line accepts.

Every `arb ...` line of the README's bash blocks is parsed by the real click command behind
`arb` (so an unknown option or subcommand fails), and the cheap ones are run for real. The
long-running ones are run elsewhere: `arb up` by tests/test_up.py (the whole stack, its stop,
`arb status` and `arb trades` against what it wrote), `pip install -e ".[test]"` and
`python -m pytest` by CI itself (.ci/run).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main

from services.cli import app

try:  # typer 0.29 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # earlier typers build on click itself
    from click.exceptions import UsageError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_LINES = 300
ARB = [sys.executable, "-m", "services.cli"]

# shell words that end one command and start the next on the same line
SEPARATORS = {"&&", "||", ";", "&", "|"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def bash_blocks(text: str) -> list[str]:
    """The bodies of the ```bash fenced blocks."""
    return re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)


def arb_commands(text: str) -> list[list[str]]:
    """Each `arb` command in the bash blocks, as its argument words (without `arb`).

    A line is split as the shell would (quotes, comments, `&&`, `&`); environment assignments
    in front of a command (`ENVIRONMENT=staging arb up`) are dropped."""
    commands = []
    for block in bash_blocks(text):
        for line in block.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words, current = list(lexer), []
            for word in [*words, ";"]:
                if word in SEPARATORS:
                    while current and ASSIGNMENT.match(current[0]):
                        current.pop(0)
                    if current and current[0] == "arb":
                        commands.append(current[1:])
                    current = []
                else:
                    current.append(word)
    return commands


def parse(args: list[str]) -> None:
    """Parse `arb <args>` with the real command line, as the shell would hand it over, without
    running it. Raises click's UsageError for an unknown command or option, a missing argument
    or a bad value; `--help` counts as parsed."""
    command = typer.main.get_command(app)
    ctx = None
    name = "arb"
    try:
        while True:
            ctx = command.make_context(name, list(args), parent=ctx)
            if not hasattr(command, "resolve_command"):  # a command, not a group of them
                return
            state = vars(ctx)
            rest = [*state.get("_protected_args", state.get("protected_args", [])), *ctx.args]
            if not rest:
                return
            name, command, args = command.resolve_command(ctx, rest)
    except typer.Exit as done:  # --help prints its text and exits 0
        if done.exit_code != 0:
            raise


def links_to_docs(text: str) -> set[str]:
    """The docs/ files the text links to (an anchor after `#` dropped)."""
    return {target.split("#")[0] for target in re.findall(r"\]\((docs/[^)\s]+)\)", text)}


def test_readme_is_at_most_300_lines():
    lines = readme().count("\n")
    assert lines <= MAX_LINES, f"README.md is {lines} lines; move detail into docs/ (at most {MAX_LINES})"


def test_readme_links_to_docs_resolve():
    missing = sorted(link for link in links_to_docs(readme()) if not (ROOT / link).is_file())
    assert not missing, f"README.md links to docs that do not exist: {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert pages, "no docs/*.md"
    unlinked = sorted(pages - links_to_docs(readme()))
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"


def test_docs_pages_link_to_each_other_by_real_names():
    """A link from one docs page to another (`operations.md#settings`) names a page that exists."""
    broken = []
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([a-z0-9-]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not (DOCS / target).is_file():
                broken.append(f"{page.name} -> {target}")
    assert not broken, f"broken links between docs pages: {broken}"


def test_readme_bash_blocks_hold_arb_commands():
    commands = arb_commands(readme())
    assert {"up", "status", "trades", "stop", "config", "--help"} <= {c[0] for c in commands if c}, commands


@pytest.mark.parametrize("args", arb_commands(readme()), ids=lambda args: " ".join(["arb", *args]))
def test_readme_arb_command_parses_with_the_real_cli(args):
    """Every `arb` line of the README's bash blocks is accepted by the real command line: the
    command exists and so does each option. (`arb up` itself is run by tests/test_up.py.)"""
    try:
        parse(args)
    except UsageError as exc:
        pytest.fail(f"arb {shlex.join(args)}: {exc.format_message()}")


def test_parse_refuses_an_unknown_option():
    """The check above is real: an option the command does not have fails."""
    with pytest.raises(UsageError):
        parse(["up", "--no-such-option"])
    with pytest.raises(UsageError):
        parse(["no-such-command"])


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """`arb <args>` as its own process, in an empty folder (no ./.env), with no keys set."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_SECRET"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([*ARB, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_arb_help_runs_and_lists_every_command_the_readme_uses(tmp_path):
    done = _run(["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    used = {c[0] for c in arb_commands(readme()) if c and not c[0].startswith("-")}
    missing = sorted(name for name in used if not re.search(rf"\b{re.escape(name)}\b", done.stdout))
    assert not missing, f"arb --help does not list {missing}:\n{done.stdout}"


def test_arb_config_runs_and_masks_secrets(tmp_path):
    done = _run(["config"], tmp_path)
    assert done.returncode == 0, done.stderr
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line and not line.startswith("#"))
    assert "REDIS_URL" in shown and "VENUE_ENV" in shown, done.stdout
    assert shown["SIM_API_SECRET"] != "sim-api-secret", "arb config printed a secret"
