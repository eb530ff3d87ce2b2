#!/usr/bin/env bash
# Install the pinned EVM toolchain for on-chain receipts; safe to run again.
#
#   1. npm packages pinned in package.json / package-lock.json -> ./node_modules
#      (anvil + cast from foundry, solc-js 0.8.20)
#   2. a node wrapper around solc-js at ~/.svm/0.8.20/solc-0.8.20, where EZKL
#      looks for solc 0.8.20 (otherwise it tries to download it and fails offline).
#      A native solc 0.8.20 already there is left alone.
#   3. a check that every tool answers.
#
# Needs node >= 20 and npm. Set DSPERSE_SKIP_NPM=1 to only (re)install the wrapper.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SOLC_VERSION=0.8.20
WRAPPER_SRC="$ROOT/dsperse/chain/solc_wrapper.js"
SVM_DIR="$HOME/.svm/$SOLC_VERSION"
SVM_SOLC="$SVM_DIR/solc-$SOLC_VERSION"

die() { echo "install_toolchain: $*" >&2; exit 1; }

command -v node >/dev/null || die "node not found; install Node.js >= 20 (e.g. apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm not found; install npm"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || die "node $(node --version) is too old; the foundry npm packages need node >= 20"

pkg_version() {  # prints the installed version of an npm package in ./node_modules, or nothing
  node -p "try { require('./node_modules/$1/package.json').version } catch (e) { '' }" 2>/dev/null
}
want_version() {
  node -p "require('./package.json').dependencies['$1']"
}

up_to_date=1
for p in "@foundry-rs/anvil-linux-amd64" "@foundry-rs/cast-linux-amd64" "solc" "ffjavascript"; do
  [ "$(pkg_version "$p")" = "$(want_version "$p")" ] || up_to_date=0
done
if [ "${DSPERSE_SKIP_NPM:-0}" = 1 ]; then
  echo "install_toolchain: skipping npm (DSPERSE_SKIP_NPM=1)"
elif [ "$up_to_date" = 1 ]; then
  echo "install_toolchain: node_modules already matches package.json"
elif [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi

ANVIL="$ROOT/node_modules/.bin/anvil"
CAST="$ROOT/node_modules/.bin/cast"
SOLC_JS="$ROOT/node_modules/solc"
[ -x "$ANVIL" ] || die "anvil missing at $ANVIL after npm install"
[ -x "$CAST" ] || die "cast missing at $CAST after npm install"
[ -f "$SOLC_JS/soljson.js" ] || die "solc-js missing at $SOLC_JS after npm install"

# The wrapper EZKL runs. Keep a native solc 0.8.20 if someone installed one (it is faster).
mkdir -p "$SVM_DIR"
native=0
if [ -x "$SVM_SOLC" ] && ! grep -q "solc-js" "$SVM_SOLC" 2>/dev/null \
   && "$SVM_SOLC" --version 2>/dev/null | grep -q "Version: $SOLC_VERSION"; then
  native=1
  echo "install_toolchain: keeping the native solc $SOLC_VERSION at $SVM_SOLC"
fi
if [ "$native" = 0 ]; then
  tmp="$(mktemp "$SVM_DIR/.solc-$SOLC_VERSION.XXXXXX")"
  sed -e "s#__NODE__#$(command -v node)#" -e "s#__SOLC_DIR__#$SOLC_JS#" "$WRAPPER_SRC" > "$tmp"
  chmod 755 "$tmp"
  mv -f "$tmp" "$SVM_SOLC"
fi

# Check that everything answers.
"$ANVIL" --version | head -1
"$CAST" --version | head -1
"$SVM_SOLC" --version | grep -q "Version: $SOLC_VERSION" || die "$SVM_SOLC does not report solc $SOLC_VERSION"
probe='{"language":"Solidity","sources":{"P.sol":{"content":"pragma solidity ^0.8.20; contract P { function f() external pure returns (uint256) { return 1; } }"}},"settings":{"outputSelection":{"*":{"*":["evm.bytecode.object"]}}}}'
echo "$probe" | "$SVM_SOLC" --standard-json | grep -q '"object":"60' || die "$SVM_SOLC could not compile a probe contract"
echo "install_toolchain: ok (solc $SOLC_VERSION at $SVM_SOLC)"
