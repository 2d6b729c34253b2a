pragma circom 2.0.0;

/*
 * faultproof malfunction statement (public-signal layout version 1).
 *
 * Over a window of n readings, proves knowledge of private readings r[i] (enc()-encoded),
 * timestamps t[i] and blinding values s[i] such that
 *
 *   c_i = Poseidon(c_{i-1}, t_i, r_i, s_i)   c_0 = c_start, c_n = c_end   (circomlib Poseidon(4))
 *   t_start < t_1 < ... < t_n = t_end < 2^48,   t_start < 2^48
 *   0 <= r_i < 2^32                              (r_i = enc(reading) = reading + 2^31)
 *   the trigger `kind` holds with (T, K, lo, hi, G), and those parameters are valid for it.
 *
 * Public signals, in this order: c_start, c_end, t_start, t_end, kind, T, K, lo, hi, G.
 *
 * Triggers (all values enc()-encoded u32 except K, G):
 *   1 count:   #{i : r_i > T} >= K
 *   2 run:     some run of >= K consecutive i with r_i > T
 *   3 stuck:   some run of >= K consecutive equal readings
 *   4 outside: #{i : r_i < lo or r_i > hi} >= K
 *   5 dropout: some i in 1..n with t_i - t_{i-1} >= G, where t_0 = t_start
 *
 * Parameter rules, enforced here (a parameter set that makes the trigger always true is refused):
 *   kind in {1..5}; kinds 1,2,4: 1 <= K <= n; kind 3: 2 <= K <= n; kind 5: K = 0;
 *   kind 4: lo <= hi; kind 5: 2 <= G < 2^48; T, lo, hi < 2^32;
 *   unused parameters are 0 (kinds 1,2: lo=hi=G=0; 3: T=lo=hi=G=0; 4: T=G=0; 5: T=K=lo=hi=0).
 *
 * Every comparator input is range-checked (Num2Bits) before it reaches a circomlib LessThan.
 *
 * Template parameter KINDS is a bit mask of the trigger kinds compiled in (bit k-1 for kind k):
 * 31 = every kind (the shipped circuits). A single-kind mask builds a smaller circuit with the same
 * public signals and inputs, used only to measure the cost of the shared circuit.
 *
 * Private inputs: r[n], t[n], s[n], drop_sel[n]. drop_sel is a one-hot index of the gap that meets
 * G (kind 5); for the other kinds any one-hot vector (the witness builder uses the first index).
 */

include "poseidon.circom";
include "bitify.circom";
include "comparators.circom";

// Smallest b with v < 2^b.
function fpBits(v) {
    var b = 0;
    while ((1 << b) <= v) {
        b++;
    }
    return b;
}

template Malfunction(n, KINDS) {
    assert(n >= 2);
    assert(KINDS > 0 && KINDS < 32);

    // ---- public (declaration order = public-signal order) ----
    signal input c_start;
    signal input c_end;
    signal input t_start;
    signal input t_end;
    signal input kind;
    signal input T;
    signal input K;
    signal input lo;
    signal input hi;
    signal input G;

    // ---- private ----
    signal input r[n];
    signal input t[n];
    signal input s[n];
    signal input drop_sel[n];

    var HAS1 = (KINDS >> 0) & 1;
    var HAS2 = (KINDS >> 1) & 1;
    var HAS3 = (KINDS >> 2) & 1;
    var HAS4 = (KINDS >> 3) & 1;
    var HAS5 = (KINDS >> 4) & 1;
    var KB = fpBits(n);  // K, counts and run lengths are <= n < 2^KB

    // ---- kind: one-hot over the compiled-in kinds ----
    signal isK[5];
    var ksum = 0;
    var kidx = 0;
    for (var j = 0; j < 5; j++) {
        if ((KINDS >> j) & 1) {
            isK[j] <-- (kind == j + 1) ? 1 : 0;
            isK[j] * (isK[j] - 1) === 0;
        } else {
            isK[j] <== 0;
        }
        ksum += isK[j];
        kidx += (j + 1) * isK[j];
    }
    ksum === 1;
    kidx === kind;

    // ---- parameter ranges and validity ----
    component rngT = Num2Bits(32);
    rngT.in <== T;
    component rngLo = Num2Bits(32);
    rngLo.in <== lo;
    component rngHi = Num2Bits(32);
    rngHi.in <== hi;
    component rngG = Num2Bits(48);
    rngG.in <== G;
    component rngTs = Num2Bits(48);
    rngTs.in <== t_start;
    component rngTe = Num2Bits(48);
    rngTe.in <== t_end;

    // Unused parameters are zero.
    T * (isK[2] + isK[3] + isK[4]) === 0;
    lo * (1 - isK[3]) === 0;
    hi * (1 - isK[3]) === 0;
    G * (1 - isK[4]) === 0;
    K * isK[4] === 0;

    // minK <= K <= n with minK = 1 (kinds 1,2,4), 2 (kind 3), 0 (kind 5, where K = 0 above).
    component kLow = Num2Bits(KB);
    kLow.in <== K - 1 - isK[2] + isK[4];
    component kHigh = Num2Bits(KB);
    kHigh.in <== n - K;

    // lo <= hi (both < 2^32; 0 = 0 for the kinds that do not use them).
    component loHi = Num2Bits(32);
    loHi.in <== hi - lo;

    // Kind 5: G >= 2, i.e. G - bit0(G) != 0 (G < 2^48 by rngG). For other kinds the right side
    // is 0 and gInv = 0 satisfies it; the hint picks that so the "unused G is 0" rule above is
    // what refuses a non-zero G there (and the tests can see it does).
    signal gInv;
    gInv <-- (isK[4] != 0 && G - rngG.out[0] != 0) ? 1 / (G - rngG.out[0]) : 0;
    (G - rngG.out[0]) * gInv === isK[4];

    // ---- chain and timestamps ----
    component h[n];
    component dt[n];
    var prevT = t_start;
    for (var i = 0; i < n; i++) {
        // t_i > t_{i-1}: t_i - t_{i-1} - 1 in [0, 2^48). With t_start, t_end < 2^48 and t_n = t_end
        // every t_i is then an integer in (t_start, t_end], hence < 2^48.
        dt[i] = Num2Bits(48);
        dt[i].in <== t[i] - prevT - 1;

        h[i] = Poseidon(4);
        h[i].inputs[0] <== i == 0 ? c_start : h[i - 1].out;
        h[i].inputs[1] <== t[i];
        h[i].inputs[2] <== r[i];
        h[i].inputs[3] <== s[i];
        prevT = t[i];
    }
    h[n - 1].out === c_end;
    t[n - 1] === t_end;

    // ---- readings: 32-bit range, threshold flags ----
    component rngR[n];
    for (var i = 0; i < n; i++) {
        rngR[i] = Num2Bits(32);
        rngR[i].in <== r[i];
    }

    // flag_i = [r_i > T + hi] + [r_i < lo]. For kinds 1,2 (lo = hi = 0) that is [r_i > T]; for
    // kind 4 (T = 0, lo <= hi) it is [r_i outside [lo, hi]] (the two cannot both hold).
    var NEEDFLAG = HAS1 + HAS2 + HAS4;
    component gtX[n];
    component ltLo[n];
    var flag[n];
    for (var i = 0; i < n; i++) {
        flag[i] = 0;
        if (NEEDFLAG > 0) {
            gtX[i] = LessThan(32);
            gtX[i].in[0] <== T + hi;  // < 2^32: T and hi are < 2^32 and one of them is 0
            gtX[i].in[1] <== r[i];
            flag[i] += gtX[i].out;
        }
        if (HAS4) {
            ltLo[i] = LessThan(32);
            ltLo[i].in[0] <== r[i];
            ltLo[i].in[1] <== lo;
            flag[i] += ltLo[i].out;
        }
    }

    // ---- kinds 1, 4: count >= K ----
    if (HAS1 + HAS4 > 0) {
        var count = 0;
        for (var i = 0; i < n; i++) {
            count += flag[i];
        }
        component cLt = LessThan(KB);  // count, K <= n < 2^KB
        cLt.in[0] <== count;
        cLt.in[1] <== K;
        (isK[0] + isK[3]) * cLt.out === 0;
    }

    // ---- kinds 2, 3: a run reaches the target length ----
    // x_i = flag_i (kind 2) or [r_i == r_{i-1}] (kind 3, x_1 = 0); run_i = x_i * (run_{i-1} + 1);
    // target = K (kind 2) or K - 1 (kind 3: K equal readings are K - 1 equal neighbours).
    // Runs grow by one, so a run >= target exists iff some run_i == target iff
    // prod_i (run_i - target) == 0 (a product of non-zero field elements is non-zero).
    if (HAS2 + HAS3 > 0) {
        component eq[n];
        signal x[n];
        signal run[n];
        signal prod[n];
        var target = K - isK[2];
        for (var i = 0; i < n; i++) {
            if (HAS3) {
                if (i == 0) {
                    x[i] <== flag[i] * (1 - isK[2]);
                } else {
                    eq[i] = IsEqual();
                    eq[i].in[0] <== r[i];
                    eq[i].in[1] <== r[i - 1];
                    x[i] <== flag[i] + isK[2] * (eq[i].out - flag[i]);
                }
            } else {
                x[i] <== flag[i];
            }
            if (i == 0) {
                run[i] <== x[i];
                prod[i] <== run[i] - target;
            } else {
                run[i] <== x[i] * (run[i - 1] + 1);
                prod[i] <== prod[i - 1] * (run[i] - target);
            }
        }
        (isK[1] + isK[2]) * prod[n - 1] === 0;
    }

    // ---- kind 5: the selected gap is >= G ----
    if (HAS5) {
        signal selGap[n];
        var selSum = 0;
        var gapSum = 0;
        for (var i = 0; i < n; i++) {
            drop_sel[i] * (drop_sel[i] - 1) === 0;
            selSum += drop_sel[i];
            selGap[i] <== drop_sel[i] * (t[i] - (i == 0 ? t_start : t[i - 1]));
            gapSum += selGap[i];
        }
        selSum === 1;
        component gLt = LessThan(48);  // gap in [1, 2^48), G < 2^48
        gLt.in[0] <== gapSum;
        gLt.in[1] <== G;
        isK[4] * gLt.out === 0;
    }
}
