#!/usr/bin/env bash
# Static PNG export of plotly figures (kaleido >= 1) needs a Chrome/Chromium binary. Install Debian's chromium when
# none is found and we can (root + apt-get); otherwise say that figures will be saved as HTML only.
set -u
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
if [ -n "${BROWSER_PATH:-}" ] && [ -x "${BROWSER_PATH}" ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for static figure export (apt-get)"
  if apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; then
    exit 0
  fi
  echo "warning: could not install chromium; figures will be saved as interactive HTML only" >&2
else
  echo "note: no Chrome/Chromium found; figures will be saved as interactive HTML only (install chromium for PNGs)" >&2
fi
exit 0
