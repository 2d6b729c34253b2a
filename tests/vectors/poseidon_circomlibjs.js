// Reference Poseidon values from circomlibjs (the JavaScript twin of circomlib's circuits).
// Reads a JSON array of input arrays (decimal strings) on stdin, prints the hashes as decimal strings.
// Used by tests/test_vectors.py to check faultproof.chain against the reference, live.
const path = require("path");
const { buildPoseidon } = require(path.join(__dirname, "../../circuits/node_modules/circomlibjs"));

async function main() {
  let raw = "";
  for await (const chunk of process.stdin) raw += chunk;
  const inputs = JSON.parse(raw);
  const poseidon = await buildPoseidon();
  const out = inputs.map((xs) => poseidon.F.toString(poseidon(xs.map((x) => BigInt(x)))));
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(1); });
