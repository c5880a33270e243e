#!/usr/bin/env bash
# examples/lambda/package.sh [OUT_DIR]: builds the Lambda artifacts of the
# stream processor from a checkout, for the machine it runs on (so run it on
# Amazon Linux 2023, or in an AL2023 container: see README.md). No AWS calls.
#
#   OUT_DIR/function.zip   bootstrap, lua/ddb/**, lib/ddb/core.so
#   OUT_DIR/lua-layer.zip  bin/lua5.4 and the shared libraries it needs that
#                          are not glibc (lib/): a layer, unpacked under /opt,
#                          so /opt/bin/lua5.4 is on Lambda's PATH for the
#                          bootstrap's `#!/usr/bin/env lua5.4`
#
# OUT_DIR defaults to build/lambda. The C core is built with the project's
# Makefile into OUT_DIR/build (never touching build/ddb/core.so). LUA names
# the interpreter to package (default: lua5.4, else lua, when it is 5.4).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build/lambda}
mkdir -p "$out"
out=$(cd "$out" && pwd)

die() { echo "package.sh: $*" >&2; exit 1; }

if ! grep -qs '^ID="\?amzn"\?$' /etc/os-release || ! grep -qs '^VERSION_ID="\?2023"\?$' /etc/os-release; then
  echo "package.sh: warning: this is not Amazon Linux 2023: the core.so and Lua built here may not run on provided.al2023" >&2
fi

# The interpreter: Lua 5.4 under whatever name this system gives it.
lua=${LUA:-}
if [ -z "$lua" ]; then
  for cand in lua5.4 lua; do
    if command -v "$cand" >/dev/null && "$cand" -v 2>&1 | grep -q '^Lua 5\.4'; then lua=$(command -v "$cand"); break; fi
  done
fi
[ -n "$lua" ] || die "no Lua 5.4 interpreter found (lua5.4 or lua; or set LUA=path)"
"$lua" -v 2>&1 | grep -q '^Lua 5\.4' || die "$lua is not Lua 5.4"

# pkg-config calls Lua "lua5.4" on Debian, "lua" on Amazon Linux / Fedora.
pkgs="lua5.4 libcurl openssl"
if ! pkg-config --exists lua5.4 2>/dev/null; then
  pkg-config --exists lua 2>/dev/null || die "no Lua 5.4 headers (pkg-config lua5.4 or lua): install lua-devel"
  pkgs="lua libcurl openssl"
fi
make -C "$root" --no-print-directory BUILD="$out/build" PKGS="$pkgs" "$out/build/ddb/core.so" >&2

stage=$(mktemp -d -t ddb-lambda.XXXXXX)
trap 'rm -rf "$stage"' EXIT

# function.zip
f="$stage/function"
mkdir -p "$f/lua" "$f/lib/ddb"
install -m 0755 "$here/bootstrap" "$f/bootstrap"
(cd "$root/lua" && find ddb -name '*.lua' -print0 | while IFS= read -r -d '' p; do
  mkdir -p "$f/lua/$(dirname "$p")"
  install -m 0644 "$p" "$f/lua/$p"
done)
install -m 0755 "$out/build/ddb/core.so" "$f/lib/ddb/core.so"

# lua-layer.zip: the interpreter and its non-glibc libraries
l="$stage/layer"
mkdir -p "$l/bin" "$l/lib"
install -m 0755 "$lua" "$l/bin/lua5.4"
ldd "$lua" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r so; do
  case "$(basename "$so")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*) ;; # glibc: on every Lambda base
    *) install -m 0644 "$(readlink -f "$so")" "$l/lib/$(basename "$so")" ;;
  esac
done

zipdir() { # zipdir DIR ZIP: the tree under DIR, modes kept (bootstrap must stay executable)
  rm -f "$2"
  if command -v zip >/dev/null; then
    (cd "$1" && zip -q -r -X "$2" .)
  else
    (cd "$1" && python3 -c 'import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, fs in sorted(os.walk(".")):
        for n in sorted(fs):
            z.write(os.path.join(d, n), os.path.relpath(os.path.join(d, n), "."))' "$2")
  fi
}
zipdir "$f" "$out/function.zip"
zipdir "$l" "$out/lua-layer.zip"
echo "$out/function.zip"
echo "$out/lua-layer.zip"
echo "package.sh: check the libraries the core needs on the target: ldd lib/ddb/core.so (libcurl.so.4, libssl.so.3, libcrypto.so.3)" >&2
