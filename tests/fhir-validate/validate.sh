#!/usr/bin/env bash
# The independent FHIR R4 validator of the tests (docs/fhir.md "Checks"): installs the pinned
# @medplum packages of package-lock.json with `npm ci` into $FHIR_VALIDATOR_DIR (default
# target/tmp/fhir-validate) when they are missing or the lock changed, then validates each FILE
# with validate.mjs. With no FILE it only installs. Safe to run from several processes at once.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${FHIR_VALIDATOR_DIR:-$here/../../target/tmp/fhir-validate}"
export FHIR_VALIDATOR_DIR="$dir"

command -v node >/dev/null && command -v npm >/dev/null || {
  echo "fhir-validate: node and npm are required (Debian: apt-get install nodejs npm; Node.js >= 20.19)" >&2
  exit 2
}
mkdir -p "$dir"
(
  flock 9
  # .installed-lock: the lock of the last npm ci that finished, so an interrupted one is redone.
  if ! cmp -s "$here/package-lock.json" "$dir/.installed-lock"; then
    rm -rf "$dir/node_modules" "$dir/.installed-lock"
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    if ! (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >&2); then
      echo "fhir-validate: npm ci of tests/fhir-validate/package-lock.json into $dir failed (is the npm registry reachable?)" >&2
      exit 2
    fi
    cp "$here/package-lock.json" "$dir/.installed-lock"
  fi
) 9>"$dir/.install.lock"

[ "$#" -eq 0 ] && exit 0
exec node "$here/validate.mjs" "$@"
