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
KW_BUILD_PACKAGES=(gcc meson ninja-build pkg-config python3 gettext
	libmicrohttpd-dev libjansson-dev libsqlite3-dev libsodium-dev libinih-dev)

# The Swedish pages need the sv_SE.UTF-8 locale (gettext finds the catalog
# through it).
kw_swedish_locale() {
	locale -a 2>/dev/null | grep -qi '^sv_SE\.utf-\?8$' && return 0
	kw_install_packages locales
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" localedef -i sv_SE -f UTF-8 sv_SE.UTF-8
}
