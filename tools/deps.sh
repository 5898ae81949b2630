#!/bin/sh
# deps.sh [--quiet] -- installs the Debian packages chain needs that are
# missing (with sudo when not root).  Safe to run again: does nothing when
# everything is there.
set -e
PKGS="make gcc clang flex bison llvm-19-dev libcmocka-dev zlib1g-dev libpng-dev pkg-config"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	[ "$1" = "--quiet" ] || echo "deps: all packages present"
	exit 0
fi
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q $missing
