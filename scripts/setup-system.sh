#!/usr/bin/env bash
# Install the system programs the tests need on Debian or Ubuntu: chromium (browser tests) and
# redis-server (job-queue tests). Uses apt-get as root, or through sudo where that works without
# a password prompt; otherwise, and on macOS and Windows, says in one line what to install, and
# exits 0 (the tests that need a missing program skip with the same advice).
set -euo pipefail

case "$(uname -s)" in
    Darwin)
        # The browser tests drive /usr/bin/chromium, which macOS does not have: they skip there.
        if ! command -v redis-server >/dev/null 2>&1; then
            echo "setup-system: please install Redis with Homebrew (https://brew.sh): brew install redis; the browser tests run on Linux only and skip on macOS." >&2
        else
            echo "setup-system: redis-server is installed; the browser tests run on Linux only and skip on macOS." >&2
        fi
        exit 0
        ;;
    MINGW* | MSYS* | CYGWIN*)
        echo "setup-system: Redis and the browser tests' Chromium are Linux programs: run the tests in WSL2 (Ubuntu) with this script there; on Windows itself the tests that need them skip." >&2
        exit 0
        ;;
esac

packages=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || packages+=(chromium)
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo -n apt-get)
else
    apt=()
fi

if [ ${#apt[@]} -eq 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-system: please install ${packages[*]} (Debian/Ubuntu: sudo apt-get install -y ${packages[*]}); the tests that need them skip until then." >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "setup-system: installing ${packages[*]} with apt-get" >&2
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
