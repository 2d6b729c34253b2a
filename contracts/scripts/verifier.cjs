// A Groth16 verifier in Solidity from a snarkjs verification key (stdin, JSON), rendered with the
// template snarkjs itself uses for `zkey export solidityverifier` (circuits/node_modules).
"use strict";
const fs = require("fs");
const path = require("path");
const snarkjsDir = path.resolve(__dirname, "..", "..", "circuits", "node_modules");
const ejs = require(path.join(snarkjsDir, "ejs"));
const template = fs.readFileSync(path.join(snarkjsDir, "snarkjs", "templates", "verifier_groth16.sol.ejs"), "utf8");
const vkey = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(ejs.render(template, vkey));
