#!/usr/bin/env bash
# Installs what the benchmarks need: wrk (Debian) and the bench extras (py-spy).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
python3 -m pip install -q -e '.[test,bench]'
