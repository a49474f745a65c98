"""Fixtures for the scale-out tests: a PostgreSQL schema of their own, and the cluster (see
:mod:`cluster`). They need PostgreSQL (``OPENWEN_TEST_POSTGRES_URL``) and ``haproxy``."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from openwen.storage.db import normalise_url

sys.path.insert(0, str(Path(__file__).parent))

from cluster import (  # noqa: E402
    Process,
    haproxy,
    instance,
    instance_url,
    upstream,
    upstream_port,
)

POSTGRES_ENV = "OPENWEN_TEST_POSTGRES_URL"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"the scale-out tests need {POSTGRES_ENV}")
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    schema = f"openwen_scale_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yielded = admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    yield yielded.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@dataclass
class Cluster:
    upstream: Process
    instances: dict[str, Process]
    balancer: Process
    url: str
    processes: list[Process] = field(default_factory=list)

    def instance_url(self, name: str) -> str:
        return instance_url(self.instances[name])

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{upstream_port(self.upstream)}/v1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Cluster]:
    if shutil.which("haproxy") is None:
        pytest.skip("the scale-out tests need haproxy (scripts/test-services installs it)")
    root = tmp_path_factory.mktemp("scale")
    up = upstream(root / "upstream").start()
    base = f"http://127.0.0.1:{upstream_port(up)}/v1"
    # one after the other: the first migrates the empty schema
    instances = {name: instance(name, root / name, database_url, base).start()
                 for name in ("a", "b")}
    backends = {name: instance_url(p).removeprefix("http://") for name, p in instances.items()}
    balancer, url = haproxy(root / "haproxy", backends)
    balancer.start()
    made = Cluster(up, instances, balancer, url, [up, *instances.values(), balancer])
    try:
        yield made
    finally:
        for process in reversed(made.processes):
            process.stop()
