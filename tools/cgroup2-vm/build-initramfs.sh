#!/bin/sh
# usage: build-initramfs.sh OUT.cpio
# Uncompressed newc cpio (fastest to boot under TCG): busybox, /init and the
# modules for 9p (the host's root, read-only) and overlayfs.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
W=${W:-$HERE/../../build/cg2vm}
KV=$(cat "$W/kv"); KM=$W/kern/lib/modules/$KV
OUT=$1
S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
chmod 755 "$S"   # mode of / in the guest
mkdir -p "$S/bin" "$S/proc" "$S/sys" "$S/dev" "$S/mnt" "$S/tmp" "$S/lib/modules/$KV"; chmod 1777 "$S/tmp"
cp /bin/busybox "$S/bin/busybox"
cp "$HERE/init" "$S/init"; chmod 755 "$S/init"
for m in drivers/virtio/virtio drivers/virtio/virtio_ring drivers/virtio/virtio_pci_modern_dev \
	 drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/9p/9pnet net/9p/9pnet_virtio \
	 fs/netfs/netfs fs/fscache/fscache fs/9p/9p fs/overlayfs/overlay; do
	[ -f "$KM/kernel/$m.ko" ] || continue   # built in, or merged in this kernel
	mkdir -p "$S/lib/modules/$KV/kernel/${m%/*}"; cp "$KM/kernel/$m.ko" "$S/lib/modules/$KV/kernel/$m.ko"
done
cp "$KM/modules.builtin" "$KM/modules.order" "$S/lib/modules/$KV/"
busybox depmod -b "$S" "$KV"
(cd "$S" && find . | cpio -o -H newc --quiet) > "$OUT"
