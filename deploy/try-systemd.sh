#!/bin/bash
# Try deploy/defectlens.service under a real systemd on a machine whose PID 1 is not systemd
# (a container or a VM's own init): systemd runs as PID 1 of a new PID and mount namespace, with
# a private /tmp and only DefectLens's units in /etc/systemd/system, and the README's steps 1
# and 3 are followed for real (a `defectlens` system user, the checkout in /opt/defectlens,
# `make install` as that user, the unit started by systemctl).
#
# Checks: the service comes up and answers its health check on 127.0.0.1 only; the first
# admin's password is in an owner-only file, not in the journal; a password login through
# /session/login gets an HttpOnly, Secure session cookie; after `kill -9` of the main process
# systemd restarts the service (Restart=on-failure); `systemctl stop` ends it cleanly.
#
# As root, from a checkout: bash deploy/try-systemd.sh [--keep]   (--keep: leave the user,
# /opt/defectlens and /etc/defectlens in place; otherwise they are removed at the end).
# Needs systemd, util-linux (unshare, nsenter), curl and git; `make install` takes minutes.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
keep=${1:-}
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /root/defectlens-try.XXXXXX)
ns_pid=""
cleanup() {
    [ -n "$ns_pid" ] && kill -9 "$ns_pid" 2>/dev/null || true
    if [ "$keep" != "--keep" ]; then
        userdel -r defectlens 2>/dev/null || true
        rm -rf /opt/defectlens /etc/defectlens
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { echo "== $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

step "1. the user and the checkout"
id defectlens >/dev/null 2>&1 ||
    useradd --system --create-home --home-dir /var/lib/defectlens defectlens
[ -d /opt/defectlens/.git ] || git clone -q "$src" /opt/defectlens
chown -R defectlens:defectlens /opt/defectlens
su -s /bin/bash defectlens -c "cd /opt/defectlens && PATH=/usr/local/bin:/usr/bin:/bin make install" \
    > "$work/install.log" 2>&1 || { tail -20 "$work/install.log"; fail "make install"; }
install -d -m 0755 /etc/defectlens
install -m 0600 /dev/null /etc/defectlens/defectlens.env

step "3. the unit under systemd (PID 1 of its own namespace)"
cat > "$work/inner.sh" <<EOF
#!/bin/bash
set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /tmp            # systemd-tmpfiles cleans /tmp at boot: keep the host's
mount -t tmpfs tmpfs /etc/systemd/system
cp /opt/defectlens/deploy/defectlens.service /etc/systemd/system/
printf '[Unit]\nRequires=defectlens.service\nAfter=defectlens.service\n' \
    > /etc/systemd/system/try.target
mkdir -p /sys/fs/cgroup/systemd
mountpoint -q /sys/fs/cgroup/systemd ||
    mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
exec /lib/systemd/systemd --system --unit=try.target
EOF
chmod +x "$work/inner.sh"
setsid unshare --pid --fork --mount --mount-proc "$work/inner.sh" > "$work/systemd.log" 2>&1 &
for _ in $(seq 30); do
    ns_pid=$(pgrep -f "^/lib/systemd/systemd --system --unit=try.target" || true)
    [ -n "$ns_pid" ] && break
    sleep 1
done
[ -n "$ns_pid" ] || fail "systemd did not start"
ns() { nsenter -t "$ns_pid" -m -p "$@"; }
healthy() {
    for _ in $(seq 90); do
        curl -sf -m 2 http://127.0.0.1:8501/_stcore/health >/dev/null && return 0
        sleep 1
    done
    return 1
}
healthy || { ns journalctl -u defectlens --no-pager | tail -20; fail "no health answer"; }
ns systemctl is-active defectlens
ss -ltn | grep -q "127.0.0.1:8501 " || fail "not listening on 127.0.0.1:8501"
ss -ltn | grep -E "(0.0.0.0|\*|\[::\]):8501 " && fail "listening beyond 127.0.0.1"

pw_file=/var/lib/defectlens/initial-admin-password.txt
[ "$(stat -c %a "$pw_file")" = 600 ] || fail "$pw_file is not owner-only"
password=$(sed -n 's/^password: *//p' "$pw_file")
ns journalctl -u defectlens --no-pager | grep -qF "$password" && fail "the password is in the journal"

jar=$work/cookies
csrf=$(curl -s -c "$jar" -b "$jar" "http://127.0.0.1:8501/session/login?next=/review" |
    sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p')
answer=$(curl -s -o /dev/null -w "%{http_code} %{redirect_url}" -c "$jar" -b "$jar" \
    --data-urlencode username=admin --data-urlencode "password=$password" \
    --data-urlencode "csrf=$csrf" --data-urlencode next=/review \
    http://127.0.0.1:8501/session/login)
[ "$answer" = "303 http://127.0.0.1:8501/review" ] || fail "login answered $answer"
grep -E "^#HttpOnly_127.0.0.1.*TRUE.*defectlens_session" "$jar" >/dev/null ||
    fail "no HttpOnly Secure session cookie"
echo "login: 303 to /review, session cookie HttpOnly and Secure"

main=$(ns systemctl show -p MainPID --value defectlens)
ns kill -9 "$main"
sleep 7  # RestartSec=5
healthy || fail "not restarted after kill -9"
[ "$(ns systemctl show -p MainPID --value defectlens)" != "$main" ] || fail "same main PID"
echo "restarted after kill -9 (restarts: $(ns systemctl show -p NRestarts --value defectlens))"

ns systemctl stop defectlens
ns journalctl -u defectlens --no-pager | grep -q "Deactivated successfully" ||
    fail "no clean stop"
pgrep -u defectlens >/dev/null && fail "processes of the defectlens user are left"
echo "stopped cleanly"
echo "OK: defectlens.service ran under systemd"
