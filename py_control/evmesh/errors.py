"""Errors raised by evmesh. Every domain error derives from EvmeshError; the CLI turns each into
one line on stderr (or one line per issue for a SpecError) and exit code 2."""

from __future__ import annotations

from dataclasses import dataclass, field


class EvmeshError(Exception):
    """A domain error with a one-line, user-facing message."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a mesh spec, attached to its YAML path and (1-based) line."""

    source: str
    line: int | None
    path: str
    message: str
    column: int | None = field(default=None, compare=False)  # orders issues on one line; not shown

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(EvmeshError):
    """A mesh spec with one or more problems (all of them, not only the first)."""

    def __init__(self, issues: list[SpecIssue] | tuple[SpecIssue, ...]):
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class NativeLibraryMissing(EvmeshError):
    """A built artefact of `make build` (libevmesh.so, libevmesh_check.so) is not there."""


class ProcessError(EvmeshError):
    """A child process (Envoy, a broker) failed to start, become ready, or died."""

    def __init__(self, message: str, log_tail: str = ""):
        self.log_tail = log_tail
        super().__init__(message)

    def details(self) -> str:
        """The message followed by the child's log tail, for humans."""
        if not self.log_tail:
            return str(self)
        return f"{self}\n--- log tail ---\n{self.log_tail.rstrip()}"
