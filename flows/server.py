"""The temporary Prefect server of a CLI run dies with the CLI, however the CLI ends.

Without ``PREFECT_API_URL`` Prefect starts a temporary API server as a child process
(``python -m uvicorn ... prefect.server.api.server:create_app``) and stops it from an
``atexit`` hook. A CLI killed by a signal runs no ``atexit`` hook, so the server was left
running (10 of 13 killed backfills). Here:

- the server is started with the Linux parent-death signal set (``prctl(PR_SET_PDEATHSIG,
  SIGTERM)``), so the kernel terminates it when the CLI dies, even by SIGKILL;
- it is started from the main thread, before the flow runs: the parent-death signal
  follows the thread that started the child, and the main thread lives as long as the CLI;
- SIGTERM makes the CLI exit (status 143) through Python's normal shutdown, so the
  ``atexit`` hook stops the server and Prefect records the run as crashed.

A server given by ``PREFECT_API_URL`` is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


class _Subprocess:
    """The ``subprocess`` module as the Prefect server module sees it: ``Popen`` arms the
    parent-death signal (on Linux); everything else is the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        if sys.platform.startswith("linux") and "preexec_fn" not in kwargs:
            parent = os.getpid()
            kwargs["preexec_fn"] = lambda: _die_with_parent(parent)
        return subprocess.Popen(*args, **kwargs)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def temporary_server_dies_with_us(start: bool = True) -> bool:
    """Make the temporary server (if this process will need one) die with it, and start it
    now from the main thread (``start``). Returns True when a temporary server is used."""
    if os.environ.get("PREFECT_API_URL"):
        return False
    from prefect.server.api import server as prefect_server

    prefect_server.subprocess = _Subprocess()  # type: ignore[assignment]
    if threading.current_thread() is not threading.main_thread():
        return True
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if start:  # the one Prefect would start later (it is one per process), started here
        prefect_server.SubprocessASGIServer().start()
    return True
