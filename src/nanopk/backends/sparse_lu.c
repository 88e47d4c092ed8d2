/*
 * Sparse LU of CVODE's Newton matrix M = I - gamma*J, planned for one model by
 * nanopk.backends.sparse_lu, which prints the index tables these loops read and the
 * solve, nanopk_lu_solve (NANOPK_SPARSE_LU 1), or nothing (0: the model keeps
 * SUNDIALS' dense LU and these are stubs).  Included in the model's driver after the tables; needs NANOPK_N, <math.h>
 * and <string.h>.
 */
#if NANOPK_SPARSE_LU
/*
 * The sparse LU (nanopk.backends.sparse_lu): LU = P M P^T without row exchanges, over
 * the planned entries only.  A is CVODE's column-major N x N matrix; m receives M's
 * structural non-zeros (kept for the backward error), lu the factors, with 1/u_kk on
 * the diagonal.  Returns 0, or 1 at a zero or non-finite pivot.
 */
static int nanopk_lu_factor(const double *A, double *lu, double *m)
{
    memset(lu, 0, sizeof(double) * NANOPK_LU_NNZ); /* fill-in starts at zero */
    for (int q = 0; q < NANOPK_M_NNZ; q++)
        lu[m_slot[q]] = m[q] = A[m_source[q]];
    for (int k = 0; k < NANOPK_N; k++) {
        const int d = lu_diag[k];
        if (!(isfinite(lu[d]) && lu[d] != 0.0)) return 1;
        lu[d] = 1.0 / lu[d];
        for (int e = l_start[k]; e < l_start[k + 1]; e++)
            lu[l_slot[e]] *= lu[d];
        for (int e = update_start[k]; e < update_start[k + 1]; e++)
            lu[update_target[e]] -= lu[update_left[e]] * lu[update_right[e]];
    }
    return 0;
}

/* Componentwise backward error of x as a solution of M x = b (Oettli & Prager 1964):
   max_i |b - M x|_i / (|M| |x| + |b|)_i; infinite if anything is NaN.  With a low-rank
   update, M = M_d - gamma F E, m holds M_d and c = gamma F E x, which enters r and,
   as |c|, the denominator (the error of M_d and of the product, not of F and E apart). */
static double nanopk_lu_backward_error(const double *m, const double *x, const double *b, const double *c)
{
    double worst = 0.0;
    for (int i = 0; i < NANOPK_N; i++) {
        double r = b[i] + (c ? c[i] : 0.0), s = fabs(b[i]) + (c ? fabs(c[i]) : 0.0);
        for (int q = m_start[i]; q < m_start[i + 1]; q++) {
            r -= m[q] * x[m_col[q]];
            s += fabs(m[q] * x[m_col[q]]);
        }
        const double e = s > 0.0 ? fabs(r) / s : (r == 0.0 ? 0.0 : INFINITY);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}
#else
/* M = I - gamma*J is too dense for a sparse elimination to pay: SUNDIALS' dense LU only. */
#define NANOPK_LU_NNZ 1
#define NANOPK_M_NNZ 1
static int nanopk_lu_factor(const double *A, double *lu, double *m) { (void)A; (void)lu; (void)m; return 1; }
static void nanopk_lu_solve(const double *lu, double *x) { (void)lu; (void)x; }
static double nanopk_lu_backward_error(const double *m, const double *x, const double *b, const double *c)
{
    (void)m; (void)x; (void)b; (void)c;
    return INFINITY;
}
#endif

/* For the tests: factor A (N x N, column-major) with the sparse LU, overwrite x with
   A^-1 x and return the backward error of that solution (-1 if it declined). */
double nanopk_lu_check(const double *A, double *x)
{
    double lu[NANOPK_LU_NNZ], m[NANOPK_M_NNZ], b[NANOPK_N];
    if (nanopk_lu_factor(A, lu, m) != 0) return -1.0;
    memcpy(b, x, sizeof b);
    nanopk_lu_solve(lu, x);
    return nanopk_lu_backward_error(m, x, b, NULL);
}
