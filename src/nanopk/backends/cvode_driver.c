/*
 * nanopk CVODE driver: integrates dy/dt = f(t, y, p) with SUNDIALS CVODE (BDF,
 * dense direct solver, analytic Jacobian) and writes the states at the output times.
 * nanopk.backends.cvode inserts the model's f, observables and initial state, and
 * compiles the Jacobian J as a second translation unit.
 *
 * SUNDIALS headers are not shipped with the scikit-sundae wheel, so the handful of
 * declarations used here are written out below; they follow the SUNDIALS 7 C API
 * (sunrealtype = double, sunindextype = int64, SUNComm = int without MPI).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef double sunrealtype;
typedef int64_t sunindextype;
typedef struct SUNContext_ *SUNContext;
typedef struct _generic_N_Vector *N_Vector;
typedef struct _generic_SUNMatrix *SUNMatrix;
typedef struct _generic_SUNLinearSolver *SUNLinearSolver;
typedef int (*CVRhsFn)(sunrealtype, N_Vector, N_Vector, void *);
typedef int (*CVLsJacFn)(sunrealtype, N_Vector, N_Vector, SUNMatrix, void *, N_Vector, N_Vector, N_Vector);

extern int SUNContext_Create(int comm, SUNContext *ctx);
extern int SUNContext_Free(SUNContext *ctx);
extern int SUNContext_ClearErrHandlers(SUNContext ctx);
extern N_Vector N_VNew_Serial(sunindextype n, SUNContext ctx);
extern void N_VDestroy(N_Vector v);
extern sunrealtype *N_VGetArrayPointer(N_Vector v);
extern SUNMatrix SUNDenseMatrix(sunindextype m, sunindextype n, SUNContext ctx);
extern sunrealtype *SUNDenseMatrix_Column(SUNMatrix A, sunindextype j);
extern void SUNMatDestroy(SUNMatrix A);
extern SUNLinearSolver SUNLinSol_Dense(N_Vector y, SUNMatrix A, SUNContext ctx);
extern SUNMatrix SUNBandMatrix(sunindextype n, sunindextype mu, sunindextype ml, SUNContext ctx);
extern sunrealtype *SUNBandMatrix_Column(SUNMatrix A, sunindextype j);
extern SUNLinearSolver SUNLinSol_Band(N_Vector y, SUNMatrix A, SUNContext ctx);
extern int SUNLinSolFree(SUNLinearSolver S);
extern int SUNLinSolSolve_Dense(SUNLinearSolver S, SUNMatrix A, N_Vector x, N_Vector b, sunrealtype tol);
extern N_Vector N_VNewEmpty_Serial(sunindextype n, SUNContext ctx);
extern void N_VSetArrayPointer(sunrealtype *data, N_Vector v);
extern void *CVodeCreate(int lmm, SUNContext ctx);
extern int CVodeInit(void *mem, CVRhsFn f, sunrealtype t0, N_Vector y0);
extern int CVodeSVtolerances(void *mem, sunrealtype rtol, N_Vector atol);
extern int CVodeSetUserData(void *mem, void *data);
extern int CVodeSetMaxNumSteps(void *mem, long mxsteps);
extern int CVodeSetStopTime(void *mem, sunrealtype tstop);
extern int CVodeSetLinearSolver(void *mem, SUNLinearSolver LS, SUNMatrix A);
extern int CVodeSetJacFn(void *mem, CVLsJacFn jac);
extern int CVode(void *mem, sunrealtype tout, N_Vector yout, sunrealtype *tret, int itask);
extern int CVodeGetNumSteps(void *mem, long *n);
extern int CVodeGetNumRhsEvals(void *mem, long *n);
extern void CVodeFree(void **mem);

#define SUN_BAND_ELEMENT(col, i, j) ((col)[(i) - (j)]) /* col = SUNBandMatrix_Column(A, j) */
#define CV_BDF 2
#define CV_NORMAL 1

void nanopk_rhs(double t, const double *y, double *dydt, const double *p)
{
/*RHS_BODY*/
}

/* The Jacobian, the largest function, is its own translation unit, compiled in parallel. */
void nanopk_jac(double t, const double *y, double *J, const double *p);

void nanopk_observe(double t, const double *y, double *out, const double *p)
{
    (void)t;
/*OBS_BODY*/
}

/* Observables at nt output rows: Y is nt x N (row-major), out is nt x n_obs. */
void nanopk_observe_many(int nt, const double *t, const double *Y, const double *p, double *out, int n_obs)
{
    for (int k = 0; k < nt; k++)
        nanopk_observe(t[k], Y + (size_t)k * NANOPK_N, out + (size_t)k * n_obs, p);
}

void nanopk_initial(const double *p, double *y0)
{
/*INIT_BODY*/
}

static int cv_rhs(sunrealtype t, N_Vector y, N_Vector ydot, void *user_data)
{
    double *dy = N_VGetArrayPointer(ydot);
    nanopk_rhs(t, N_VGetArrayPointer(y), dy, (const double *)user_data);
    for (int i = 0; i < NANOPK_N; i++)
        if (!isfinite(dy[i])) return -1; /* CVODE retries with a smaller step, then fails cleanly */
    return 0;
}

static int cv_jac(sunrealtype t, N_Vector y, N_Vector fy, SUNMatrix Jm, void *user_data,
                  N_Vector t1, N_Vector t2, N_Vector t3)
{
    (void)fy; (void)t1; (void)t2; (void)t3;
    double *J = SUNDenseMatrix_Column(Jm, 0); /* columns are contiguous: J[i + j*N] */
    memset(J, 0, sizeof(double) * NANOPK_N * NANOPK_N);
    nanopk_jac(t, N_VGetArrayPointer(y), J, (const double *)user_data);
    return 0;
}

/*
 * Block-diagonal Newton matrices diag(M, ..., M), M = I - γJ (the model with its forward
 * sensitivities): CVODE is given the one N x N block M and SUNDIALS' dense solver, which
 * factors M once per setup; its solve is replaced by block_solve, which applies those
 * factors to each block of the right-hand side.  An LU of M and one triangular solve
 * per block cost ~N³/3 + (K+1)·N² instead of a band LU of the whole (K+1)·N system.
 */
static _Thread_local struct { N_Vector x, b; sunindextype size; int count; } block_views;

/* 0: always use the band matrix (set by the tests, to check one path against the other). */
int nanopk_block_solve_enabled = 1;

static int block_solve(SUNLinearSolver S, SUNMatrix A, N_Vector x, N_Vector b, sunrealtype tol)
{
    sunrealtype *X = N_VGetArrayPointer(x), *B = N_VGetArrayPointer(b);
    for (int k = 0; k < block_views.count; k++) {
        N_VSetArrayPointer(X + (size_t)k * block_views.size, block_views.x);
        N_VSetArrayPointer(B + (size_t)k * block_views.size, block_views.b);
        int flag = SUNLinSolSolve_Dense(S, A, block_views.x, block_views.b, tol);
        if (flag != 0) return flag;
    }
    return 0;
}

/*
 * Put block_solve in the dense solver's table of operations in place of its solve (how
 * SUNDIALS customises a solver; its headers are not in the wheel).  The solver object
 * is {content, ops, context} before SUNDIALS 7.5 and {content, python, ops, context}
 * since, the table has 15 or 16 entries: the table is the first non-null word after
 * the content that holds SUNLinSolSolve_Dense.  Returns 0 if not found (the caller
 * then uses a band matrix).
 */
static int use_block_solve(SUNLinearSolver LS)
{
    void **object = (void **)LS;
    for (int w = 1; w <= 2; w++) {
        void **ops = (void **)object[w];
        if (ops == NULL) continue;
        for (int i = 0; i < 15; i++)
            if (ops[i] == (void *)SUNLinSolSolve_Dense) {
                ops[i] = (void *)block_solve;
                return 1;
            }
        return 0;
    }
    return 0;
}

/*
 * Integrate an n-dimensional system (the model, or the model with its forward
 * sensitivities) from t0 to each tout[k] (increasing), writing y(tout[k]) to
 * yout[k*n ... k*n+n-1].  info[0] = time reached, info[1] = steps, info[2] = f
 * evaluations, info[3] = linear solver (0 dense, 1 dense blocks, 2 band).
 * block = 0: dense Newton matrix filled by jac.  block = N > 0: block-diagonal with
 * N x N blocks, jac filling one block; if the block solve cannot be installed, a band
 * matrix of half-bandwidth N - 1 filled by band_jac.
 * Returns 0 on success or the CVODE flag.
 */
static int run_cvode(int n, int block, CVRhsFn rhs, CVLsJacFn jac, CVLsJacFn band_jac, double t0, const double *y0,
                     const double *p, int nout, const double *tout, double *yout, double rtol, const double *atol,
                     long max_steps, double *info)
{
    SUNContext ctx = NULL;
    int flag = 0;
    info[0] = t0;
    if (SUNContext_Create(0, &ctx) != 0) return -100;
    SUNContext_ClearErrHandlers(ctx); /* errors come back as flags, not stderr text */
    N_Vector y = N_VNew_Serial(n, ctx);
    N_Vector abstol = N_VNew_Serial(n, ctx);
    N_Vector template = NULL;
    SUNMatrix A = NULL;
    SUNLinearSolver LS = NULL;
    block_views.x = block_views.b = NULL;
    info[3] = 0;
    if (block > 0) {
        template = N_VNew_Serial(block, ctx);
        block_views.x = N_VNewEmpty_Serial(block, ctx);
        block_views.b = N_VNewEmpty_Serial(block, ctx);
        block_views.size = block;
        block_views.count = n / block;
        A = SUNDenseMatrix(block, block, ctx);
        LS = (template && A) ? SUNLinSol_Dense(template, A, ctx) : NULL;
        if (LS && block_views.x && block_views.b && nanopk_block_solve_enabled && use_block_solve(LS)) {
            info[3] = 1;
        } else {
            if (LS) SUNLinSolFree(LS);
            if (A) SUNMatDestroy(A);
            A = SUNBandMatrix(n, block - 1, block - 1, ctx);
            LS = SUNLinSol_Band(y, A, ctx);
            jac = band_jac;
            info[3] = 2;
        }
    } else {
        A = SUNDenseMatrix(n, n, ctx);
        LS = SUNLinSol_Dense(y, A, ctx);
    }
    void *mem = CVodeCreate(CV_BDF, ctx);
    if (!y || !abstol || !A || !LS || !mem) { flag = -100; goto done; }
    memcpy(N_VGetArrayPointer(y), y0, sizeof(double) * n);
    memcpy(N_VGetArrayPointer(abstol), atol, sizeof(double) * n);
    if ((flag = CVodeInit(mem, rhs, t0, y)) != 0) goto done;
    if ((flag = CVodeSVtolerances(mem, rtol, abstol)) != 0) goto done;
    CVodeSetUserData(mem, (void *)p);
    CVodeSetMaxNumSteps(mem, max_steps);
    if ((flag = CVodeSetLinearSolver(mem, LS, A)) != 0) goto done;
    if ((flag = CVodeSetJacFn(mem, jac)) != 0) goto done;
    if (nout > 0) CVodeSetStopTime(mem, tout[nout - 1]);
    for (int k = 0; k < nout; k++) {
        sunrealtype tret = t0;
        if (tout[k] <= t0) {
            memcpy(yout + (size_t)k * n, y0, sizeof(double) * n);
            continue;
        }
        flag = CVode(mem, tout[k], y, &tret, CV_NORMAL);
        info[0] = tret;
        if (flag < 0) goto done;
        flag = 0;
        memcpy(yout + (size_t)k * n, N_VGetArrayPointer(y), sizeof(double) * n);
    }
done:
    if (mem) {
        long nst = 0, nfe = 0;
        CVodeGetNumSteps(mem, &nst);
        CVodeGetNumRhsEvals(mem, &nfe);
        info[1] = (double)nst;
        info[2] = (double)nfe;
        CVodeFree(&mem);
    }
    if (LS) SUNLinSolFree(LS);
    if (A) SUNMatDestroy(A);
    if (template) N_VDestroy(template);
    if (block_views.x) N_VDestroy(block_views.x);
    if (block_views.b) N_VDestroy(block_views.b);
    block_views.x = block_views.b = NULL;
    if (abstol) N_VDestroy(abstol);
    if (y) N_VDestroy(y);
    SUNContext_Free(&ctx);
    return flag;
}

int nanopk_solve(double t0, const double *y0, const double *p, int nout, const double *tout,
                 double *yout, double rtol, const double *atol, long max_steps, double *info)
{
    return run_cvode(NANOPK_N, 0, cv_rhs, cv_jac, NULL, t0, y0, p, nout, tout, yout, rtol, atol, max_steps, info);
}
