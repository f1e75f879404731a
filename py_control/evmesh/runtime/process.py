"""A child process we started, with its log in a file; stopped by its own PID only."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ProcessError

LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the child if its parent dies, so a killed evmesh leaves no orphans."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


class ManagedProcess:
    """A started child: its name, PID, log file, and how to stop it (stop_signal, then SIGKILL)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        cwd: Path | None = None,
    ):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.stop_signal = stop_signal
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    start_new_session=True,  # a terminal's Ctrl-C reaches evmesh only; it stops us in order
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            except OSError as exc:
                raise ProcessError(f"{name}: cannot start {self.argv[0]}: {exc.strerror}") from None
        self.pid = self.popen.pid

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} rc={self.popen.returncode}>"

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def failure(self, message: str) -> ProcessError:
        """A ProcessError about this child, carrying its log tail."""
        return ProcessError(f"{self.name} (pid {self.pid}): {message}; log: {self.log_path}", self.log_tail())

    def stop(self, timeout: float = 10.0) -> int | None:
        """Send stop_signal, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(self.stop_signal)  # Popen signals only its own, unreaped PID
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
            except ProcessLookupError:
                pass
        return self.popen.poll()
