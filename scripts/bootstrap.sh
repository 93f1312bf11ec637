#!/usr/bin/env bash
# Installs everything the engine, its examples and its tests need, into the project only:
# a virtualenv in .venv (Python packages from PyPI) and the Kafka broker's jars in
# .cache/kafka (from Maven Central). Safe to run again: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "bootstrap: Python >= 3.11 is required (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }
for tool in java mvn; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bootstrap: '$tool' is required (Java 17+ and Maven 3 run the local Kafka)" >&2; exit 1; }
done

stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing Python packages (pip install -e '.[dev]')"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --progress-bar off -e '.[dev]'
  touch "$stamp"
else
  echo "bootstrap: Python packages up to date"
fi

.venv/bin/python compose/kafka_local.py fetch
