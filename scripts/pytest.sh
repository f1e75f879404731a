#!/bin/bash
# Runs pytest from the project venv. pytest's exit code 5 ("no tests collected")
# is a failure here: a test command that ran nothing must not look green.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests in: $*" >&2
  exit 1
fi
exit $rc
