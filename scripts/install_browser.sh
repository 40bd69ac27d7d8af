#!/usr/bin/env bash
# Debian's chromium (and CJK fonts) for the dashboard's page test, driven by Playwright for
# Python; browser downloads do not work here. Needs root or password-less sudo.
set -euo pipefail
if command -v chromium >/dev/null && fc-list 2>/dev/null | grep -qi "cjk"; then
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    sudo=""
elif sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "the dashboard test needs Debian's chromium: apt-get install chromium fonts-noto-cjk" >&2
    exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
