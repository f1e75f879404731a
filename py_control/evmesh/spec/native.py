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
        """None if the filter accepts `config`, else its "<field path>: <problem>" message."""
        data = json.dumps(config, separators=(",", ":")).encode()
        err = self._ffi.new("char[]", _ERR_LEN)
        rc = self._lib.evmesh_check_filter_config(filter_name.encode(), data, len(data), err, _ERR_LEN)
        if rc == 0:
            return None
        return self._ffi.string(err).decode(errors="replace") or f"rejected (code {rc}, no message)"


@cache
def _checker_at(path: Path) -> NativeChecker:
    return NativeChecker(path)


def checker() -> NativeChecker:
    """The checker from the built modules dir (raises NativeLibraryMissing if not built)."""
    return _checker_at(check_library_path())
