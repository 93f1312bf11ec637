#!/usr/bin/env bash
# Regenerate the Python modules for the service protocol definitions.
#
# Runs protoc from grpcio-tools and the protoc-gen-mypy plugin from mypy-protobuf,
# both taken from the project venv so every machine produces identical output.
# protoc is run from the project root with `-I .`: the .proto path relative to the
# root (restate_protocol/...) then becomes the module path of the generated
# code, so it imports as restate_protocol.service_protocol_pb2.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="$VENV/bin/python"
MYPY_PLUGIN="$VENV/bin/protoc-gen-mypy"

for tool in "$PYTHON" "$MYPY_PLUGIN"; do
    if [[ ! -x "$tool" ]]; then
        echo "gen_protos: $tool not found; create the venv and install grpcio-tools and mypy-protobuf" >&2
        exit 1
    fi
done

cd "$ROOT"

PROTOS=(
    restate_protocol/service_protocol.proto
)

"$PYTHON" -m grpc_tools.protoc \
    -I . \
    --plugin=protoc-gen-mypy="$MYPY_PLUGIN" \
    --python_out=. \
    --mypy_out=. \
    "${PROTOS[@]}"

echo "gen_protos: generated Python and .pyi for ${PROTOS[*]}"
