"""The C++ filter-config parsers, through libevmesh_check.so (cffi ABI mode; docs/architecture.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from cffi import FFI

from ..errors import EvmeshError
from ..locate import check_library_path

EXPECTED_ABI = "v0.2.0"
_ERR_LEN = 1024
_MAX_VERDICTS = 16384
_CDEF = """
int evmesh_check_filter_config(const char* filter_name, const char* json, size_t json_len,
                               char* err, size_t err_len);
const char* evmesh_check_abi_version(void);
"""


class NativeChecker:
    """Checks filter configs with the same parser the Envoy module uses."""

    def __init__(self, path: Path):
        self.path = path
        self._ffi = FFI()
        self._ffi.cdef(_CDEF)
        self._verdicts: dict[tuple[str, bytes], str | None] = {}
        try:
            self._lib = self._ffi.dlopen(str(path))
        except OSError as exc:
            raise EvmeshError(f"cannot load {path}: {exc}") from None
        abi = self.abi_version()
        if abi != EXPECTED_ABI:
            raise EvmeshError(f"{path.name} reports ABI {abi!r}, expected {EXPECTED_ABI!r}: rebuild with `make build`")

    def abi_version(self) -> str:
        return self._ffi.string(self._lib.evmesh_check_abi_version()).decode()

    def check(self, filter_name: str, config: dict[str, Any]) -> str | None:
        """None if the filter accepts `config`, else its "<field path>: <problem>" message.

        Verdicts are remembered per (filter, JSON) — the parser is pure — so that `xds serve`, which
        re-checks every listener on every spec edit, pays only for the listeners that changed."""
        data = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
        key = (filter_name, data)
        if key in self._verdicts:
            return self._verdicts[key]
        err = self._ffi.new("char[]", _ERR_LEN)
        rc = self._lib.evmesh_check_filter_config(filter_name.encode(), data, len(data), err, _ERR_LEN)
        verdict = None if rc == 0 else (self._ffi.string(err).decode(errors="replace") or
                                        f"rejected (code {rc}, no message)")
        if len(self._verdicts) >= _MAX_VERDICTS:
            self._verdicts.clear()
        self._verdicts[key] = verdict
        return verdict


@cache
def _checker_at(path: Path) -> NativeChecker:
    return NativeChecker(path)


def checker() -> NativeChecker:
    """The checker from the built modules dir (raises NativeLibraryMissing if not built)."""
    return _checker_at(check_library_path())
