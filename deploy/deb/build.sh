#!/usr/bin/env bash
# Builds the codex-suite Debian package with dpkg-deb (no cargo-deb to compile: the package is
# a plain file tree, laid out here, owned by root through --root-owner-group).
#
#   deploy/deb/build.sh                          # cargo build --release, then package
#   deploy/deb/build.sh --bin-dir target/debug --out-dir /tmp/deb    # package already-built binaries
#
# DEB_COMPRESSION=none|gzip|xz (default xz). Prints the path of the .deb on stdout. Needs dpkg-deb; gen-assets (this workspace) renders the
# man pages and completions from the clap definitions.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=""
out_dir="$top/target/deb"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    *) echo "build.sh: unknown argument $1 (use --bin-dir DIR, --out-dir DIR)" >&2; exit 2 ;;
  esac
done
if [ -z "$bin_dir" ]; then
  # By binary name, not package: the binaries move between crates, their names do not.
  (cd "$top" && cargo build --release --locked \
      --bin codex --bin codex-linux-sandbox --bin responses-api-proxy --bin gen-assets >&2)
  bin_dir="$top/target/release"
fi
for b in codex codex-linux-sandbox responses-api-proxy gen-assets; do
  [ -x "$bin_dir/$b" ] || { echo "build.sh: $bin_dir/$b is missing: build it first" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "build.sh: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/Cargo.toml" | head -n1)
arch=$(dpkg --print-architecture)
pkg=codex-suite
mkdir -p "$out_dir"
stage=$(mktemp -d "$out_dir/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
umask 022

# binaries
install -D -m 0755 "$bin_dir/codex" "$root/usr/bin/codex"
install -D -m 0755 "$bin_dir/codex-linux-sandbox" "$root/usr/bin/codex-linux-sandbox"
install -D -m 0755 "$bin_dir/responses-api-proxy" "$root/usr/bin/responses-api-proxy"
# systemd units, the service account, the key's directory
install -D -m 0644 "$top/deploy/systemd/responses-api-proxy.service" "$root/usr/lib/systemd/system/responses-api-proxy.service"
install -D -m 0644 "$top/deploy/systemd/responses-api-proxy.socket" "$root/usr/lib/systemd/system/responses-api-proxy.socket"
install -D -m 0644 "$top/deploy/sysusers.d/responses-api-proxy.conf" "$root/usr/lib/sysusers.d/responses-api-proxy.conf"
install -d -m 0700 "$root/etc/responses-api-proxy"
# man pages and completions, rendered from the clap definitions
assets="$stage/assets"
"$bin_dir/gen-assets" "$assets"
for f in "$assets"/man/man1/*.1; do install -D -m 0644 "$f" "$root/usr/share/man/man1/$(basename "$f")"; done
for f in "$assets"/man/man8/*.8; do install -D -m 0644 "$f" "$root/usr/share/man/man8/$(basename "$f")"; done
gzip -9n "$root"/usr/share/man/man*/*
install -D -m 0644 "$assets/completions/codex.bash" "$root/usr/share/bash-completion/completions/codex"
install -D -m 0644 "$assets/completions/_codex" "$root/usr/share/zsh/vendor-completions/_codex"
install -D -m 0644 "$assets/completions/codex.fish" "$root/usr/share/fish/vendor_completions.d/codex.fish"
# documentation
doc="$root/usr/share/doc/$pkg"
install -D -m 0644 "$top/docs/security.md" "$doc/security.md"
install -D -m 0644 "$top/deploy/deb/copyright" "$doc/copyright"

# control files
mkdir -p "$root/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: codex hardened suite maintainers <root@localhost>
Installed-Size: $installed_size
Depends: libc6
Recommends: systemd
Section: admin
Priority: optional
Description: hardened, privilege-separated codex suite
 responses-api-proxy holds an OpenAI API key that local users may use but
 never read; codex runs commands in a Landlock + seccomp sandbox, stores the
 user's own credentials safely and talks to the Responses API.
CONTROL
install -m 0755 "$top/deploy/deb/postinst" "$root/DEBIAN/postinst"
install -m 0755 "$top/deploy/deb/prerm" "$root/DEBIAN/prerm"
install -m 0755 "$top/deploy/deb/postrm" "$root/DEBIAN/postrm"

deb="$out_dir/${pkg}_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Z"${DEB_COMPRESSION:-xz}" "$root" "$deb" >&2
echo "$deb"
