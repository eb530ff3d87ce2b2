#!__NODE__
// solc 0.8.20 command-line stand-in backed by solc-js (npm "solc@0.8.20").
// Installed at ~/.svm/0.8.20/solc-0.8.20 by `dsperse toolchain install` (or
// dsperse.chain.toolchain.ensure_ezkl_solc) because EZKL looks for solc there and
// would otherwise try to download it. It supports what EZKL's compiler driver
// passes: `--version` and `--standard-json` (JSON on stdin, JSON on stdout), plus
// the path flags that come with it. Set DSPERSE_SOLC_LOG=FILE to log every call.
"use strict";
const fs = require("fs");
const path = require("path");
const SOLC_DIR = process.env.DSPERSE_SOLC_DIR || "__SOLC_DIR__";

const args = process.argv.slice(2);
if (process.env.DSPERSE_SOLC_LOG) {
  fs.appendFileSync(process.env.DSPERSE_SOLC_LOG, JSON.stringify(args) + "\n");
}

function loadSolc() {
  try {
    return require(SOLC_DIR);
  } catch (err) {
    process.stderr.write(
      `solc-js not found at ${SOLC_DIR} (${err.message}); run \"dsperse toolchain install\"\n`
    );
    process.exit(2);
  }
}

function versionText() {
  const v = loadSolc().version(); // e.g. 0.8.20+commit.a1b79de6.Emscripten.clang
  return `solc, the solidity compiler commandline interface\nVersion: ${v}\n`;
}

// Flags that take a value (as in solc's CLI); values may also come as --flag=value.
const VALUE_FLAGS = new Set(["--base-path", "--include-path", "--allow-paths"]);
const opts = { basePaths: [], standardJson: false, version: false, positional: [] };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const [flag, inline] = a.startsWith("--") && a.includes("=") ? a.split(/=(.*)/s) : [a, undefined];
  if (flag === "--version") opts.version = true;
  else if (flag === "--standard-json") opts.standardJson = true;
  else if (VALUE_FLAGS.has(flag)) {
    const val = inline !== undefined ? inline : args[++i];
    if (flag !== "--allow-paths") opts.basePaths.push(...val.split(","));
  } else if (flag === "--help") {
    process.stdout.write("solc-js wrapper: supports --version and --standard-json [--base-path P] [--include-path P]\n");
    process.exit(0);
  } else if (flag.startsWith("-")) {
    process.stderr.write(`solc-js wrapper: unsupported flag ${a} (only --version and --standard-json)\n`);
    process.exit(2);
  } else opts.positional.push(a);
}

if (opts.version) {
  process.stdout.write(versionText());
  return;
}
if (!opts.standardJson) {
  process.stderr.write("solc-js wrapper: pass --standard-json and the input JSON on stdin\n");
  process.exit(2);
}

function findImports(p) {
  const roots = opts.basePaths.length ? opts.basePaths : [process.cwd()];
  for (const root of roots.concat([""])) {
    const full = path.resolve(root, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `File not found: ${p}` };
}

const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  const out = loadSolc().compile(input, { import: findImports });
  // No process.exit here: on a pipe stdout is asynchronous and exiting early
  // truncates large outputs (EZKL's verifiers produce >128 KiB of JSON).
  process.stdout.write(out);
});
