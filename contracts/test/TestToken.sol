// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.37;

// The pool asset for the devnet and tests: a plain OpenZeppelin ERC-20 that its deployer can mint.
// (Not used on a real chain, where the pool takes an existing stablecoin.)

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

contract TestToken is ERC20 {
    address public immutable minter;

    constructor() ERC20("faultproof test unit", "FPT") {
        minter = msg.sender;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == minter, "not the minter");
        _mint(to, amount);
    }
}
