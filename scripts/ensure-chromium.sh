#!/bin/sh
# The preview's and the emails' browser tests drive a headless Chromium; they need Debian's
# chromium package, and a CJK font so Chinese emails render as text, not boxes (fonts-wqy-microhei).
set -e
need_font() {
    command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh 2>/dev/null)" ] && return 1
    return 0
}
have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$NUDGE_TEST_CHROMIUM" ]
}
if have_chromium && ! need_font; then
    exit 0
fi
if [ "$(id -u)" = "0" ]; then
    packages=""
    have_chromium || packages="chromium"
    need_font && packages="$packages fonts-wqy-microhei"
    echo "installing Debian's$packages for the browser tests" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
else
    have_chromium || echo "Chromium not found: install it (e.g. sudo apt-get install chromium)" >&2
    have_chromium || echo "or point NUDGE_TEST_CHROMIUM at a Chromium or Chrome binary." >&2
    need_font && echo "No Chinese font: install one (e.g. sudo apt-get install fonts-wqy-microhei)" >&2
    have_chromium || exit 1
fi
