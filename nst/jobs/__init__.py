"""Style-transfer jobs behind one interface, run in this process or on RQ workers.

``get_backend()`` returns the process-wide backend chosen by ``NST_QUEUE``:

- unset or empty: ``nst.jobs.local.JobQueue``, threads of this process (the default: one
  command starts everything);
- ``redis://[:password@]host:port/db`` (or ``rediss://`` for TLS):
  ``nst.jobs.redis.RedisQueue``, jobs run by ``python -m nst.worker`` processes.

The interface and its records are in ``nst.jobs.backend``, one module per job kind (``image``,
``video``; the RQ worker is ``nst.worker``); nothing here imports TensorFlow.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from nst.config import grace_seconds, warm_up_enabled
from nst.jobs.backend import (
    JobBackend,
    JobKind,
    JobProgress,
    JobState,
    JobStatus,
    QueueUnavailableError,
    Runner,
    UnknownJobError,
    job_kind,
    register_kind,
)
from nst.jobs.image import JobRequest
from nst.jobs.local import JobQueue, default_concurrency
from nst.jobs.video import VideoJobRequest

__all__ = [
    "QUEUE_ENV",
    "JobBackend",
    "JobKind",
    "JobProgress",
    "JobQueue",
    "JobRequest",
    "JobState",
    "JobStatus",
    "QueueUnavailableError",
    "Runner",
    "UnknownJobError",
    "VideoJobRequest",
    "default_concurrency",
    "get_backend",
    "job_kind",
    "queue_url",
    "register_kind",
    "start_warm_up",
]
logger = logging.getLogger(__name__)

QUEUE_ENV = "NST_QUEUE"

_queue: Any = None
_queue_url: str | None = None
_queue_lock = threading.Lock()


def queue_url() -> str:
    """``NST_QUEUE``'s value ('' for the in-process queue); ``ValueError`` if it is malformed."""
    url = os.environ.get(QUEUE_ENV, "").strip()
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"{QUEUE_ENV} must be empty (run jobs in this process) or a Redis URL such as "
            f"redis://:password@10.0.0.5:6379/0, got {url!r}."
        )
    return url


def get_backend() -> JobBackend:
    """The process-wide backend shared by every browser session (created on first use).

    Creating it never connects: a Redis that is down shows up as ``QueueUnavailableError`` on
    the first call that needs it.
    """
    global _queue, _queue_url
    url = queue_url()
    with _queue_lock:
        if _queue is None or _queue_url != url or getattr(_queue, "closed", False):
            if _queue is not None and _queue_url != url:
                _queue.shutdown(timeout=5.0)
            grace = grace_seconds()  # a page's status calls are the heartbeat
            if url:
                from nst.jobs.redis import RedisQueue

                _queue = RedisQueue(url, heartbeat_timeout=grace)
            else:
                warm = warm_up_enabled()  # a malformed NST_WARM_UP is said before anything runs
                _queue = JobQueue(heartbeat_timeout=grace)
                if warm:
                    start_warm_up()
            _queue_url = url
        return _queue


def start_warm_up() -> threading.Thread:
    """Warm the in-process queue's engine up in a background thread (``nst.front.warm_up``):
    the page and the first instant picture do not wait for it, and a run that needs a network
    or a trace while it is being made waits for that one and shares it."""

    def warm() -> None:
        try:
            from nst.front import warm_up

            logger.info("Networks ready in %.1f s.", warm_up())
        except Exception as error:  # e.g. no weights offline: the first run says how to fix it
            logger.warning("Warm-up skipped: %s", error)

    thread = threading.Thread(target=warm, name="nst-warm-up", daemon=True)
    thread.start()
    return thread


@atexit.register
def _shutdown_at_exit() -> None:
    # Cancel running jobs so the interpreter does not exit underneath a TensorFlow step.
    queue = _queue
    if queue is not None:
        queue.shutdown(timeout=5.0)
