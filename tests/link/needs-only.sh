#!/bin/sh
# usage: needs-only.sh PROGRAM LIBRARY...
# Fails when PROGRAM needs (ELF DT_NEEDED) a shared library whose name
# starts with one of LIBRARY: the proof that a program built from the lower
# libraries (libkw_format, …) pulls in none of the upper layers' packages.
set -eu
prog=$1
shift
needed=$(readelf -d "$prog" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || { echo "$prog: no NEEDED entries read" >&2; exit 1; }
echo "$prog needs:" $needed
for lib in "$@"; do
	for n in $needed; do
		case "$n" in
		"$lib"*) echo "$prog needs $n, which it must not" >&2; exit 1 ;;
		esac
	done
done
