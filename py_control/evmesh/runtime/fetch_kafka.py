"""`python -m evmesh.runtime.fetch_kafka`: fetch Apache Kafka's jars into the cache now (what `make setup` runs),
so that the first test or `evmesh run` does not pay for the download. Idempotent; exit code 2 on failure."""

from __future__ import annotations

import sys
import time

from ..errors import EvmeshError, ProcessError
from .kafka import KAFKA_VERSION, ensure_kafka_jars, kafka_jars_ready


def main() -> int:
    fresh = not kafka_jars_ready()
    t0 = time.monotonic()
    try:
        lib = ensure_kafka_jars()
    except EvmeshError as exc:
        print(f"error: {exc.details() if isinstance(exc, ProcessError) else exc}", file=sys.stderr)
        return 2
    took = f"ready after {time.monotonic() - t0:.1f}s" if fresh else "cached"
    print(f"Apache Kafka {KAFKA_VERSION} jars: {lib} ({took})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
