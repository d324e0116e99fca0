# shellcheck shell=bash
# What keywarden's two commands need, and how they install and build it.
# Sourced by tools/demo and tools/test; installing needs root (or sudo).
# The package lists are plain arrays: add a package on its own line.

# What building and running the demo needs (tools/demo installs exactly
# these, and tools/test checks that they are enough). gcc only recommends
# the C library's headers, and apt installs no recommends here.
KW_BUILD_PACKAGES=(
	gcc
	libc6-dev
	meson
	ninja-build
	pkg-config
	python3
	gettext
	locales
	libmicrohttpd-dev
	libjansson-dev
	libsqlite3-dev
	libsodium-dev
	libinih-dev
	libldap-dev
	libpq-dev
)

# What tools/test needs besides KW_BUILD_PACKAGES (node and npm come from
# nodejs and npm, installed only when missing: see tools/test).
KW_TEST_PACKAGES=(
	libcmocka-dev
	clang
	libclang-rt-14-dev
	valgrind
	openssl
	sqlite3
	curl
	chromium
	fonts-dejavu-core
	strace
	# a throw-away directory for the sign-in tests (tests/integration/slapd.py
	# starts its own slapd; the package's service need not run)
	slapd
	ldap-utils
	# a throw-away PostgreSQL server for the store's tests (tests/with-postgres
	# initialises and starts its own; the package's service need not run)
	postgresql
	# cryptsetup bitlkOpen/bitlkDump for the real BitLocker test vectors
	# (tests/integration/test_bitlk_vectors.py fetches cryptsetup's source
	# package with apt-get source --download-only; no deb-src line needed)
	cryptsetup-bin
)

# Runs a command with its output in a temporary file: nothing is shown when
# it succeeds, everything (and what failed) when it does not.
#   kw_quiet WHAT COMMAND [ARG...]
kw_quiet() {
	local what=$1 log rc=0
	shift
	log=$(mktemp) || return 1
	"$@" >"$log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		cat "$log" >&2
		echo "error: $what failed (exit $rc): $*" >&2
	fi
	rm -f "$log"
	return "$rc"
}

# Installs the Debian packages named as arguments when any is missing; an
# apt-get failure is shown and returned.
kw_install_packages() {
	local missing=() p sudo=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q " installed$" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}" >&2
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null; then
			echo "error: installing packages needs root; run this as root" \
				"or install: ${missing[*]}" >&2
			return 1
		fi
		sudo=(sudo)
	fi
	kw_quiet "apt-get update" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get update -q || return 1
	kw_quiet "installing ${missing[*]}" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
}

# The Swedish pages need the sv_SE.UTF-8 locale (gettext finds the catalog
# through it); the locales package has its definition.
kw_swedish_locale() {
	locale -a 2>/dev/null | grep -qi '^sv_SE\.utf-\?8$' && return 0
	kw_install_packages locales || return 1
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	kw_quiet "making the sv_SE.UTF-8 locale" "${sudo[@]}" \
		localedef -c -i sv_SE -f UTF-8 sv_SE.UTF-8
}

# Configures (when needed) and builds the meson build folder DIR, quietly
# unless something fails.
#   kw_build [-f] DIR [MESON_OPTION...]
# A missing DIR, or one an earlier failed `meson setup` left half-made (no
# build.ninja), is set up afresh with the options. An existing DIR keeps its
# configuration, except that with -f the options are applied to it too (so
# tools/test gets its own even in a folder tools/demo configured).
kw_build() {
	local force=0 dir
	[ "${1-}" = -f ] && { force=1; shift; }
	dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ] || [ ! -f "$dir/meson-private/coredata.dat" ]; then
		if [ -e "$dir" ]; then
			if [ -n "$(ls -A "$dir")" ] && [ ! -d "$dir/meson-logs" ] &&
				[ ! -d "$dir/meson-private" ]; then
				echo "error: $dir is not a meson build folder; move it away" >&2
				return 1
			fi
			echo "$dir: an earlier setup did not finish; setting it up again" >&2
			rm -rf "$dir" || return 1
		fi
		kw_quiet "meson setup $dir" meson setup "$dir" "$@" || return 1
	elif [ "$force" = 1 ] && [ $# -gt 0 ]; then
		kw_quiet "meson configure $dir" meson configure "$dir" "$@" || return 1
	fi
	kw_quiet "building in $dir" ninja -C "$dir"
}

# The .pc files of the installed packages named and of every package they
# depend on (the first installed alternative of each dependency): what
# pkg-config finds on a machine that has only these packages.
kw_pc_files() {
	local packages p
	packages=$(python3 - "$@" <<'EOF'
import re, subprocess, sys
out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Provides}\t"
                      "${Depends}, ${Pre-Depends}\n"],
                     capture_output=True, text=True, check=True).stdout
depends, providers = {}, {}
for line in out.splitlines():
    name, status, provides, deps = line.split("\t")
    if status.endswith(" installed"):
        depends[name] = deps
        for p in provides.split(","):
            p = re.sub(r"\(.*?\)|:\S+", "", p).strip()
            providers.setdefault(p, []).append(name)

def installed(alt):
    alt = re.sub(r"\(.*?\)|\[.*?\]|<.*?>|:\S+", "", alt).strip()
    return alt if alt in depends else (providers.get(alt) or [None])[0]

todo, seen = list(sys.argv[1:]), set()
while todo:
    p = todo.pop()
    if p in seen:
        continue
    if p not in depends:
        sys.exit("kw_pc_files: %s is not installed" % p)
    seen.add(p)
    for clause in depends[p].split(","):
        for alt in clause.split("|"):
            if installed(alt):
                todo.append(installed(alt))
                break
print("\n".join(sorted(seen)))
EOF
) || return 1
	for p in $packages; do
		dpkg -L "$p" | grep '\.pc$' || true
	done
}
