#!/usr/bin/env bash
# Creates (or reuses) the Python >= 3.12 venv of the third-party peers and prints its path.
# Usage: VENV=$(.ci/venv.sh)
set -euo pipefail
venv="${VENV:-$PWD/target/peers-venv}"
if [ ! -f "$venv/.installed" ]; then
  rm -rf "$venv"
  py=""
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python \
              "$(command -v python3.13 || true)" "$(command -v python3.12 || true)"; do
    if [ -n "$cand" ] && [ -x "$cand" ]; then py="$cand"; break; fi
  done
  if [ -z "$py" ]; then
    echo "no Python >= 3.12 found (pyenv 3.13 or python3.12+)" >&2
    exit 1
  fi
  "$py" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$(dirname "$0")/requirements-peers.txt" >&2
  touch "$venv/.installed"
fi
echo "$venv"
