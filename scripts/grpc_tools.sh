#!/usr/bin/env bash
# Prepares the gRPC test tools (tests/grpc.rs): target/grpc-venv, a Python virtualenv
# with grpcio (server and client) and grpcio-health-checking (the grpc.health.v1
# servicer), pinned, with protobuf, which the health service's messages need
# (scripts/python_tools.sh). Prints the venv's python on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python_tools.sh

# The pins (bump them together; the stamp makes every checkout reinstall).
python_tools grpc "the gRPC tests need a Python venv" \
    "grpcio==1.85.1" \
    "grpcio-health-checking==1.85.1" \
    "protobuf==7.36.2" \
    "typing_extensions==4.16.0"
