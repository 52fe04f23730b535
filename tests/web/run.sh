#!/usr/bin/env bash
# The Point Picker's JavaScript tests: pure logic under node's test runner, and the editor in a
# headless Chromium (Debian's chromium driven by playwright-core from npm; never a browser download).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -d node_modules/playwright-core ]; then
    npm ci --no-audit --no-fund --silent || echo "npm install failed: the browser test will be skipped"
fi
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "chromium install failed: the browser test will be skipped"
fi
node --test tests/web/
