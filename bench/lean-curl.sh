#!/usr/bin/env bash
# bench/lean-curl.sh: builds the bench-only "lean" libcurl into bench/.curl-lean/
# (gitignored) for one what-if row of bench/run's utilities part:
# bin/ddb/list-tables with LD_LIBRARY_PATH=bench/.curl-lean/inst/lib.
#
# libcurl 7.88.1 (Debian 12's version) from Debian's pristine upstream tarball,
# built for HTTP and HTTPS over OpenSSL only, with Debian's configure flags and
# hardening, the same soname (libcurl.so.4) and symbol version (CURL_OPENSSL_4),
# so that it is a drop-in for Debian's libcurl4 without its ~30 other libraries
# (GnuTLS, Kerberos, LDAP, RTMP, SSH, nghttp2, IDN...). It measures where the
# start-up goes; it is not what users get: no Debian security patches, no
# HTTP/2, IDN, GSS-API... build/ddb/core.so still links the system libcurl.
#
# Called by `scripts/deps.sh bench` (make bench-deps). Does nothing when the
# library is already built with these flags. On failure it prints one line,
# writes the reason to bench/.curl-lean/FAILED (bench/run reports the row as
# "not measured (reason)") and exits 1. `rm -rf bench/.curl-lean` starts afresh.
set -eu
cd "$(dirname "$0")/.."

version=7.88.1
tarball=curl_${version}.orig.tar.gz
url=http://deb.debian.org/debian/pool/main/c/curl/$tarball
sha256=cdb38b72e36bc5d33d5b8810f8018ece1baa29a8f215b4495e495ded82bbf3c7

dir=bench/.curl-lean
prefix=$PWD/$dir/inst
lib=$dir/inst/lib/libcurl.so.4
log=$dir/build.log

# Debian's own flags for libcurl4 (debian/rules), then every protocol and
# optional library but HTTP(S), OpenSSL and zlib turned off.
flags=(
  --disable-static --enable-shared --disable-dependency-tracking --disable-silent-rules
  --disable-symbol-hiding --enable-versioned-symbols --enable-threaded-resolver
  --with-openssl --with-zlib --with-ca-path=/etc/ssl/certs
  --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt
  --enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp
  --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smb
  --disable-smtp --disable-gopher --disable-mqtt --disable-manual --disable-ntlm
  --disable-ntlm-wb --disable-tls-srp --without-libssh2 --without-libssh --without-librtmp
  --without-libidn2 --without-libpsl --without-nghttp2 --without-brotli --without-zstd
  --without-libgsasl --without-zsh-functions-dir --without-fish-functions-dir
  "CFLAGS=-O2 -fstack-protector-strong -Wformat -Werror=format-security"
  "CPPFLAGS=-Wdate-time -D_FORTIFY_SOURCE=2"
  "LDFLAGS=-Wl,-z,relro -Wl,-z,now"
)
stamp="$version $sha256 ${flags[*]}"

fail() {
  mkdir -p "$dir"
  echo "$1" > "$dir/FAILED"
  echo "lean-curl: $1" >&2
  exit 1
}

# A drop-in for Debian's libcurl.so.4 exports its symbols under CURL_OPENSSL_4.
drop_in() {
  objdump -T "$1" 2>/dev/null | grep -q 'CURL_OPENSSL_4[[:space:]]'
}

if [ -f "$lib" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ] && drop_in "$lib"; then
  exit 0
fi

echo "lean-curl: building libcurl $version for HTTP(S) only into $dir (bench only, about 20 s)" >&2
mkdir -p "$dir"
rm -rf "$dir/inst" "$dir/build" "$dir/stamp" "$dir/FAILED"
: > "$log"

if [ ! -f "$dir/$tarball" ] || ! echo "$sha256  $dir/$tarball" | sha256sum -c --status; then
  rm -f "$dir/$tarball" "$dir/$tarball.part"
  if command -v curl >/dev/null; then
    curl -fsSL --retry 2 --connect-timeout 20 --max-time 600 -o "$dir/$tarball.part" "$url" >> "$log" 2>&1 ||
      fail "could not download $url (see $log)"
  else
    python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
      "$url" "$dir/$tarball.part" >> "$log" 2>&1 || fail "could not download $url (see $log)"
  fi
  got=$(sha256sum "$dir/$tarball.part" | cut -d' ' -f1)
  [ "$got" = "$sha256" ] || fail "$tarball has sha256 $got, expected $sha256"
  mv "$dir/$tarball.part" "$dir/$tarball"
fi

mkdir -p "$dir/build"
tar -xzf "$dir/$tarball" -C "$dir/build" >> "$log" 2>&1 || fail "could not unpack $dir/$tarball (see $log)"
src=$dir/build/curl-$version
(cd "$src" && ./configure --prefix="$prefix" "${flags[@]}") >> "$log" 2>&1 ||
  fail "configure of libcurl $version failed (see $log)"
jobs=$(nproc 2>/dev/null || echo 2)
(cd "$src" && make -j"$jobs" && make install-strip) >> "$log" 2>&1 ||
  fail "build of libcurl $version failed (see $log)"
[ -f "$lib" ] || fail "the build did not install $lib (see $log)"
drop_in "$lib" || fail "$lib does not export symbol version CURL_OPENSSL_4: not a drop-in for Debian's libcurl4"

rm -rf "$dir/build"
echo "$stamp" > "$dir/stamp"
echo "lean-curl: built $lib" >&2
