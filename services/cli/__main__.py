"""`python -m services.cli ...`: the same as `arb ...`."""

from services.cli import app

app()
