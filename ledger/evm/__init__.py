"""The EVM settlement backend (DESIGN §13): build (solc-js), node (anvil), typed (EIP-712), pool (web3)."""
