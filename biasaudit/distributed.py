"""Dask for sharded work: ``--scheduler`` is ``local`` (a LocalCluster sized to this machine, one single-threaded
worker process per core) or the address of a running scheduler (``tcp://host:8786``); none means in-process.

Workers must be able to read the corpus files at the same paths (a shared file system) and import biasaudit.

Trust: a cluster is trusted completely (Dask moves results as pickles: a hostile worker's result runs code in this
process), so use only your own. What is bounded here is time: the whole connection (TCP, handshake, the first
exchange) must finish within ``$BIASAUDIT_DASK_TIMEOUT`` seconds (default 30), or it is one line naming the
address. Only plain ``tcp://HOST:PORT`` addresses are taken (no TLS or UCX: they need settings this tool does not
pass). The local cluster listens on 127.0.0.1 only, its dashboard included.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import ConfigError

TIMEOUT_ENV = "BIASAUDIT_DASK_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
_ADDRESS = re.compile(r"(?:tcp://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(?P<port>[0-9]{1,5})")


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if it is ``local`` or ``tcp://HOST:PORT`` (``HOST:PORT`` is read as tcp); else a ConfigError
    saying what is taken."""
    if scheduler == "local":
        return scheduler
    scheme = scheduler.split("://", 1)[0].lower() if "://" in scheduler else None
    if scheme is not None and scheme != "tcp":
        raise ConfigError(f"--scheduler: {scheme[:20]}:// is not supported; give 'local' or a plain "
                          "tcp://HOST:PORT address")
    m = _ADDRESS.fullmatch(scheduler)
    if m is None or not 0 < int(m["port"]) < 65536:
        raise ConfigError(f"--scheduler: {scheduler[:80]!r} is not an address of the form tcp://HOST:PORT "
                          "(or 'local')")
    return scheduler


def connect_timeout() -> float:
    """Seconds the whole connection to a scheduler may take: ``$BIASAUDIT_DASK_TIMEOUT``, default 30."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 24 * 3600:
        raise ConfigError(f"{TIMEOUT_ENV}={raw[:40]!r} is not a number of seconds between 0 and 86400")
    return value


def _connect(address: str, timeout: float):
    """A Client for ``address``, given up after ``timeout`` seconds whatever the peer does. distributed's own
    timeout covers the TCP connection but not a peer that accepts and never answers, so the Client is made in a
    daemon thread under a hard deadline; an abandoned attempt is closed if it ever finishes."""
    import socket

    from dask.distributed import Client

    # a plain TCP probe first: a refused or unreachable port is told at once, not after distributed's retries
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        refused = _refusal(e)
        if refused is not None:
            raise ConfigError(f"cannot reach the Dask scheduler at {address} ({refused}: is it running "
                              "there?)") from e
    except ValueError:
        pass                       # not host:port; distributed says what is wrong below

    box: dict = {}
    abandoned = threading.Event()

    def attempt():
        try:
            client = Client(address, timeout=f"{timeout}s")
        except BaseException as e:          # noqa: BLE001 - reported by the caller, in its thread
            box["error"] = e
            return
        if abandoned.is_set():
            try:
                client.close()
            except Exception:  # noqa: BLE001 - the caller has already reported the timeout
                pass
            return
        box["client"] = client

    thread = threading.Thread(target=attempt, name="biasaudit-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout + 2)
    if thread.is_alive():
        abandoned.set()
        raise ConfigError(f"the Dask scheduler at {address} timed out: no answer within {timeout:g} s "
                          f"(set {TIMEOUT_ENV} to wait longer)")
    if "client" in box:
        return box["client"]
    e = box["error"]
    refused = _refusal(e)
    if refused is not None:   # distributed retries a refused connection until the timeout, then says "timed out"
        raise ConfigError(f"cannot reach the Dask scheduler at {address} ({refused}, retried for {timeout:g} s: "
                          "is it running there?)") from e
    if isinstance(e, (OSError, TimeoutError)) and "timed out" in str(e).lower():
        raise ConfigError(f"the Dask scheduler at {address} timed out: no answer within {timeout:g} s "
                          f"(set {TIMEOUT_ENV} to wait longer)") from e
    if isinstance(e, Exception):   # refused, unreachable, or not speaking Dask's protocol
        cause = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot reach the Dask scheduler at {address} ({cause})") from e
    raise e


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the block starts processes (they inherit it), then restored; a no-op off the main
    thread, where signals cannot be set."""
    import signal

    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:          # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _close_quietly(client, cluster, quiet: bool = True) -> None:
    """Close the client and the local cluster; ``quiet`` (after an interruption or an error): distributed's,
    tornado's and asyncio's loggers silenced first, so closing with tasks still running (cancelled, workers
    killed after their grace period) prints nothing, and a failure to close is not the user's error."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")] if quiet else []
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with _sigint_ignored():       # a second Ctrl-C does not interrupt the closing half-way
            for close in (client.close, cluster.close):
                try:
                    close()
                except Exception:    # noqa: BLE001 - nothing to report: the run is over either way
                    if not quiet:
                        raise
    finally:      # a notebook that goes on after an interrupted run hears distributed again
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _refusal(e: BaseException) -> str | None:
    """'connection refused' (or unreachable) when that is what ``e``'s chain of causes ends in, else None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable" if e.errno == errno.ENETUNREACH else "host unreachable"
        e = e.__cause__ or e.__context__
    return None


@contextmanager
def dask_client(scheduler: str | None, n_workers: int | None = None) -> Iterator[object | None]:
    """A ``dask.distributed.Client`` for ``scheduler`` (closed afterwards), or None when ``scheduler`` is None."""
    if scheduler is None:
        yield None
        return
    check_scheduler(scheduler)
    timeout = connect_timeout() if scheduler != "local" else None
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise ConfigError("--scheduler needs dask.distributed: pip install 'biasaudit[dask]'") from e
    if scheduler == "local":
        n = n_workers or max(1, os.cpu_count() or 1)
        # this machine only: the scheduler, the workers and the dashboard listen on 127.0.0.1 (port 0: any free
        # one, no clash with another cluster on 8786/8787). Ctrl-C reaches every process of the terminal's group:
        # the workers are started with SIGINT ignored (a Python child keeps an ignored SIGINT: no KeyboardInterrupt
        # traceback from each), so only this process stops, and it closes them; their logs say errors only.
        with _sigint_ignored():
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        client = Client(cluster)
        try:
            yield client
        except BaseException:      # interrupted or failed: the user sees our one line, not the shutdown's chatter
            _close_quietly(client, cluster)
            raise
        _close_quietly(client, cluster, quiet=False)
        return
    client = _connect(scheduler, timeout)
    try:
        yield client
    finally:
        client.close()
