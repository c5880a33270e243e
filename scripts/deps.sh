#!/usr/bin/env bash
# Installs what ddb needs and is missing: Debian packages, then the
# project-local Python venv (.venv) with the pinned moto server.
# Safe to run repeatedly; does nothing when everything is there.
#   scripts/deps.sh          what the build, the specs and the demo need
#   scripts/deps.sh bench    that, plus what `make bench` needs: nginx-light
#                            (the null endpoint), valgrind (callgrind),
#                            bench/.venv with the latest boto3 and AWS CLI,
#                            and the bench-only lean libcurl (bench/lean-curl.sh)
#   scripts/deps.sh asan     that, plus gcc's ASan and UBSan runtimes (make test-asan)
#   scripts/deps.sh valgrind that, plus valgrind (make test-valgrind)
#   scripts/deps.sh fuzz     that, plus clang and its compiler-rt (libFuzzer, the
#                            sanitizers) for Debian 12's clang 14 (make fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  ""|bench|asan|valgrind|fuzz) ;;
  *) echo "usage: scripts/deps.sh [bench|asan|valgrind|fuzz]" >&2; exit 2 ;;
esac

pkgs=(lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev pkg-config gcc make
      lua-cjson lua-busted lua-check lua-socket luarocks python3 python3-venv ca-certificates locales)
case "$mode" in
  bench) pkgs+=(nginx-light valgrind zlib1g-dev) ;;
  asan) pkgs+=(libasan8 libubsan1) ;;
  valgrind) pkgs+=(valgrind) ;;
  fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
esac
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

# The benchmark's own venv, apart from .venv (whose boto3 is pinned for the
# specs): the latest boto3 and AWS CLI when it is made. `rm -rf bench/.venv`
# (or changing bench/requirements.txt) brings the newest again.
if [ "$mode" = bench ]; then
  breq=bench/requirements.txt
  bstamp=bench/.venv/.requirements
  if [ ! -x bench/.venv/bin/python ] || ! cmp -s "$breq" "$bstamp"; then
    echo "deps: preparing bench/.venv (latest boto3 and awscli)" >&2
    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -q --disable-pip-version-check --upgrade -r "$breq"
    cp "$breq" "$bstamp"
  fi
  # libcurl built for HTTP(S) only into bench/.curl-lean, for one what-if row of
  # the utilities part. Optional: when it cannot be built, bench/run reports
  # that row as not measured, with the reason.
  bench/lean-curl.sh || echo "deps: no lean libcurl; make bench reports that row as not measured" >&2
fi
