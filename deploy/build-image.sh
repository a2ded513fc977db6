#!/usr/bin/env bash
# Builds the gateway's container image without any registry: the release binary and the shared
# libraries it links, on a `FROM scratch` base. Usage: deploy/build-image.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-ipfaas:local}"
target="${CARGO_TARGET_DIR:-target}"

# IPFAAS_BIN: an ipfaas binary built already (any profile), instead of a release build
bin="${IPFAAS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --release --locked -p ipfaas
  bin="$target/release/ipfaas"
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/data" "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/usr/local/bin/ipfaas"
# the release profile keeps line tables for local backtraces: ~590 MB the image does not need
strip --strip-debug "$ctx/rootfs/usr/local/bin/ipfaas"
# the dynamic loader and every library ldd resolves, at the same paths
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
# name resolution for /dns4/... bootstrap addresses (libc reads these)
mkdir -p "$ctx/rootfs/etc" "$ctx/rootfs/etc/ssl/certs"
# the certificate authorities package indexes are checked against (requirements.txt)
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [ -f "$ca" ]; then cp -L "$ca" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"; break; fi
done
printf 'hosts: files dns\n' > "$ctx/rootfs/etc/nsswitch.conf"
printf 'ipfaas:x:65532:65532::/data:/usr/local/bin/ipfaas\n' > "$ctx/rootfs/etc/passwd"
printf 'ipfaas:x:65532:\n' > "$ctx/rootfs/etc/group"
cp deploy/Dockerfile "$ctx/Dockerfile"
docker build -t "$tag" "$ctx"
echo "built $tag"
