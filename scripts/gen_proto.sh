#!/usr/bin/env bash
# Regenerates perdure's protobuf module (and its typing stub) from protocol.proto.
# Needs the dev extra: grpcio-tools and mypy-protobuf.
set -euo pipefail
cd "$(dirname "$0")/../src"
python -m grpc_tools.protoc -I . \
  --python_out=. --mypy_out=. \
  perdure/protocol/_pb/protocol.proto
