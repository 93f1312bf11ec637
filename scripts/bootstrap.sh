#!/usr/bin/env bash
# Installs everything the engine, its examples and its tests need, into the project only:
# a virtualenv in .venv (Python packages from PyPI), the Kafka broker's jars in
# .cache/kafka and the schema registry in .cache/schema-registry (from Maven Central).
# Safe to run again: finished steps are skipped.
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
# A real schema registry (Apicurio, from Maven Central) for the Avro subscription tests.
.venv/bin/python compose/schema_registry.py fetch

# The real restate-server from npm: the reference implementation the tests compare against.
if [ ! -x compose/restate-server/node_modules/.bin/restate-server ] \
   || [ compose/restate-server/package-lock.json -nt compose/restate-server/node_modules/.package-lock.json ]; then
  command -v npm >/dev/null 2>&1 || { echo "bootstrap: 'npm' is required (it installs the reference restate-server)" >&2; exit 1; }
  echo "bootstrap: installing the reference restate-server (npm ci in compose/restate-server)"
  npm ci --prefix compose/restate-server --no-audit --no-fund --loglevel=error
else
  echo "bootstrap: reference restate-server up to date"
fi

# The official TypeScript SDK from npm, for the test services in tests/fixtures/ts_services.
if [ ! -f tests/fixtures/ts_services/node_modules/@restatedev/restate-sdk/package.json ] \
   || [ tests/fixtures/ts_services/package-lock.json -nt tests/fixtures/ts_services/node_modules/.package-lock.json ]; then
  command -v npm >/dev/null 2>&1 || { echo "bootstrap: 'npm' is required (it installs the TypeScript SDK for the tests)" >&2; exit 1; }
  echo "bootstrap: installing the TypeScript SDK test services (npm ci in tests/fixtures/ts_services)"
  npm ci --prefix tests/fixtures/ts_services --no-audit --no-fund --loglevel=error
else
  echo "bootstrap: TypeScript SDK test services up to date"
fi

# Headless Chromium from Debian for the web UI tests (tests/engine/admin/test_webui.py);
# selenium drives it through Debian's chromedriver, nothing is downloaded by the tests.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "bootstrap: installing Debian's chromium and chromium-driver (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q chromium chromium-driver
else
  echo "bootstrap: chromium up to date"
fi
