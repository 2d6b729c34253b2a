// Verify many Groth16 proofs with snarkjs's API in one node process (faultproof cross-checks and
// the "warm node process" benchmark baseline). Reads one JSON object on stdin:
//   {"snarkjs": "<path to snarkjs/build/main.cjs>", "vkey": {...}, "items": [{"proof", "public"}]}
// and prints {"results": [bool...], "seconds": <time spent verifying>} on stdout.
// snarkjs leaves worker threads alive, so this exits explicitly.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const snarkjs = require(req.snarkjs);
  const results = [];
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const t0 = process.hrtime.bigint();
  for (const item of req.items) {
    let ok = false;
    try {
      ok = await snarkjs.groth16.verify(req.vkey, item.public, item.proof, quiet);
    } catch (e) {
      ok = false;
    }
    results.push(ok === true);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ results, seconds }) + "\n");
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
    process.exit(1);
  },
);
