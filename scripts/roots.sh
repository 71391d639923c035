# scripts/roots.sh: Debian roots made with debootstrap under build/roots/,
# sourced by scripts/dev. Three of them, each holding nothing but what these
# functions install:
#
#   bookworm   Debian 12 minbase; scripts/dev itself installs its packages
#              there and builds every C target (the clean-room proof that
#              the package list is complete).
#   sid        Debian unstable: the newest 3.13, 3.14, 3.15 and 3.14's debug
#              build, with headers, venv and the stdlib test package, plus
#              the compiler, CMake and liburcu to build the extension.
#   bare       Debian unstable with Python and nothing else (no compiler, no
#              liburcu): where a repaired wheel must import and run.
#
# Safety: nothing of the host is ever bind-mounted into a root. A root gets
# its own proc and its own tmpfs on /dev/shm, mounted for the length of one
# scripts/dev run and unmounted by an EXIT trap; roots are removed with
# rm --one-file-system. The source tree is copied in (tar), never mounted.
# The host's CA bundle is copied to /etc/ssl/host-ca.crt for pip (a proxy
# may re-sign TLS), and the commands run with a clean environment.

ROOTS=$BUILD/roots
DEBIAN_MIRROR=${LCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What each root needs beyond debootstrap's minbase.
SID_PKGS=(build-essential cmake ninja-build pkg-config liburcu-dev
          python3.13-dev python3.13-venv libpython3.13-testsuite
          python3.14-dev python3.14-venv libpython3.14-testsuite python3.14-dbg
          python3.15-dev python3.15-venv libpython3.15-testsuite)
BARE_PKGS=(python3.13-venv python3.14-venv)

MOUNTED=()          # mount points to unmount on exit, newest last

unmount_roots() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" || true
    done
    MOUNTED=()
}
trap unmount_roots EXIT
trap 'exit 130' INT TERM

# root_mount DIR: its own /proc and /dev/shm (not the host's), once per run.
root_mount() {
    local r=$1 m
    for m in proc dev/shm; do
        mkdir -p "$r/$m"
        mountpoint -q "$r/$m" && continue
        case $m in
            proc) mount -t proc proc "$r/proc" ;;
            dev/shm) mount -t tmpfs -o mode=1777,size=2g tmpfs "$r/dev/shm" ;;
        esac
        MOUNTED+=("$r/$m")
    done
}

# root_apt DIR PKG...: install packages in the root when any is missing.
root_apt() {
    local r=$1; shift
    local stamp="$r/.libchan-packages" want
    want=$(printf '%s\n' "$@" | sort)
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
    log "root $(basename "$r"): installing $*"
    root_exec "$r" env DEBIAN_FRONTEND=noninteractive sh -c '
        apt-get -q update >/dev/null &&
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
        apt-get "$@"
    printf '%s\n' "$want" >"$stamp"
}

# root_make NAME SUITE: debootstrap a minbase root (once), atomically: a
# half-made root is never mistaken for a finished one.
root_make() {
    local name=$1 suite=$2 r=$ROOTS/$1
    if [ ! -f "$r/.libchan-root" ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "making a Debian root needs root (debootstrap, chroot)" >&2
            exit 1
        fi
        log "root $name: debootstrap $suite (Debian $suite, minbase)"
        [ -d "$r.tmp" ] && rm -rf --one-file-system "$r.tmp"
        mkdir -p "$ROOTS"
        debootstrap --variant=minbase "$suite" "$r.tmp" "$DEBIAN_MIRROR" \
            >"$ROOTS/$name.debootstrap.log" 2>&1 || {
            tail -20 "$ROOTS/$name.debootstrap.log" >&2
            exit 1
        }
        # Debian unstable's Release file on some mirrors is past its
        # Valid-Until date; apt would refuse it.
        echo 'Acquire::Check-Valid-Until "false";' \
            >"$r.tmp/etc/apt/apt.conf.d/99libchan"
        [ -d "$r" ] && rm -rf --one-file-system "$r"
        mv "$r.tmp" "$r"
        touch "$r/.libchan-root"
    fi
    root_mount "$r"
    mkdir -p "$r/etc/ssl"
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/host-ca.crt"
}

# root_exec DIR CMD...: run CMD in the root, as root, with a clean
# environment (the host's pip settings point at host paths).
root_exec() {
    local r=$1; shift
    chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PIP_CERT=/etc/ssl/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_ROOT_USER_ACTION=ignore \
        JOBS="$JOBS" LCH_FUZZ_SECONDS="${LCH_FUZZ_SECONDS:-60}" \
        LCH_PY_VERBOSE="${LCH_PY_VERBOSE:-}" "$@"
}

# root_sync DIR: make DIR/work/src a copy of the source tree (tracked and
# untracked files, not build/ nor .git). Only files whose contents changed
# are rewritten, and they get a new modification time, so the build trees
# in DIR/work/build rebuild incrementally and never miss an edit, even one
# made while a previous build in the root was running.
root_sync() {
    local r=$1
    mkdir -p "$r/work/src"
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard 2>/dev/null \
        || find . -path ./build -prune -o -path ./.git -prune -o -type f -printf '%P\0') |
        python3 -c '
import os, shutil, sys
src, dst = sys.argv[1:]
want = {f for f in sys.stdin.buffer.read().decode().split("\0")
        if f and os.path.lexists(os.path.join(src, f))}
for f in want:
    s, d = os.path.join(src, f), os.path.join(dst, f)
    with open(s, "rb") as a:
        new = a.read()
    try:
        with open(d, "rb") as b:
            if b.read() == new:
                continue
    except OSError:
        os.makedirs(os.path.dirname(d), exist_ok=True)
    with open(d, "wb") as b:
        b.write(new)
    shutil.copymode(s, d)
for top, dirs, files in os.walk(dst):
    for f in files:
        rel = os.path.relpath(os.path.join(top, f), dst)
        if rel not in want:
            os.unlink(os.path.join(dst, rel))
' "$ROOT" "$r/work/src"
}

# root_dev DIR CMD [ARGS]: run `scripts/dev CMD ARGS` on a fresh copy of the
# source inside the root, with its build trees under /work/build there.
root_dev() {
    local r=$1; shift
    root_sync "$r"
    root_exec "$r" LCH_IN_ROOT="$(basename "$r")" LCH_BUILD_DIR=/work/build \
        bash /work/src/scripts/dev "$@"
}

# sid_root / bare_root: make and provision the root (once), mount it.
sid_root() {
    root_make sid sid
    root_apt "$ROOTS/sid" "${SID_PKGS[@]}"
}

bare_root() {
    root_make bare sid
    root_apt "$ROOTS/bare" "${BARE_PKGS[@]}"
}
