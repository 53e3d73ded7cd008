"""``python -m jedisos_db`` is the CLI."""

from jedisos_db.cli import app

app(prog_name="jedisos-db")
