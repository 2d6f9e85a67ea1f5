#!/usr/bin/env bash
# Installs everything Baton and its tests need on a Debian 12 (bookworm) machine.
#
#   - apt packages: iptables runc fence-agents openipmi ipmitool iproute2 procps psmisc
#   - CRIU 4.x, built from Debian trixie's upstream tarball, installed as /usr/local/sbin/criu
#     (bookworm's criu 3.17 fails `criu check` on this kernel; see shared/MACHINE.md)
#   - Go tools: staticcheck (pinned) in $(go env GOPATH)/bin
#
# Must run as root. Idempotent: when everything is already there it only checks, in seconds.
# Nothing is built or downloaded inside the repository: CRIU's tarball is cached under
# /var/cache/baton-criu and built in a temporary directory.
set -euo pipefail

APT_PACKAGES=(iptables runc fence-agents openipmi ipmitool iproute2 procps psmisc)

# Build dependencies of CRIU, all from bookworm (list from shared/MACHINE.md, plus the compiler
# toolchain and xz so that a really bare machine can build too).
CRIU_BUILD_DEPS=(
	build-essential xz-utils pkg-config patch
	libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler python3-protobuf
	libnl-3-dev libcap-dev libnet1-dev libbsd-dev libgnutls28-dev uuid-dev libaio-dev
)
CRIU_BIN=/usr/local/sbin/criu
CRIU_CACHE=/var/cache/baton-criu
CRIU_SRC_LIST=/etc/apt/sources.list.d/baton-criu-src.sources
# Baton's fixes to CRIU, applied in name order before the build. The stamp records which
# patches the installed binary was built with, so changing them rebuilds CRIU.
CRIU_PATCHES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/criu-patches
CRIU_STAMP=/usr/local/share/baton/criu-build.stamp
# Where CRIU keeps its cache of kernel facts (criu.kdat). CRIU keeps it only on a tmpfs and
# otherwise probes the kernel again at every call (~12 ms each, three of them while a post-copy
# migration is frozen); /run is not a tmpfs on every machine, so Baton's CRIU uses a directory
# of its own that the agent (and this script) make a tmpfs when /run is not one.
# Keep in step with criu.KernelFactsDir (migrate/criu).
CRIU_RUNDIR=/run/baton-criu

STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.1.2; needs go >= 1.26.0

export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-deps] %s\n' "$*"; }
die() {
	printf '[install-deps] ERROR: %s\n' "$*" >&2
	exit 1
}

if [[ $(id -u) -ne 0 ]]; then
	die "must run as root (it installs apt packages and /usr/local/sbin/criu)"
fi

# ---------------------------------------------------------------------------------------------
# apt helpers

APT_UPDATED=0
apt_update() {
	if [[ $APT_UPDATED -eq 0 ]]; then
		log "apt-get update"
		apt-get update -q </dev/null
		APT_UPDATED=1
	fi
}

is_installed() {
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

# apt_install PKG...: installs the packages that are not installed yet. No recommends: runc
# recommends bookworm's criu 3.17, which does not work here and would shadow nothing but confuse.
apt_install() {
	local missing=() p
	for p in "$@"; do
		is_installed "$p" || missing+=("$p")
	done
	if [[ ${#missing[@]} -eq 0 ]]; then
		return 0
	fi
	apt_update
	log "apt-get install ${missing[*]}"
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# ---------------------------------------------------------------------------------------------
# apt packages

log "checking apt packages: ${APT_PACKAGES[*]}"
apt_install "${APT_PACKAGES[@]}"

# ---------------------------------------------------------------------------------------------
# CRIU 4.x

criu_version() { # prints e.g. 4.1.1, or nothing
	"$CRIU_BIN" --version 2>/dev/null | sed -n 's/^Version: *//p' | head -n1 || true
}

# debian_archive_uri prints the URI of the machine's main Debian archive, read from its apt
# sources (deb822 .sources or one-line .list), so the trixie deb-src entry uses the same mirror.
debian_archive_uri() {
	local f uri=""
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -e $f && $f != "$CRIU_SRC_LIST" ]] || continue
		# A stanza whose Suites include plain "bookworm" (not -security / -updates).
		uri=$(awk '
			/^[[:space:]]*$/ { if (ok && u != "") { print u; exit } ok = 0; u = ""; next }
			tolower($1) == "uris:" { u = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") ok = 1 }
			END { if (ok && u != "") print u }
		' "$f" | head -n1)
		[[ -n $uri ]] && break
	done
	if [[ -z $uri ]]; then
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[[ -e $f ]] || continue
			uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) { if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; continue } if ($(i+1) == "bookworm") { print $i; exit } break } }' "$f" | head -n1)
			[[ -n $uri ]] && break
		done
	fi
	printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

find_criu_tarball() { # prints the newest criu_4.*.orig.tar.xz in $1, or nothing
	find "$1" -maxdepth 1 -name 'criu_4.*.orig.tar.xz' -print 2>/dev/null | sort -V | tail -n1
}

fetch_criu_tarball() {
	mkdir -p "$CRIU_CACHE"
	# apt downloads as the unprivileged _apt user where it can write.
	if id _apt >/dev/null 2>&1; then chown _apt:root "$CRIU_CACHE"; fi
	local tarball
	tarball=$(find_criu_tarball "$CRIU_CACHE")
	if [[ -n $tarball ]]; then
		log "using cached CRIU source $tarball"
		return 0
	fi

	local uri
	uri=$(debian_archive_uri)
	if [[ ! -e $CRIU_SRC_LIST ]]; then
		log "adding deb-src entry for Debian trixie ($uri) in $CRIU_SRC_LIST"
		cat >"$CRIU_SRC_LIST" <<EOF
# Added by Baton's scripts/install-deps.sh: source only (deb-src), to fetch CRIU 4.x's upstream
# tarball. No trixie binary packages are ever installed from here.
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		APT_UPDATED=0
	fi
	apt_update

	log "apt-get source --download-only criu (in $CRIU_CACHE)"
	# Only the upstream tarball downloads; the .dsc answers 404 so apt exits non-zero.
	# Judge by the tarball, not by the exit code.
	(cd "$CRIU_CACHE" && apt-get source -q --download-only criu </dev/null) ||
		log "apt-get source exited non-zero (expected: the .dsc is not available); checking for the tarball"
	tarball=$(find_criu_tarball "$CRIU_CACHE")
	[[ -n $tarball ]] || die "no criu_4.*.orig.tar.xz downloaded into $CRIU_CACHE (is Debian trixie's deb-src reachable?)"
	# Verify the tarball is intact before using it (a partial download would be kept otherwise).
	if ! xz -t "$tarball"; then
		rm -f "$tarball"
		die "downloaded $tarball is corrupt; removed it, run again"
	fi
	rm -f "$CRIU_CACHE"/*.dsc "$CRIU_CACHE"/*.debian.tar.* 2>/dev/null || true
	log "downloaded $tarball"
}

build_criu() {
	local tarball workdir srcdir
	tarball=$(find_criu_tarball "$CRIU_CACHE")
	workdir=$(mktemp -d /tmp/baton-criu-build.XXXXXX)
	# shellcheck disable=SC2064
	trap "rm -rf '$workdir'" EXIT
	log "unpacking $tarball in $workdir"
	tar -C "$workdir" -xf "$tarball"
	srcdir=$(find "$workdir" -mindepth 1 -maxdepth 1 -type d | head -n1)
	[[ -n $srcdir && -f $srcdir/Makefile ]] || die "unexpected layout of $tarball"
	local p
	for p in "$CRIU_PATCHES_DIR"/*.patch; do
		[[ -e $p ]] || continue
		log "applying $(basename "$p")"
		patch -d "$srcdir" -p1 --forward --batch <"$p" >/dev/null || die "patch $p does not apply to $(basename "$tarball")"
	done
	log "building CRIU: make -j$(nproc) criu (about 20 s)"
	# Only the criu binary is needed (go-criu talks to it in swrk mode); no docs, no plugins.
	make -C "$srcdir" -j"$(nproc)" RUNDIR="$CRIU_RUNDIR" criu </dev/null
	[[ -x $srcdir/criu/criu ]] || die "CRIU build produced no criu/criu binary"
	install -D -m 0755 "$srcdir/criu/criu" "$CRIU_BIN"
	install -D -m 0644 /dev/null "$CRIU_STAMP"
	criu_wanted_stamp >"$CRIU_STAMP"
	rm -rf "$workdir"
	trap - EXIT
	log "installed $CRIU_BIN ($(criu_version))"
}

check_criu() {
	local out
	out=$("$CRIU_BIN" check 2>&1) || true
	if ! grep -q 'Looks good' <<<"$out"; then
		printf '%s\n' "$out" >&2
		die "'$CRIU_BIN check' did not say 'Looks good' (output above); CRIU cannot checkpoint on this machine"
	fi
	log "criu check: Looks good"
}

criu_wanted_stamp() { # the patches and settings the binary should be built with
	{ cat "$CRIU_PATCHES_DIR"/*.patch 2>/dev/null; echo "RUNDIR=$CRIU_RUNDIR"; } | sha256sum | cut -d' ' -f1
}

ensure_criu_rundir() { # a tmpfs for CRIU's kernel facts cache (the agent does the same at start)
	mkdir -p -m 0700 "$CRIU_RUNDIR"
	chmod 0700 "$CRIU_RUNDIR"
	[[ $(stat -f -c %T "$CRIU_RUNDIR") == tmpfs ]] && return
	mount -t tmpfs -o size=1m,mode=0700,nosuid,nodev,noexec baton-criu "$CRIU_RUNDIR" || die "cannot mount a tmpfs on $CRIU_RUNDIR for CRIU's kernel facts cache"
	log "mounted a tmpfs on $CRIU_RUNDIR (CRIU's kernel facts cache; /run is not a tmpfs here)"
}

ver=$(criu_version)
if [[ $ver == 4.* ]] && [[ $(cat "$CRIU_STAMP" 2>/dev/null) == "$(criu_wanted_stamp)" ]]; then
	log "CRIU $ver already installed at $CRIU_BIN (with Baton's patches)"
else
	if [[ $ver == 4.* ]]; then
		log "$CRIU_BIN is CRIU $ver without Baton's current patches: rebuilding"
	elif [[ -n $ver ]]; then
		log "$CRIU_BIN is CRIU $ver, need 4.x: rebuilding"
	else
		log "CRIU 4.x not found at $CRIU_BIN: building it from Debian trixie's source"
	fi
	log "checking CRIU build dependencies (bookworm)"
	apt_install "${CRIU_BUILD_DEPS[@]}"
	fetch_criu_tarball
	build_criu
	check_criu
fi
ensure_criu_rundir

# ---------------------------------------------------------------------------------------------
# Go tools

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || die "go not found on PATH (Go 1.26 is expected at /usr/local/go/bin)"
GOBIN_DIR=$(go env GOBIN)
[[ -n $GOBIN_DIR ]] || GOBIN_DIR="$(go env GOPATH)/bin"

sc_have=""
if [[ -x $GOBIN_DIR/staticcheck ]]; then
	# `staticcheck -version` prints e.g. "staticcheck 2026.2.2 (0.8.2)".
	sc_have=$("$GOBIN_DIR/staticcheck" -version 2>/dev/null | sed -n 's/.*(v\{0,1\}\([^)]*\)).*/\1/p' || true)
fi
if [[ -n $sc_have && v$sc_have == "$STATICCHECK_VERSION" ]]; then
	log "staticcheck $sc_have already installed at $GOBIN_DIR/staticcheck"
else
	log "go install honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION (into $GOBIN_DIR)"
	(cd / && GOFLAGS=-buildvcs=false go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION")
	log "installed $("$GOBIN_DIR/staticcheck" -version)"
fi

log "all dependencies present"
