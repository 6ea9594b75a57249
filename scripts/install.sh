#!/usr/bin/env bash
# Install seald's systemd integration and command wrappers.
#
#   [DESTDIR=/tmp/stage] [PREFIX=/usr] [SEALD_VENV=/opt/seald/venv] bash scripts/install.sh
#
# DESTDIR  staging root prepended to every path (packaging, tests). Default: empty.
# PREFIX   installation prefix. Default: /usr. Files go to
#            $DESTDIR$PREFIX/lib/systemd/system/seald.service
#            $DESTDIR$PREFIX/lib/sysusers.d/seald.conf
#            $DESTDIR$PREFIX/lib/tmpfiles.d/seald.conf
#            $DESTDIR$PREFIX/lib/udev/rules.d/70-seald-tokens.rules
#            $DESTDIR$PREFIX/bin/seald, $DESTDIR$PREFIX/bin/sealctl   (wrappers)
#            $DESTDIR$PREFIX/share/doc/seald/{operations.md,seald.example.toml}
#            $DESTDIR/etc/seald/seald.toml        (example; an existing file is kept)
#          With PREFIX=/usr (Debian 12 is merged-/usr, /lib -> /usr/lib) these are the
#          vendor directories systemd, udev, sysusers and tmpfiles read. With another
#          PREFIX, ExecStart= in the installed unit is rewritten to $PREFIX/bin/seald.
# SEALD_VENV  Python virtual environment holding the seal-appliance package; the
#          wrappers exec its interpreter. Default: $PREFIX/lib/seald/venv. Build it with
#            python3 -m venv /usr/lib/seald/venv && /usr/lib/seald/venv/bin/pip install .
#          or set SEALD_BUILD_VENV=1 to have this script build it (needs the package
#          index; without DESTDIR only, as a venv is not relocatable).
#
# Without root (DESTDIR set), ownership is left to the installing user; the tmpfiles
# entry sets root:seald on /etc/seald when applied on the target. Nothing outside
# $DESTDIR is written.
set -euo pipefail

DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/usr}"
SEALD_VENV="${SEALD_VENV:-$PREFIX/lib/seald/venv}"
SEALD_BUILD_VENV="${SEALD_BUILD_VENV:-0}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/systemd"

die() { echo "install.sh: $*" >&2; exit 1; }

case "$PREFIX" in
    /*) ;;
    *) die "PREFIX must be an absolute path (got '$PREFIX')." ;;
esac
case "$SEALD_VENV" in
    /*) ;;
    *) die "SEALD_VENV must be an absolute path (got '$SEALD_VENV')." ;;
esac
if [[ -n "$DESTDIR" && "$DESTDIR" != /* ]]; then
    die "DESTDIR must be an absolute path (got '$DESTDIR')."
fi
for f in seald.service seald.sysusers seald.tmpfiles 70-seald-tokens.rules seald.example.toml \
         sealweb.service sealweb.sysusers seald-archive-renew.service seald-archive-renew.timer; do
    [[ -f "$SRC/$f" ]] || die "missing $SRC/$f: run from a complete checkout."
done
[[ -f "$REPO/docs/operations.md" ]] || die "missing $REPO/docs/operations.md: run from a complete checkout."

unitdir="$DESTDIR$PREFIX/lib/systemd/system"
sysusersdir="$DESTDIR$PREFIX/lib/sysusers.d"
tmpfilesdir="$DESTDIR$PREFIX/lib/tmpfiles.d"
udevrulesdir="$DESTDIR$PREFIX/lib/udev/rules.d"
bindir="$DESTDIR$PREFIX/bin"
docdir="$DESTDIR$PREFIX/share/doc/seald"
confdir="$DESTDIR/etc/seald"

# The unit names /usr/bin/seald; follow PREFIX so ExecStart finds the wrapper.
install -d -m 0755 "$unitdir"
sed "s#^ExecStart=/usr/bin/seald #ExecStart=$PREFIX/bin/seald #" "$SRC/seald.service" \
    > "$unitdir/seald.service.tmp"
chmod 0644 "$unitdir/seald.service.tmp"
mv -f "$unitdir/seald.service.tmp" "$unitdir/seald.service"

# Issue 18: the web console, its own unit and user (enable it only where it is wanted).
sed "s#^ExecStart=/usr/bin/sealweb #ExecStart=$PREFIX/bin/sealweb #" "$SRC/sealweb.service" \
    > "$unitdir/sealweb.service.tmp"
chmod 0644 "$unitdir/sealweb.service.tmp"
mv -f "$unitdir/sealweb.service.tmp" "$unitdir/sealweb.service"
install -D -m 0644 "$SRC/sealweb.sysusers" "$sysusersdir/sealweb.conf"

# Issue 16: the daily archive timestamp renewal (a sealctl client of seald; enable the timer).
sed "s#^ExecStart=/usr/bin/sealctl #ExecStart=$PREFIX/bin/sealctl #" "$SRC/seald-archive-renew.service" \
    > "$unitdir/seald-archive-renew.service.tmp"
chmod 0644 "$unitdir/seald-archive-renew.service.tmp"
mv -f "$unitdir/seald-archive-renew.service.tmp" "$unitdir/seald-archive-renew.service"
install -D -m 0644 "$SRC/seald-archive-renew.timer" "$unitdir/seald-archive-renew.timer"

install -D -m 0644 "$SRC/seald.sysusers" "$sysusersdir/seald.conf"
install -D -m 0644 "$SRC/seald.tmpfiles" "$tmpfilesdir/seald.conf"
install -D -m 0644 "$SRC/70-seald-tokens.rules" "$udevrulesdir/70-seald-tokens.rules"
install -D -m 0644 "$SRC/seald.example.toml" "$docdir/seald.example.toml"
install -D -m 0644 "$REPO/docs/operations.md" "$docdir/operations.md"

# Configuration: never overwrite the site's file.
install -d -m 0750 "$confdir" "$confdir/tls"
if [[ -e "$confdir/seald.toml" ]]; then
    echo "install.sh: keeping existing $confdir/seald.toml (example in $docdir)."
else
    install -m 0640 "$SRC/seald.example.toml" "$confdir/seald.toml"
fi

# Wrappers: exec the venv's interpreter (not its console scripts, whose shebangs carry
# the absolute path the venv was built at). -I (isolated): the caller's working
# directory and PYTHON* variables must not be able to shadow our modules.
write_wrapper() {
    local name="$1" module="$2" target="$bindir/$1"
    install -d -m 0755 "$bindir"
    cat > "$target.tmp" <<EOF
#!/bin/sh
# $name: installed by seald scripts/install.sh; runs $module.main from $SEALD_VENV.
exec "$SEALD_VENV/bin/python" -I -c 'import sys; sys.argv[0] = "$name"; from $module import main; sys.exit(main())' "\$@"
EOF
    chmod 0755 "$target.tmp"
    mv -f "$target.tmp" "$target"
}
write_wrapper seald seald.app
write_wrapper sealctl sealclient.cli
write_wrapper sealweb sealweb.app

if [[ "$SEALD_BUILD_VENV" == "1" ]]; then
    [[ -z "$DESTDIR" ]] || die "SEALD_BUILD_VENV=1 needs an empty DESTDIR (a venv is not relocatable)."
    python3 -m venv "$SEALD_VENV"
    "$SEALD_VENV/bin/pip" install --quiet "$REPO"
fi

# On the live system as root: ownership for the service group, then tell what to run.
if [[ -z "$DESTDIR" && "$(id -u)" == "0" ]]; then
    if getent group seald > /dev/null; then
        chgrp seald "$confdir" "$confdir/tls" "$confdir/seald.toml"
    fi
    cat <<'EOF'
install.sh: installed. Next, as root:
  systemd-sysusers seald.conf && systemd-tmpfiles --create seald.conf
  udevadm control --reload && udevadm trigger --subsystem-match=usb --action=change
  systemctl daemon-reload && systemctl enable --now seald
  (long-term archives: /etc/seald/archive-renew.toml, then
   systemctl enable --now seald-archive-renew.timer; see operations.md)
EOF
fi
