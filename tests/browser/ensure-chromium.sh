#!/bin/sh
# Makes sure a headless-capable Chromium is on PATH: the report test opens report.html in it.
# Installs Debian's chromium package when it is missing (the tests run as root on Debian, like
# CI). Prints the browser's path; exits non-zero with the reason when it cannot.
set -eu
find_browser() {
    for b in chromium chromium-browser; do
        if command -v "$b" >/dev/null 2>&1; then
            command -v "$b"
            return 0
        fi
    done
    return 1
}
if find_browser; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: chromium is missing and there is no apt-get to install it" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-chromium: chromium is missing; installing it needs root (apt-get install chromium)" >&2
    exit 1
fi
# One installer at a time (test binaries may run in parallel).
exec 9>/tmp/roomrig-ensure-chromium.lock
flock 9
if ! find_browser >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
fi
find_browser
