# Installs the Debian packages named as arguments when any is missing.
# Sourced by tools/demo and tools/test; needs root (or sudo) to install.
kw_install_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}" >&2
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q >/dev/null &&
		"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# What building keywarden needs.
KW_BUILD_PACKAGES=(gcc meson ninja-build pkg-config python3
	libmicrohttpd-dev libjansson-dev libsqlite3-dev libsodium-dev libinih-dev)
