#!/bin/sh
# Image build step: the fixed non-root user UID:GID (default 1000:1000) with a passwd entry and a home,
# and /results owned by it. A base that already has that UID keeps its user: Paddle's NPU images ship
# HwHiAiUser as 1000:1000, the owner of /dev/davinci* on Ascend hosts, which is why 1000 is the UID.
# (A passwd entry matters: HCCL and getpass fail for UIDs without one.)
set -eu
uid="${1:?uid}" gid="${2:?gid}"
getent group "$gid" >/dev/null || groupadd -g "$gid" portbench
if ! getent passwd "$uid" >/dev/null; then
    useradd -u "$uid" -g "$gid" -m -d /home/portbench -s /bin/sh portbench
fi
home="$(getent passwd "$uid" | cut -d: -f6)"
mkdir -p "$home" /results
chown "$uid:$gid" "$home" /results
[ "$home" = /home/portbench ] || ln -sfn "$home" /home/portbench
echo "user: $(getent passwd "$uid")"
