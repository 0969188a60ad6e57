#!/bin/sh
# Makes sure `php` (the CLI) is on PATH: the voice sign cross-check runs PHP's own json_encode.
# Installs Debian's php-cli when it is missing (the tests run as root on Debian, like CI).
# Prints the php binary's path; exits non-zero with the reason when it cannot.
set -eu
if command -v php >/dev/null 2>&1; then
    command -v php
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-php: php is missing and there is no apt-get to install php-cli" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-php: php is missing; installing php-cli needs root (apt-get install php-cli)" >&2
    exit 1
fi
# One installer at a time (test binaries may run in parallel).
exec 9>/tmp/roomrig-ensure-php.lock
flock 9
if ! command -v php >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    apt-get install -y -qq --no-install-recommends php-cli >&2
fi
command -v php
