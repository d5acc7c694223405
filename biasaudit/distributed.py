"""Dask for sharded work: ``--scheduler`` is ``local`` (a LocalCluster sized to this machine, one single-threaded
worker process per core) or the address of a running scheduler (``tcp://host:8786``); none means in-process.

Workers must be able to read the corpus files at the same paths (a shared file system) and import biasaudit.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from .errors import ConfigError


@contextmanager
def dask_client(scheduler: str | None, n_workers: int | None = None) -> Iterator[object | None]:
    """A ``dask.distributed.Client`` for ``scheduler`` (closed afterwards), or None when ``scheduler`` is None."""
    if scheduler is None:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise ConfigError("--scheduler needs dask.distributed: pip install 'biasaudit[dask]'") from e
    if scheduler == "local":
        n = n_workers or max(1, os.cpu_count() or 1)
        # ":0": any free port for the scheduler's HTTP endpoint (no clash with another cluster on 8787)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r} ({e})") from e
    try:
        yield client
    finally:
        client.close()
