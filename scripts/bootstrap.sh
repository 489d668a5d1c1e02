#!/bin/sh
# Create .venv with the locked dependencies, using a pinned uv installed from PyPI into .tools/.
# Needs only python3 (3.11+) and access to the package registry. Pass --no-dev to skip test tools.
set -eu
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3}
if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "bootstrap: installing uv $UV_VERSION into .tools/" >&2
  "$PYTHON" -m venv .tools
  .tools/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# Bytecode compiled once here: where PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile its
# imports again, ~3 s of CPU for each start of the API or a worker (docs/performance.md, "Test suite").
if [ "${1:-}" = "--no-dev" ]; then
  # --inexact keeps test tools that an earlier `make test` installed.
  .tools/bin/uv sync --locked --quiet --no-dev --inexact --compile-bytecode --python "$PYTHON"
else
  .tools/bin/uv sync --locked --quiet --compile-bytecode --python "$PYTHON"
fi
"${UV_PROJECT_ENVIRONMENT:-.venv}/bin/python" -m compileall -q batchpress
