#!/usr/bin/env bash
# Installs what ddb needs and is missing: Debian packages, then the
# project-local Python venv (.venv) with the pinned moto server.
# Safe to run repeatedly; does nothing when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev pkg-config gcc make
      lua-cjson lua-busted lua-check lua-socket luarocks python3 python3-venv ca-certificates locales)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3 may come from elsewhere (pyenv); it only needs to make venvs.
if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}"); missing=("${missing[@]/python3}")
fi
read -r -a missing <<< "${missing[*]:-}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

req=scripts/requirements.txt
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s "$req" "$stamp"; then
  echo "deps: preparing .venv (moto server)" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
