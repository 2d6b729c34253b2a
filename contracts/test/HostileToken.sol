// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.37;

// A hostile pool asset for the contract tests: when armed, every transfer it makes calls back into
// the pool with the calldata it was given (e.g. the same payout again) and records how that
// re-entry ended, then lets the outer transfer complete. A pool that is safe pays once and the
// recorded re-entry is refused with ReentrancyGuardReentrantCall.

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

contract HostileToken is ERC20 {
    address public target;
    bytes public reentry;
    bool public reentered;
    bool public reentrySucceeded;
    bytes public reentryRevert;

    constructor() ERC20("hostile", "HOST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function arm(address target_, bytes calldata reentry_) external {
        target = target_;
        reentry = reentry_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (target != address(0) && from == target && !reentered) {
            reentered = true;
            (bool ok, bytes memory ret) = target.call(reentry);
            reentrySucceeded = ok;
            reentryRevert = ret;
        }
    }
}
