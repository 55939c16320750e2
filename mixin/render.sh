#!/bin/sh
# Renders the mixin into the committed alerts/*.yml and dashboards/*.json.
#   mixin/render.sh            # rewrite them in the repository
#   mixin/render.sh DIR        # write them under DIR instead (CI diffs DIR against the repository)
#   mixin/render.sh DIR FILE   # render FILE (a jsonnet overriding the mixin) into DIR
# Needs Debian's jsonnet (scripts/install-deps.sh installs it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/..}
mkdir -p "$out/alerts" "$out/dashboards"
if [ $# -ge 2 ]; then
  jsonnet -J "$here" -S -m "$out" --tla-code-file "mixin=$2" "$here/render.jsonnet" >/dev/null
else
  jsonnet -J "$here" -S -m "$out" "$here/render.jsonnet" >/dev/null
fi
