"""The wide products' C: C = β C + op(A) op(B), row-major, by a BLAS when the caller found one, else by a packed,
register-blocked GEMM printed here.

Both were built and timed side by side (benchmarks/c_backend.py: one thread, float32, medians of 7 interleaved
rounds on a shared 2-core AMD EPYC with AVX-512; the bound is bench.py's): 784-256-10 relu/softmax B=1024
BLAS 10.35 ms, own GEMM 13.67 ms, bound 9.52 ms (1.09× and 1.44×); 1024-1024-1024 tanh B=256 37.4 and 45.7 ms,
bound 32.8 (1.14× and 1.39×). Alone, on the products' shapes, MKL ran 68-88 GFLOP/s and this GEMM 57-81. So a
BLAS is called where one is found (``_blas``: the MKL inside torch's wheels, the same one torch.mm and so the
bound's 1024³ rate run on), and this GEMM is the fallback, within about 1.3× of it.

Why a GEMM is written out at all: the kernel must run where no BLAS is found (``_blas``), and a wide layer's
products as plain loops (the narrow layers' ``_sum_of_rows``) ran at a third of a BLAS's rate. Why it is C text
and not SymPy nodes: it is the same few loops for every network (no expression of the program in it), and what
makes it fast is C's: vector types (GCC and Clang's ``vector_size``), a fixed MR × NR block of sums the
compiler keeps in registers, and panels packed contiguous. The blocking is the classic one (Goto and van de
Geijn, "Anatomy of high-performance matrix multiplication", 2008): B's KC × NC block packed once into NR-wide
panels (in L3 / L2), A's MC × KC block into MR-tall ones (L2), an MR × NR block of C summed over KC in
registers, one FMA a vector and pair of operands.
"""

from __future__ import annotations

MR = 6  # rows of C summed at once: 6 × 2 vectors = 12 accumulators, 2 loads of B and a broadcast of A in flight
KC = 256  # the sum's length per pass: a KC × NR panel of B (32 KiB for float with AVX-512) stays in L1
MC = 96  # rows of A packed at once (16 panels): 96 KiB of float in L2
NC = 1024  # columns of B packed at once: KC × NC reals (1 MiB float) in L2/L3


def pack_reals() -> int:
    """Reals of the packing space one GEMM call needs (its A and B blocks, each NR-padded)."""
    return MC * KC + KC * (NC + 64)


def source(real: str, suffix: str) -> str:
    """The C of ``chainrule_gemm_<suffix>`` for reals of C type ``real`` (``float`` or ``double``)."""
    blas_args = ", ".join(
        ["const char *, const char *, const int *, const int *, const int *", f"const {real} *"]
        + [f"const {real} *, const int *"] * 2
        + [f"const {real} *, {real} *, const int *"]
    )
    return f"""
/* Fortran BLAS's {real} gemm: column-major, every argument a pointer */
typedef void (*chainrule_blas_{suffix})({blas_args});
typedef {real} chainrule_vector_{suffix}
    __attribute__((vector_size(CHAINRULE_VECTOR_BYTES), aligned(sizeof({real}))));  /* loads need no alignment */
enum {{
    CHAINRULE_LANES_{suffix} = CHAINRULE_VECTOR_BYTES / sizeof({real}),
    CHAINRULE_NR_{suffix} = 2 * CHAINRULE_LANES_{suffix}  /* columns of C summed at once: two vectors */
}};

/* the MR × NR block of C at (i0, j0) over one packed pass: a[p*MR + i], b[p*NR + j]; first: β C (or 0) is where
   the sums start, else the C already there */
static inline void chainrule_micro_{suffix}(int64_t kc, const {real} *restrict a, const {real} *restrict b,
                                            int64_t mr, int64_t nr, {real} *restrict C, int64_t ldc, int first,
                                            {real} beta) {{
    typedef chainrule_vector_{suffix} vector;
    enum {{ L = CHAINRULE_LANES_{suffix}, NR = CHAINRULE_NR_{suffix} }};
    vector acc[{MR}][2] = {{{{0}}}};
    for (int64_t p = 0; p < kc; ++p) {{
        const vector b0 = *(const vector *)(b + p*NR), b1 = *(const vector *)(b + p*NR + L);
        for (int i = 0; i < {MR}; ++i) {{
            const vector ai = (vector){{0}} + a[p*{MR} + i];  /* a broadcast */
            acc[i][0] += ai*b0;
            acc[i][1] += ai*b1;
        }}
    }}
    {real} sums[{MR}][NR];
    memcpy(sums, acc, sizeof sums);
    for (int64_t i = 0; i < mr; ++i) {{
        {real} *restrict c = C + i*ldc;
        if (!first)
            for (int64_t j = 0; j < nr; ++j) c[j] += sums[i][j];
        else if (beta == 0)  /* C is not read: it may hold anything, NaN included */
            for (int64_t j = 0; j < nr; ++j) c[j] = sums[i][j];
        else
            for (int64_t j = 0; j < nr; ++j) c[j] = beta*c[j] + sums[i][j];
    }}
}}

/* C[m][n] (row-major, ldc) = β C + op(A) op(B): op(A)[i][p] is A[p*lda + i] when ta, else A[i*lda + p]; op(B)[p][j]
   is Bm[j*ldb + p] when tb, else Bm[p*ldb + j]. blas: the address of a Fortran {real} gemm, or NULL (then pack:
   {pack_reals()} reals of scratch). A row-major C is a column-major Cᵀ = op(B)ᵀ op(A)ᵀ: the BLAS gets B first. */
static void chainrule_gemm_{suffix}(const void *blas, int ta, int tb, int64_t m, int64_t n, int64_t k,
                                    const {real} *A, int64_t lda, const {real} *Bm, int64_t ldb, {real} beta,
                                    {real} *C, int64_t ldc, {real} *pack) {{
    enum {{ NR = CHAINRULE_NR_{suffix} }};
    if (m <= 0 || n <= 0) return;
    if (blas != NULL) {{
        const int M = (int)m, N = (int)n, K = (int)k, LDA = (int)lda, LDB = (int)ldb, LDC = (int)ldc;
        const {real} one = 1;
        ((chainrule_blas_{suffix})blas)(tb ? "T" : "N", ta ? "T" : "N", &N, &M, &K, &one, Bm, &LDB, A, &LDA, &beta,
                                        C, &LDC);
        return;
    }}
    {real} *const packed_a = pack, *const packed_b = pack + {MC * KC};
    if (k <= 0) {{  /* no terms: C = β C */
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) C[i*ldc + j] = beta == 0 ? 0 : beta*C[i*ldc + j];
        return;
    }}
    for (int64_t jc = 0; jc < n; jc += {NC}) {{
        const int64_t nc = n - jc < {NC} ? n - jc : {NC};
        for (int64_t pc = 0; pc < k; pc += {KC}) {{
            const int64_t kc = k - pc < {KC} ? k - pc : {KC};
            for (int64_t jr = 0; jr < nc; jr += NR) {{  /* B's block, NR columns a panel, zeros past n */
                {real} *restrict panel = packed_b + jr*kc;
                for (int64_t p = 0; p < kc; ++p)
                    for (int64_t j = 0; j < NR; ++j) {{
                        const int64_t col = jc + jr + j, row = pc + p;
                        panel[p*NR + j] = jr + j >= nc ? 0 : tb ? Bm[col*ldb + row] : Bm[row*ldb + col];
                    }}
            }}
            for (int64_t ic = 0; ic < m; ic += {MC}) {{
                const int64_t mc = m - ic < {MC} ? m - ic : {MC};
                for (int64_t ir = 0; ir < mc; ir += {MR}) {{  /* A's block, MR rows a panel, zeros past m */
                    {real} *restrict panel = packed_a + ir*kc;
                    for (int64_t p = 0; p < kc; ++p)
                        for (int64_t i = 0; i < {MR}; ++i) {{
                            const int64_t row = ic + ir + i, col = pc + p;
                            panel[p*{MR} + i] = ir + i >= mc ? 0 : ta ? A[col*lda + row] : A[row*lda + col];
                        }}
                }}
                for (int64_t jr = 0; jr < nc; jr += NR)
                    for (int64_t ir = 0; ir < mc; ir += {MR})
                        chainrule_micro_{suffix}(kc, packed_a + ir*kc, packed_b + jr*kc,
                                                 mc - ir < {MR} ? mc - ir : {MR}, nc - jr < NR ? nc - jr : NR,
                                                 C + (ic + ir)*ldc + jc + jr, ldc, pc == 0, beta);
            }}
        }}
    }}
}}
"""


PRELUDE = """
/* the vector the packed GEMM's sums are kept in: the widest the target has (-march=native) */
#if defined(__AVX512F__)
#define CHAINRULE_VECTOR_BYTES 64
#elif defined(__AVX__)
#define CHAINRULE_VECTOR_BYTES 32
#else
#define CHAINRULE_VECTOR_BYTES 16
#endif
"""
