#!/bin/sh
# One-time set-up for the pure cgroup v2 test lane (see README): qemu and
# busybox-static from apt, and a stock Debian kernel extracted (never
# installed) into $W, plus an uncompressed vmlinux so qemu boots it via PVH
# without running the xz decompressor under TCG. About 10 s; needs root.
set -eu
W=${W:-$(cd "$(dirname "$0")/../.." && pwd)/build/cg2vm}
mkdir -p "$W"; cd "$W"
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x /bin/busybox ] || ! command -v cpio >/dev/null; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		qemu-system-x86 busybox-static cpio >/dev/null
fi
[ -f vmlinux ] && [ -f kv ] && { echo "cgroup2-vm: already set up in $W (kernel $(cat kv))"; exit 0; }
# The ABI drifts with Debian security updates: resolve it via the metapackage.
KV=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\(.*-amd64\)$/\1/p' | head -1)
[ -n "$KV" ] || { echo "cgroup2-vm: cannot resolve linux-image-amd64 (apt-get update?)" >&2; exit 1; }
rm -f linux-image-*.deb
apt-get download -qq "linux-image-$KV"
rm -rf kern && mkdir kern && dpkg -x linux-image-"$KV"_*.deb kern
rm -f linux-image-*.deb
python3 - "$KV" <<'PY'
import lzma, sys
kv = sys.argv[1]
d = open(f"kern/boot/vmlinuz-{kv}", "rb").read()
i = d.find(b"\xfd7zXZ\x00")
open("vmlinux", "wb").write(lzma.LZMADecompressor().decompress(d[i:]))
PY
echo "$KV" > kv
echo "cgroup2-vm: kernel $KV ready in $W"
