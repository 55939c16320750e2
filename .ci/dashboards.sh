#!/bin/sh
# CI for alerts/: rule syntax and promtool unit tests (firing and silent case per alert).
set -eu
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { apt-get install -y --no-install-recommends prometheus; }
promtool check rules alerts/*.yml
promtool test rules alerts/tests/*.yml
