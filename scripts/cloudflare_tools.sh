#!/usr/bin/env bash
# Prepares the Cloudflare SDK test's tool (tests/cloudflare_api.rs): target/cloudflare-venv,
# a Python virtualenv with the official `cloudflare` SDK from PyPI and its dependencies,
# pinned (scripts/python_tools.sh). Prints the venv's python on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/python_tools.sh

# The pins (bump them together; the stamp makes every checkout reinstall). `cloudflare` is
# the SDK under test; the rest are its dependencies at the versions it was tested with.
python_tools cloudflare "the Cloudflare SDK test needs a Python venv" \
    "cloudflare==5.9.0" \
    "pydantic==2.14.4" \
    "pydantic_core==2.50.5" \
    "httpx==0.29.0" \
    "httpcore==1.0.9" \
    "anyio==4.16.0" \
    "typing_extensions==4.16.0"
