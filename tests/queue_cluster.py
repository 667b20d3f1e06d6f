"""A real Redis server and real ``python -m nst.worker`` processes for the queue tests.

The server listens on a free loopback port with a password and keeps nothing on disk; workers
run with ``NST_WEIGHTS=random``. Everything is stopped by the fixture that made it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nst.benchmarks.queueing import free_port

REDIS_SERVER = shutil.which("redis-server")
NEEDS_REDIS = pytest.mark.skipif(
    REDIS_SERVER is None, reason="install redis-server (apt-get install -y redis-server)"
)
ROOT = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 300  # a worker imports TensorFlow and builds the network first


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


class RedisServer:
    """``redis-server`` on 127.0.0.1 with a password; ``stop()`` and ``start()`` again."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        log = open(self.log_dir / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--requirepass", self.password,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.log_dir),  # where an explicit SAVE writes
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.exceptions.RedisError:
                return False

        wait_for(answers, 30, "redis-server start")
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class Workers:
    """``python -m nst.worker`` processes attached to one Redis server."""

    def __init__(self, server: RedisServer, log_dir: Path) -> None:
        self.server = server
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [process for process in self.processes if process.poll() is None]

    def ensure(self, count: int) -> None:
        """Start workers until ``count`` run, and wait until they listen on the queue."""
        from nst.jobs.redis import RedisQueue

        while len(self.alive()) < count:
            index = len(self.processes)
            log = open(self.log_dir / f"worker-{index}.log", "ab")  # noqa: SIM115
            # The URL (with its password) goes in the environment, not on the command line.
            env = dict(
                os.environ, NST_WEIGHTS="random", NST_QUEUE=self.server.url, PYTHONPATH=str(ROOT)
            )
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "nst.worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        queue = RedisQueue(self.server.url)
        try:
            wait_for(lambda: queue.worker_count() >= count, STARTUP_SECONDS, "worker start")
        finally:
            queue.shutdown()

    def kill(self, pid: int) -> None:
        """Kill one worker the hard way (as a crash or an OOM kill would)."""
        os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            if process.pid == pid:
                process.wait(10)

    def stop(self) -> None:
        for process in self.alive():
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextlib.contextmanager
def running_cluster(log_dir: Path, workers: int) -> Iterator[tuple[RedisServer, Workers]]:
    """A started Redis server with ``workers`` listening workers; all stopped after."""
    server = RedisServer(log_dir)
    server.start()
    pool = Workers(server, log_dir)
    try:
        pool.ensure(workers)
        yield server, pool
    finally:
        pool.stop()
        server.stop()
