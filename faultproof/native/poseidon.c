/* circomlib's Poseidon over BN254's scalar field, 1 to 4 inputs (state width t = 2..5).

   The optimized form circomlib's poseidon.circom and circomlibjs's poseidon_opt.js compute (full
   rounds with the MDS matrix M, the switch matrix P, sparse partial rounds S), with their
   constants: faultproof/native/build.py reads circomlibjs's poseidon_constants_opt.json and writes
   them, in Montgomery form, into poseidon_constants.h next to the built library. This file holds
   no constant of its own besides the ones derived there.

   Field elements are 4 little-endian 64-bit limbs in Montgomery form (R = 2^256). Every value is
   kept fully reduced (< p); a row of a matrix product is summed as 512-bit products and reduced
   once, which is exact while t * p < 2^256 (t <= 5).

   The only entry points are fp_poseidon and fp_poseidon_many. They refuse (return nonzero) a
   width they do not know and an input >= p: they never reduce an input silently.
   Pure computation: no allocation, no I/O, no global state but the constant tables. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "poseidon_constants.h"

typedef uint64_t u64;
typedef unsigned __int128 u128;

/* acc (8 limbs) += a * b: the product into fresh limbs, then one carry chain (branch-free).
   acc stays below 2^512 for every use here. */
static inline void mul_acc(u64 acc[8], const u64 a[4], const u64 b[4]) {
    u64 w[8] = {0};
    for (int i = 0; i < 4; i++) {
        u64 carry = 0;
        for (int j = 0; j < 4; j++) {
            u128 c = (u128)a[i] * b[j] + w[i + j] + carry;
            w[i + j] = (u64)c;
            carry = (u64)(c >> 64);
        }
        w[i + 4] = carry;
    }
    u64 carry = 0;
    for (int k = 0; k < 8; k++) {
        u128 c = (u128)acc[k] + w[k] + carry;
        acc[k] = (u64)c;
        carry = (u64)(c >> 64);
    }
}

/* a -= p if a >= p (a < 2p), without a branch on the value. */
static inline void reduce_once(u64 a[4]) {
    u64 d[4], borrow = 0;
    for (int i = 0; i < 4; i++) {
        u128 x = (u128)a[i] - FP_P[i] - borrow;
        d[i] = (u64)x;
        borrow = (u64)(x >> 64) & 1;
    }
    u64 keep = 0 - borrow; /* all ones when a < p */
    for (int i = 0; i < 4; i++) a[i] = (a[i] & keep) | (d[i] & ~keep);
}

static inline int geq_p(const u64 a[4]) {
    for (int i = 3; i >= 0; i--) {
        if (a[i] != FP_P[i]) return a[i] > FP_P[i];
    }
    return 1;
}

/* out = T * R^-1 mod p, for T < p * R (Montgomery reduction). */
static inline void redc(u64 out[4], u64 t[8]) {
    u64 hi = 0;
    for (int i = 0; i < 4; i++) {
        u64 m = t[i] * FP_NP0;
        u64 carry = 0;
        for (int j = 0; j < 4; j++) {
            u128 c = (u128)m * FP_P[j] + t[i + j] + carry;
            t[i + j] = (u64)c;
            carry = (u64)(c >> 64);
        }
        u128 c = (u128)t[i + 4] + carry + hi;
        t[i + 4] = (u64)c;
        hi = (u64)(c >> 64);
    }
    memcpy(out, t + 4, 32);
    reduce_once(out);
}

static inline void fmul(u64 out[4], const u64 a[4], const u64 b[4]) {
    u64 t[8] = {0};
    mul_acc(t, a, b);
    redc(out, t);
}

static inline void fadd(u64 out[4], const u64 a[4], const u64 b[4]) {
    u64 carry = 0;
    for (int i = 0; i < 4; i++) {
        u128 c = (u128)a[i] + b[i] + carry;
        out[i] = (u64)c;
        carry = (u64)(c >> 64);
    }
    reduce_once(out); /* a + b < 2p < 2^256: no carry out of the top limb */
}

static inline void pow5(u64 x[4]) {
    u64 x2[4], x4[4];
    fmul(x2, x, x);
    fmul(x4, x2, x2);
    fmul(x, x4, x);
}

/* out[i] = sum_j m[i*t + j] * in[j]; m is row-major in output order. */
static inline void mix(int t, u64 out[][4], const u64 in[][4], const u64 m[][4]) {
    for (int i = 0; i < t; i++) {
        u64 acc[8] = {0};
        for (int j = 0; j < t; j++) mul_acc(acc, m[i * t + j], in[j]);
        redc(out[i], acc);
    }
}

static void permute(int t, u64 st[][4]) {
    const fp_params *pr = &FP_PARAMS[t - 2];
    const u64 (*C)[4] = pr->c;
    const u64 (*S)[4] = pr->s;
    const int half = FP_ROUNDS_F / 2, np = pr->rounds_p;
    u64 tmp[5][4];

    for (int i = 0; i < t; i++) fadd(st[i], st[i], C[i]);
    for (int r = 0; r < half; r++) {
        for (int i = 0; i < t; i++) {
            pow5(st[i]);
            fadd(st[i], st[i], C[(r + 1) * t + i]);
        }
        mix(t, tmp, (const u64 (*)[4])st, r == half - 1 ? pr->p : pr->m);
        memcpy(st, tmp, (size_t)t * 32);
    }
    for (int r = 0; r < np; r++) {
        const u64 (*s)[4] = S + (2 * t - 1) * r;
        pow5(st[0]);
        fadd(st[0], st[0], C[(half + 1) * t + r]);
        u64 acc[8] = {0};
        for (int j = 0; j < t; j++) mul_acc(acc, s[j], st[j]);
        for (int k = 1; k < t; k++) {
            u64 prod[4];
            fmul(prod, st[0], s[t + k - 1]);
            fadd(st[k], st[k], prod);
        }
        redc(st[0], acc);
    }
    for (int r = 0; r < half; r++) {
        for (int i = 0; i < t; i++) {
            pow5(st[i]);
            if (r < half - 1) fadd(st[i], st[i], C[(half + 1) * t + np + r * t + i]);
        }
        mix(t, tmp, (const u64 (*)[4])st, pr->m);
        memcpy(st, tmp, (size_t)t * 32);
    }
}

static inline void from_be(u64 out[4], const unsigned char *b) {
    for (int i = 0; i < 4; i++) {
        u64 v = 0;
        for (int k = 0; k < 8; k++) v = (v << 8) | b[(3 - i) * 8 + k];
        out[i] = v;
    }
}

static inline void to_be(unsigned char *b, const u64 in[4]) {
    for (int i = 0; i < 4; i++) {
        u64 v = in[i];
        for (int k = 7; k >= 0; k--) { b[(3 - i) * 8 + k] = (unsigned char)v; v >>= 8; }
    }
}

/* out (32 bytes BE) = Poseidon(n_inputs values, 32 bytes BE each, concatenated).
   Returns 0, 1 for an unsupported width, 2 for an input >= p. */
int fp_poseidon(const unsigned char *in, size_t n_inputs, unsigned char *out) {
    if (n_inputs < 1 || n_inputs > FP_MAX_INPUTS) return 1;
    int t = (int)n_inputs + 1;
    u64 st[5][4] = {{0}};
    for (int i = 1; i < t; i++) {
        u64 x[4];
        from_be(x, in + (size_t)(i - 1) * 32);
        if (geq_p(x)) return 2;
        fmul(st[i], x, FP_R2);
    }
    permute(t, st);
    u64 one[4] = {1, 0, 0, 0}, r[4];
    fmul(r, st[0], one);
    to_be(out, r);
    return 0;
}

/* `count` hashes of the same width: inputs and outputs back to back. Stops at the first refusal
   and returns its code; the outputs before it are written. */
int fp_poseidon_many(const unsigned char *in, size_t n_inputs, size_t count, unsigned char *out) {
    for (size_t k = 0; k < count; k++) {
        int rc = fp_poseidon(in + k * n_inputs * 32, n_inputs, out + k * 32);
        if (rc) return rc;
    }
    return 0;
}
