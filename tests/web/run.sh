#!/usr/bin/env bash
# The Point Picker's JavaScript tests (node's built-in runner; no npm packages needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
node --test tests/web/
