/* circomlib's Poseidon over BN254's scalar field, 1 to 4 inputs (state width t = 2..5).

   The optimized form circomlib's poseidon.circom and circomlibjs's poseidon_opt.js compute (full
   rounds with the MDS matrix M, the switch matrix P, sparse partial rounds S), with their
   constants: faultproof/native/build.py reads circomlibjs's poseidon_constants_opt.json and writes
   them, in Montgomery form, into poseidon_constants.h next to the built library. This file holds
   no constant of its own besides the ones derived there.

   Field elements are 4 little-endian 64-bit limbs in Montgomery form (R = 2^256). Every value is
   kept fully reduced (< p); a row of a matrix product is summed as 512-bit products and reduced
   once, which is exact while t * p < 2^256 (t <= 5). x86-64 only: the products use the carry
   intrinsics, and the Montgomery multiplication uses MULX/ADCX/ADOX when the CPU has them
   (checked once at load; otherwise the C version, which the tests also build and check).

   The only entry point is fp_poseidon. It refuses (returns nonzero) a width it does not know and
   an input >= p: it never reduces an input silently. (A batch entry point saved ~1.5 us of ctypes
   call per hash of ~15-25: not worth a second API.)
   Pure computation: no allocation, no I/O, no global state but the constant tables and the CPU
   flag set once at load; safe to call from several threads at once. */

#include <cpuid.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <x86intrin.h>

#include "poseidon_constants.h"

typedef uint64_t u64;
typedef unsigned __int128 u128;

/* acc (8 limbs) += a * b: the product into fresh limbs, then one carry chain (branch-free).
   acc stays below 2^512 for every use here. */
static inline void mul_acc(u64 acc[8], const u64 a[4], const u64 b[4]) {
    unsigned long long w[8];
    u64 lo[4], hi[4];
    unsigned char c;
    for (int j = 0; j < 4; j++) { u128 p = (u128)a[0] * b[j]; lo[j] = (u64)p; hi[j] = (u64)(p >> 64); }
    w[0] = lo[0];
    c = _addcarry_u64(0, lo[1], hi[0], &w[1]);
    c = _addcarry_u64(c, lo[2], hi[1], &w[2]);
    c = _addcarry_u64(c, lo[3], hi[2], &w[3]);
    w[4] = hi[3] + c;
    for (int i = 1; i < 4; i++) {
        for (int j = 0; j < 4; j++) { u128 p = (u128)a[i] * b[j]; lo[j] = (u64)p; hi[j] = (u64)(p >> 64); }
        c = _addcarry_u64(0, w[i], lo[0], &w[i]);
        c = _addcarry_u64(c, w[i + 1], lo[1], &w[i + 1]);
        c = _addcarry_u64(c, w[i + 2], lo[2], &w[i + 2]);
        c = _addcarry_u64(c, w[i + 3], lo[3], &w[i + 3]);
        unsigned long long top = c;
        c = _addcarry_u64(0, w[i + 1], hi[0], &w[i + 1]);
        c = _addcarry_u64(c, w[i + 2], hi[1], &w[i + 2]);
        c = _addcarry_u64(c, w[i + 3], hi[2], &w[i + 3]);
        _addcarry_u64(c, top, hi[3], &w[i + 4]);
    }
    c = 0;
    for (int k = 0; k < 8; k++) c = _addcarry_u64(c, acc[k], w[k], (unsigned long long *)&acc[k]);
}

/* a -= p if a >= p (a < 2p). Like light-poseidon, nothing here claims constant time. */
static inline void reduce_once(u64 a[4]) {
    unsigned long long d0, d1, d2, d3;
    unsigned char b = _subborrow_u64(0, a[0], FP_P[0], &d0);
    b = _subborrow_u64(b, a[1], FP_P[1], &d1);
    b = _subborrow_u64(b, a[2], FP_P[2], &d2);
    b = _subborrow_u64(b, a[3], FP_P[3], &d3);
    if (!b) { a[0] = d0; a[1] = d1; a[2] = d2; a[3] = d3; } /* gcc makes these conditional moves */
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

static inline void fmul_c(u64 out[4], const u64 a[4], const u64 b[4]) {
    u64 t[8] = {0};
    mul_acc(t, a, b);
    redc(out, t);
}

/* Montgomery product with MULX/ADCX/ADOX (BMI2 + ADX): CIOS without the final carry word, valid
   because p's top limb is below 2^62. Two carry chains (CF, OF) run side by side. */
#define FP_ADX_ROUND(OFF)                                   \
    "xorl %%eax, %%eax\n\t"                                 \
    "movq " OFF "(%[y]), %%rdx\n\t"                         \
    "mulxq 0(%[x]), %%rax, %[hi]\n\t"                       \
    "adoxq %%rax, %[t0]\n\t"                                \
    "adcxq %[hi], %[t1]\n\t"                                \
    "mulxq 8(%[x]), %%rax, %[hi]\n\t"                       \
    "adoxq %%rax, %[t1]\n\t"                                \
    "adcxq %[hi], %[t2]\n\t"                                \
    "mulxq 16(%[x]), %%rax, %[hi]\n\t"                      \
    "adoxq %%rax, %[t2]\n\t"                                \
    "adcxq %[hi], %[t3]\n\t"                                \
    "mulxq 24(%[x]), %%rax, %[a]\n\t"                       \
    "adoxq %%rax, %[t3]\n\t"                                \
    "movl $0, %%eax\n\t"                                    \
    "adcxq %%rax, %[a]\n\t"                                 \
    "adoxq %%rax, %[a]\n\t"                                 \
    "movq %[t0], %%rdx\n\t"                                 \
    "imulq %[inv], %%rdx\n\t"                               \
    "xorl %%eax, %%eax\n\t"                                 \
    "mulxq 0(%[q]), %%rax, %[hi]\n\t"                       \
    "adcxq %[t0], %%rax\n\t"                                \
    "movq %[hi], %[t0]\n\t"                                 \
    "adcxq %[t1], %[t0]\n\t"                                \
    "mulxq 8(%[q]), %%rax, %[t1]\n\t"                       \
    "adoxq %%rax, %[t0]\n\t"                                \
    "adcxq %[t2], %[t1]\n\t"                                \
    "mulxq 16(%[q]), %%rax, %[t2]\n\t"                      \
    "adoxq %%rax, %[t1]\n\t"                                \
    "adcxq %[t3], %[t2]\n\t"                                \
    "mulxq 24(%[q]), %%rax, %[t3]\n\t"                      \
    "adoxq %%rax, %[t2]\n\t"                                \
    "movl $0, %%eax\n\t"                                    \
    "adcxq %%rax, %[t3]\n\t"                                \
    "adoxq %%rax, %[t3]\n\t"                                \
    "addq %[a], %[t3]\n\t"

static inline void fmul_adx(u64 z[4], const u64 x[4], const u64 y[4]) {
    u64 t0 = 0, t1 = 0, t2 = 0, t3 = 0, a, hi;
    __asm__(FP_ADX_ROUND("0") FP_ADX_ROUND("8") FP_ADX_ROUND("16") FP_ADX_ROUND("24")
            : [t0] "+&r"(t0), [t1] "+&r"(t1), [t2] "+&r"(t2), [t3] "+&r"(t3), [a] "=&r"(a), [hi] "=&r"(hi)
            : [x] "r"(x), [y] "r"(y), [q] "r"(FP_P), [inv] "m"(FP_NP0)
            : "rax", "rdx", "cc", "memory");
    z[0] = t0; z[1] = t1; z[2] = t2; z[3] = t3;
    reduce_once(z);
}

/* Set once at load: the CPU has BMI2 and ADX (CPUID leaf 7: EBX bits 8 and 19). */
static int fp_have_adx;

__attribute__((constructor)) static void fp_detect_cpu(void) {
#ifndef FP_PORTABLE /* built with -DFP_PORTABLE: the C path only (the tests check both) */
    unsigned a, b, c, d;
    fp_have_adx = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 8)) && (b & (1u << 19));
#endif
}

static inline void fmul(u64 out[4], const u64 a[4], const u64 b[4]) {
    if (fp_have_adx) fmul_adx(out, a, b);
    else fmul_c(out, a, b);
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

static inline __attribute__((always_inline)) void permute(const int t, u64 st[][4]) {
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

/* The widths of the chain step (t = 5) and the blinding value (t = 3) get their own copy, with
   constant loop bounds (~15% faster); the others share one. */
static void permute_any(int t, u64 st[][4]) { permute(t, st); }

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
    if (t == 5) permute(5, st);
    else if (t == 3) permute(3, st);
    else permute_any(t, st);
    u64 one[4] = {1, 0, 0, 0}, r[4];
    fmul(r, st[0], one);
    to_be(out, r);
    return 0;
}
