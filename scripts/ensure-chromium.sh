#!/bin/sh
# The preview's browser test drives a headless Chromium; it needs Debian's chromium package.
set -e
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
   || [ -n "$NUDGE_TEST_CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ]; then
    echo "Chromium not found: installing Debian's chromium package" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "Chromium not found: install it (e.g. sudo apt-get install chromium)" >&2
    echo "or point NUDGE_TEST_CHROMIUM at a Chromium or Chrome binary." >&2
    exit 1
fi
