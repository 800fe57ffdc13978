#!/bin/sh
# Prepares the qemu isolator's guest parts (docs/isolator-qemu.md) in OUT:
#   vmlinuz        the kernel of Debian's linux-image-cloud-amd64
#   initramfs.img  forge-agent as /init, the modules it loads and modules.order
#   binds/usr.ext4 the host's /usr for the `host` image: the files of the packages a
#                  sandbox's shell and runtimes need, not the whole 8 GiB /usr
# Each part is rebuilt only when missing or older than what it is made from, so a second
# run is cheap. Every part is written under a temporary name and renamed into place.
#
# usage: build-guest.sh OUT AGENT
set -eu

out=${1:?usage: build-guest.sh OUT AGENT}
agent=${2:?usage: build-guest.sh OUT AGENT}
# Runtimes of the host image (image-host.c) and the packages every Debian has.
usr_packages="python3 nodejs procps"
modules="virtio_mmio virtio_blk virtio_console overlay"
[ -e /dev/vhost-vsock ] && modules="$modules vmw_vsock_virtio_transport"

log() { echo "build-guest: $*" >&2; }

mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- kernel: the metapackage's one dependency, unpacked once ----
kernel_fetch() {
        pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
        [ -n "$pkg" ] || { log "apt knows no linux-image-cloud-amd64 (apt-get update?)"; exit 1; }
        log "fetching $pkg"
        (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1)
        dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kernel"
        rm -rf "$out/kernel"
        mv "$work/kernel" "$out/kernel"
        cp "$out"/kernel/boot/vmlinuz-* "$work/vmlinuz"
        mv "$work/vmlinuz" "$out/vmlinuz"
}
[ -f "$out/vmlinuz" ] && [ -d "$out/kernel/lib/modules" ] || kernel_fetch
moddir=$(echo "$out"/kernel/lib/modules/*)

# ---- initramfs: /init is the agent; modules in load order ----
module_file() { find "$moddir/kernel" -name "$1.ko" | head -n 1; }
module_deps() { tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | tr ',' ' '; }
# Appends $1 to $order after its dependencies (depth first, each once).
order=""
module_add() {
        case " $order " in *" $1 "*) return 0 ;; esac
        f=$(module_file "$1")
        [ -n "$f" ] || { log "module $1 not in the kernel package"; exit 1; }
        for d in $(module_deps "$f"); do module_add "$d"; done
        order="$order $1"
}

initramfs_build() {
        log "building initramfs.img"
        root="$work/initramfs"
        mkdir -p "$root/lib/modules" "$root/dev" "$root/proc" "$root/sys" "$root/run"
        cp "$agent" "$root/init"
        for m in $modules; do module_add "$m"; done
        for m in $order; do
                cp "$(module_file "$m")" "$root/lib/modules/$m.ko"
                echo "$m" >> "$root/lib/modules/order"
        done
        (cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > "$work/initramfs.img"
        mv "$work/initramfs.img" "$out/initramfs.img"
}
if [ ! -f "$out/initramfs.img" ] || [ "$agent" -nt "$out/initramfs.img" ] || [ "$0" -nt "$out/initramfs.img" ]; then
        initramfs_build
fi

# ---- /usr of the host image: the dependency closure of the runtimes ----
package_closure() {
        seen=" "
        pending="$*"
        while [ -n "$pending" ]; do
                next=""
                for p in $pending; do
                        case "$seen" in *" $p "*) continue ;; esac
                        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) || continue
                        [ "$st" = installed ] || continue
                        seen="$seen$p "
                        next="$next $(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p" |
                                tr ',' '\n' | sed 's/|.*//; s/([^)]*)//g; s/:any//; s/ //g')"
                done
                pending=$next
        done
        echo $seen
}

usr_build() {
        log "building binds/usr.ext4 (the host's /usr, for the host image)"
        base=$(dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' | awk '$2 == "yes" || $3 == "required" { print $1 }')
        # dpkg still lists many files under /bin, /lib...: with merged /usr they are in /usr.
        for p in $(package_closure $base $usr_packages); do dpkg-query -L "$p"; done |
                sed -E 's@^/(bin|sbin|lib|lib32|lib64|libx32)(/|$)@/usr/\1\2@' | grep '^/usr/' | grep -Ev '^/usr/share/(doc|man|info|locale)/' | LC_ALL=C sort -u > "$work/usr.list"
        mkdir -p "$work/usr"
        (cd /usr && sed 's|^/usr/||' "$work/usr.list" | cpio --quiet -pdm "$work/usr" 2>/dev/null) || true
        size=$(du -sm "$work/usr" | cut -f1)
        mkdir -p "$out/binds"
        mkfs.ext4 -q -F -L usr -d "$work/usr" "$work/usr.ext4" "$((size + size / 4 + 64))M" >/dev/null
        mv "$work/usr.ext4" "$out/binds/usr.ext4"
}
[ -f "$out/binds/usr.ext4" ] && [ "$0" -ot "$out/binds/usr.ext4" ] || usr_build
log "guest parts ready in $out"
