"""Bring a database to the state the design's start-up order leaves it in (section 1, "migration order").

1. PostgreSQL running, ``vector`` installed in ``public``;
2. the jedisos schema migrated to head by Alembic.

Idempotent: a second run finds everything in place and changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from jedisos_db import migrations, provision, urls


@dataclass(frozen=True)
class StartupReport:
    url: str
    embedded: bool
    server: provision.ServerInfo
    revision_before: str | None
    revision: str | None
    steps: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.revision_before != self.revision


def up(dsn: str | None = None, *, data_dir: Path | None = None,
       settings: provision.ServerSettings | None = None) -> StartupReport:
    """Start (or reuse) the server unless ``dsn`` is given, bootstrap, upgrade to head."""
    url = provision.resolve_url(dsn, data_dir=data_dir, settings=settings)
    embedded = not dsn and not os.environ.get(provision.ENV_URL)
    provision.bootstrap(url)
    before = migrations.current(url)
    migrations.upgrade(url, "head")
    after = migrations.current(url)
    steps = ["extension vector in public", f"jedisos migrations {before or 'base'} -> {after}"]
    return StartupReport(
        url=urls.to_libpq(url),
        embedded=embedded,
        server=provision.server_info(url),
        revision_before=before,
        revision=after,
        steps=steps,
    )
