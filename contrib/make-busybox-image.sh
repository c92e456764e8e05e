#!/usr/bin/env bash
# Builds a busybox test image offline, from Debian's busybox-static, as a
# `docker save` archive (classic layout: manifest.json, <id>.json,
# <layer>/layer.tar). The result is reproducible: same busybox, same bytes.
#
#   contrib/make-busybox-image.sh OUT.tar [TAG]      (TAG defaults to busybox:latest)
set -euo pipefail

out=${1:?usage: make-busybox-image.sh OUT.tar [TAG]}
tag=${2:-busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "busybox-static not installed ($busybox missing)" >&2; exit 1; }
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || ldd "$busybox" 2>&1 | grep -q 'not a dynamic' \
  || { echo "$busybox is not statically linked; install busybox-static" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,root,home,var/spool/mail,var/www,usr/bin,usr/sbin,dev,proc,sys}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
cp "$busybox" "$root/bin/busybox"
# Every applet as a hard link to /bin/busybox, as the official image has them.
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln "$root/bin/busybox" "$root/bin/$applet"
done
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
P
cat > "$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
tty:x:5:
www-data:x:33:
nogroup:x:65534:
G
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"

layer=$work/layer.tar
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$layer" .
diff_id=$(sha256sum "$layer" | cut -d' ' -f1)

arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
config=$(printf '{"architecture":"%s","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"contrib/make-busybox-image.sh","comment":"busybox-static from Debian"}]}' "$arch" "$diff_id")
config_id=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)

img=$work/image
mkdir -p "$img/$diff_id"
mv "$layer" "$img/$diff_id/layer.tar"
printf '%s' "$config" > "$img/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_id" "$tag" "$diff_id" > "$img/manifest.json"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$img" -cf "$out" .
echo "$out: $tag (image sha256:$config_id)"
