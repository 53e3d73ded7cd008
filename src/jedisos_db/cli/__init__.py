"""``jedisos-db``: thin commands over the package; all terminal rendering lives here."""

from jedisos_db.cli.main import app

__all__ = ["app"]
