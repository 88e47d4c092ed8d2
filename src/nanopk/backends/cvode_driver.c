/*
 * nanopk CVODE driver: integrates dy/dt = f(t, y, p) with SUNDIALS CVODE (BDF,
 * analytic Jacobian) and writes the states at the output times.  The Newton systems are
 * solved by the model's generated sparse LU (nanopk.backends.sparse_lu) where its
 * Jacobian is sparse, by SUNDIALS' dense LU otherwise.  nanopk.backends.cvode inserts
 * the model's f, observables, initial state and sparse LU, and compiles the Jacobian J
 * as a second translation unit.
 *
 * SUNDIALS headers are not shipped with the scikit-sundae wheel, so the handful of
 * declarations used here are written out below; they follow the SUNDIALS 7 C API
 * (sunrealtype = double, sunindextype = int64, SUNComm = int without MPI).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
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
extern int SUNLinSolSetup_Dense(SUNLinearSolver S, SUNMatrix A);
extern int SUNLinSolSolve_Dense(SUNLinearSolver S, SUNMatrix A, N_Vector x, N_Vector b, sunrealtype tol);
extern N_Vector N_VNewEmpty_Serial(sunindextype n, SUNContext ctx);
extern void N_VSetArrayPointer(sunrealtype *data, N_Vector v);
extern void *CVodeCreate(int lmm, SUNContext ctx);
extern int CVodeInit(void *mem, CVRhsFn f, sunrealtype t0, N_Vector y0);
extern int CVodeSVtolerances(void *mem, sunrealtype rtol, N_Vector atol);
extern int CVodeSetUserData(void *mem, void *data);
extern int CVodeSetMaxNumSteps(void *mem, long mxsteps);
extern int CVodeSetMaxOrd(void *mem, int maxord);
extern int CVodeSetInitStep(void *mem, sunrealtype hin);
extern int CVodeSetStopTime(void *mem, sunrealtype tstop);
extern int CVodeSetConstraints(void *mem, N_Vector constraints);
typedef int (*CVProjFn)(sunrealtype t, N_Vector ycur, N_Vector corr, sunrealtype eps, N_Vector err, void *data);
extern int CVodeSetProjFn(void *mem, CVProjFn pfun);
extern int CVodeSetProjFrequency(void *mem, long freq);
extern int CVodeSetLinearSolver(void *mem, SUNLinearSolver LS, SUNMatrix A);
extern int CVodeSetJacFn(void *mem, CVLsJacFn jac);
extern int CVode(void *mem, sunrealtype tout, N_Vector yout, sunrealtype *tret, int itask);
extern int CVodeGetNumSteps(void *mem, long *n);
extern int CVodeGetNumRhsEvals(void *mem, long *n);
extern int CVodeGetNumLinSolvSetups(void *mem, long *n);
extern int CVodeGetNumNonlinSolvIters(void *mem, long *n);
extern int CVodeGetNumJacEvals(void *mem, long *n);
extern int CVodeGetCurrentGamma(void *mem, sunrealtype *gamma);
extern void CVodeFree(void **mem);

/*
 * SUNDIALS' own messages (CVODE's warnings such as "t + h = t on the next step", which
 * SUNDIALS 7 prints to stdout through its logger, and its error messages, printed to
 * stderr by the default error handler) are collected per thread instead, and
 * nanopk.backends.cvode passes them on through Python's logging (logger
 * "nanopk.solver").  SUNLogger_SetQueueAndFlushMsgFns is new in SUNDIALS 7.8: declared
 * weak, so the library still links against an older SUNDIALS, whose messages are then
 * silenced by a logger without output files.
 */
typedef struct SUNLogger_ *SUNLogger;
typedef void (*SUNErrHandlerFn)(int line, const char *func, const char *file, const char *msg, int err_code,
                                void *err_user_data, SUNContext sunctx);
typedef int (*SUNLoggerQueueMsgFn)(SUNLogger logger, int lvl, const char *prefix, int rank, const char *scope,
                                   const char *label, const char *payload, void *content);
typedef int (*SUNLoggerFlushMsgFn)(SUNLogger logger, int lvl, void *content);
extern int SUNContext_PushErrHandler(SUNContext ctx, SUNErrHandlerFn fn, void *data);
extern int SUNContext_GetLogger(SUNContext ctx, SUNLogger *logger);
extern int SUNContext_SetLogger(SUNContext ctx, SUNLogger logger);
extern int SUNLogger_Create(int comm, int output_rank, SUNLogger *logger);
extern int SUNLogger_Destroy(SUNLogger *logger);
extern int SUNLogger_SetQueueAndFlushMsgFns(SUNLogger logger, SUNLoggerQueueMsgFn queue_msg, SUNLoggerFlushMsgFn flush_msg,
                                            void *lptr) __attribute__((weak));

/* The messages of the last solve on this thread: "W|E <where>: <text>" lines, the first
   that fit; count = all of them. */
static _Thread_local struct { char text[4096]; size_t length; long count; } solver_messages;

static void note_message(char level, const char *where, const char *text)
{
    solver_messages.count++;
    size_t room = sizeof solver_messages.text - solver_messages.length;
    if (room < 64) return;
    int n = snprintf(solver_messages.text + solver_messages.length, room, "%c %s: %s\n", level, where ? where : "SUNDIALS",
                     text ? text : "");
    if (n > 0) solver_messages.length += (size_t)n < room ? (size_t)n : room - 1;
}

static int queue_message(SUNLogger logger, int lvl, const char *prefix, int rank, const char *scope, const char *label,
                         const char *payload, void *content)
{
    (void)logger; (void)prefix; (void)rank; (void)scope; (void)content;
    if (lvl == 1 || lvl == 2) note_message(lvl == 1 ? 'E' : 'W', label, payload); /* errors, warnings */
    return 0;
}

static int flush_messages(SUNLogger logger, int lvl, void *content)
{
    (void)logger; (void)lvl; (void)content;
    return 0;
}

static void error_message(int line, const char *func, const char *file, const char *msg, int code, void *data,
                          SUNContext ctx)
{
    (void)line; (void)file; (void)code; (void)data; (void)ctx;
    note_message('E', func, msg);
}

/* Copy this thread's messages of the last solve into out (size bytes, NUL-terminated);
   returns how many there were. */
long nanopk_messages(char *out, int size)
{
    if (size > 0) {
        size_t n = solver_messages.length < (size_t)size - 1 ? solver_messages.length : (size_t)size - 1;
        memcpy(out, solver_messages.text, n);
        out[n] = 0;
    }
    return solver_messages.count;
}

/* Route the context's messages to solver_messages; returns a logger to destroy after the
   context, or NULL. */
static SUNLogger quiet_context(SUNContext ctx)
{
    SUNLogger logger = NULL;
    solver_messages.length = 0;
    solver_messages.count = 0;
    solver_messages.text[0] = 0;
    SUNContext_ClearErrHandlers(ctx);
    SUNContext_PushErrHandler(ctx, error_message, NULL);
    if (SUNLogger_SetQueueAndFlushMsgFns && SUNContext_GetLogger(ctx, &logger) == 0 && logger) {
        SUNLogger_SetQueueAndFlushMsgFns(logger, queue_message, flush_messages, NULL);
        return NULL; /* the context's own logger, freed with it */
    }
    logger = NULL;
    if (SUNLogger_Create(0, 0, &logger) != 0) return NULL; /* no output files: silent */
    SUNContext_SetLogger(ctx, logger);
    return logger;
}

#define SUN_BAND_ELEMENT(col, i, j) ((col)[(i) - (j)]) /* col = SUNBandMatrix_Column(A, j) */
#define CV_BDF 2
#define CV_NORMAL 1

/* How the states at the output times are obtained (run_cvode); set by measurements and tests.
   0: CV_NORMAL, interpolated from the step that passes the output time, as CVODE gives it;
   1: a stop time at each output, so each output is a step's own (constrained) solution;
   2: interpolated like 0, then projected onto amounts >= 0 with the invariant sum
      (project_output) where the amounts are constrained.  Same steps as 0; 1 took 15-21 %
      more steps and 44-67 % more time on 50 outputs in 0-168 h (mouse_pbpk, mouse_tumour,
      mouse_tumour_full): every stop shortens a step and refactors the Newton matrix. */
int nanopk_output_mode = 2;
/* 0: constraints without the projection that restores the sum of the amounts (tests). */
int nanopk_project_amounts = 1;
/* CVODE's BDF settings, for benchmarks/work_precision.py to vary: the maximum order (1-5;
   5 is CVODE's default) and the first step (0: CVODE's own estimate). */
int nanopk_max_order = 5;
double nanopk_initial_step = 0.0;

/* nanopk_rhs_constants(p, c): the NANOPK_RHS_NC values of f that depend on the parameters
   only; nanopk_rhs_core(t, y, dydt, p, c): f from them; nanopk_rhs(t, y, dydt, p): f
   printed without hoisting, for single calls (nanopk.backends.ccode.c_rhs_code). */
/*RHS_CODE*/

/* The constants of the solve running on this thread (nanopk_solve computes them once;
   they were a third of the arithmetic of every call of f on mouse_pbpk). */
static _Thread_local double solve_constants[NANOPK_RHS_NC > 0 ? NANOPK_RHS_NC : 1];
/* 0: the solves call nanopk_rhs, the unhoisted f (set by the tests, to compare the two).
   J, its split form and df/dp are only printed hoisted (ccode.c_jacobian_code). */
int nanopk_rhs_hoisted = 1;

/* The Jacobian, the largest function, is its own translation unit, compiled in parallel;
   nanopk_jac_prepare(p) computes its parameter-only values for this thread's solve and
   nanopk_jac_hoisted(t, y, J, p) writes J from them (nanopk.backends.cvode._JACOBIAN). */
void nanopk_jac(double t, const double *y, double *J, const double *p);
void nanopk_jac_hoisted(double t, const double *y, double *J, const double *p);
void nanopk_jac_prepare(const double *p);

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
    if (nanopk_rhs_hoisted)
        nanopk_rhs_core(t, N_VGetArrayPointer(y), dy, (const double *)user_data, solve_constants);
    else
        nanopk_rhs(t, N_VGetArrayPointer(y), dy, (const double *)user_data);
    for (int i = 0; i < NANOPK_N; i++)
        if (!isfinite(dy[i])) return -1; /* CVODE retries with a smaller step, then fails cleanly */
    return 0;
}

/*SPARSE_LU*/

/*
 * The Newton matrix M = I - gamma*J (N x N, dense storage, filled by CVODE) is factored by
 * the model's generated sparse LU when it has one (nanopk_lu_factor, see
 * nanopk.backends.sparse_lu).  The first solve after each factorisation checks its
 * componentwise backward error; above nanopk_lu_max_backward_error, or at a zero pivot,
 * that Newton matrix is refactored by SUNDIALS' dense LU with partial pivoting
 * (newton_lu.dense), for that setup only.  Thread-local: batches solve on several threads.
 */
#if NANOPK_HUBS
#define NANOPK_H NANOPK_HUBS
/* J = J_d + F E through the model's hubs (nanopk.backends.symbolic.LowRankSplit). */
void nanopk_jac_split(double t, const double *y, double *J, double *F, double *E, const double *p);
void nanopk_jac_split_hoisted(double t, const double *y, double *J, double *F, double *E, const double *p);
#else
#define NANOPK_H 1 /* array sizes only: nothing is split */
#endif

static _Thread_local struct {
    double values[NANOPK_LU_NNZ], matrix[NANOPK_M_NNZ];
    int dense, checked;
    long fallbacks;
    /* The low-rank update (split = 1): M = M_d - gamma F E with M_d = I - gamma J_d in
       CVODE's matrix; F (N x H) and E (H x N) from the last Jacobian evaluation,
       Z = M_d^-1 (gamma F) and the LU of S = I - E Z (pivots in pivot). */
    int split, pivot[NANOPK_H];
    double F[NANOPK_N * NANOPK_H], E[NANOPK_H * NANOPK_N], Z[NANOPK_N * NANOPK_H], S[NANOPK_H * NANOPK_H], gamma;
    void *cvode;
} newton_lu;

static int cv_jac(sunrealtype t, N_Vector y, N_Vector fy, SUNMatrix Jm, void *user_data,
                  N_Vector t1, N_Vector t2, N_Vector t3)
{
    (void)fy; (void)t1; (void)t2; (void)t3;
    double *J = SUNDenseMatrix_Column(Jm, 0); /* columns are contiguous: J[i + j*N] */
    memset(J, 0, sizeof(double) * NANOPK_N * NANOPK_N);
#if NANOPK_HUBS
    if (newton_lu.split) { /* CVODE's matrix gets J_d: the low-rank part stays factored */
        memset(newton_lu.F, 0, sizeof newton_lu.F);
        memset(newton_lu.E, 0, sizeof newton_lu.E);
        nanopk_jac_split_hoisted(t, N_VGetArrayPointer(y), J, newton_lu.F, newton_lu.E, (const double *)user_data);
        return 0;
    }
#endif
    nanopk_jac_hoisted(t, N_VGetArrayPointer(y), J, (const double *)user_data);
    return 0;
}

#if NANOPK_HUBS
/* Woodbury: M^-1 = M_d^-1 + Z S^-1 E M_d^-1, Z = M_d^-1 (gamma F), S = I - E Z (H x H,
   LU with partial pivoting).  Returns 1 if S is singular. */
static int low_rank_setup(void)
{
    if (CVodeGetCurrentGamma(newton_lu.cvode, &newton_lu.gamma) != 0) return 1;
    for (int k = 0; k < NANOPK_H; k++) {
        double *z = newton_lu.Z + (size_t)k * NANOPK_N;
        for (int i = 0; i < NANOPK_N; i++) z[i] = newton_lu.gamma * newton_lu.F[i + k * NANOPK_N];
        nanopk_lu_solve(newton_lu.values, z);
    }
    double *S = newton_lu.S; /* column-major S[r + c*H] */
    for (int r = 0; r < NANOPK_H; r++)
        for (int c = 0; c < NANOPK_H; c++) {
            double e = (r == c);
            for (int j = 0; j < NANOPK_N; j++) e -= newton_lu.E[r + j * NANOPK_H] * newton_lu.Z[j + c * NANOPK_N];
            S[r + c * NANOPK_H] = e;
        }
    for (int c = 0; c < NANOPK_H; c++) {
        int p = c;
        for (int r = c + 1; r < NANOPK_H; r++)
            if (fabs(S[r + c * NANOPK_H]) > fabs(S[p + c * NANOPK_H])) p = r;
        newton_lu.pivot[c] = p;
        if (!(isfinite(S[p + c * NANOPK_H]) && S[p + c * NANOPK_H] != 0.0)) return 1;
        for (int q = 0; q < NANOPK_H; q++) {
            double swap = S[c + q * NANOPK_H];
            S[c + q * NANOPK_H] = S[p + q * NANOPK_H];
            S[p + q * NANOPK_H] = swap;
        }
        for (int r = c + 1; r < NANOPK_H; r++) {
            S[r + c * NANOPK_H] /= S[c + c * NANOPK_H];
            for (int q = c + 1; q < NANOPK_H; q++) S[r + q * NANOPK_H] -= S[r + c * NANOPK_H] * S[c + q * NANOPK_H];
        }
    }
    return 0;
}

/* w = scale * E x: the hubs' response to x. */
static void hub_product(const double *x, double scale, double *w)
{
    for (int k = 0; k < NANOPK_H; k++) {
        double e = 0.0;
        for (int j = 0; j < NANOPK_N; j++) e += newton_lu.E[k + j * NANOPK_H] * x[j];
        w[k] = scale * e;
    }
}

/* x = M_d^-1 b on entry; on exit x = M^-1 b, and, if c is not NULL, c = gamma F E x (the
   backward error's share of the update, needed at the checked solve only). */
static void low_rank_solve(double *x, double *c)
{
    double w[NANOPK_H];
    hub_product(x, 1.0, w);
    for (int k = 0; k < NANOPK_H; k++) { /* w = S^-1 w */
        const int p = newton_lu.pivot[k];
        const double swap = w[k];
        w[k] = w[p];
        w[p] = swap;
    }
    for (int k = 0; k < NANOPK_H; k++)
        for (int r = k + 1; r < NANOPK_H; r++) w[r] -= newton_lu.S[r + k * NANOPK_H] * w[k];
    for (int k = NANOPK_H - 1; k >= 0; k--) {
        for (int q = k + 1; q < NANOPK_H; q++) w[k] -= newton_lu.S[k + q * NANOPK_H] * w[q];
        w[k] /= newton_lu.S[k + k * NANOPK_H];
    }
    for (int k = 0; k < NANOPK_H; k++)
        for (int i = 0; i < NANOPK_N; i++) x[i] += newton_lu.Z[i + k * NANOPK_N] * w[k];
    if (c == NULL) return;
    hub_product(x, newton_lu.gamma, w); /* c = gamma F (E x) with the updated x */
    for (int i = 0; i < NANOPK_N; i++) {
        double e = 0.0;
        for (int k = 0; k < NANOPK_H; k++) e += newton_lu.F[i + k * NANOPK_N] * w[k];
        c[i] = e;
    }
}
#endif

/* 0: SUNDIALS' dense LU always (set by the tests, to check one path against the other). */
int nanopk_sparse_lu_enabled = 1;
/* sparse_lu.MAX_BACKWARD_ERROR; the tests set 0 to force every fallback. */
double nanopk_lu_max_backward_error = NANOPK_LU_MAX_BACKWARD_ERROR;

static int dense_fallback(SUNLinearSolver S, SUNMatrix A)
{
    newton_lu.dense = 1;
    newton_lu.fallbacks++;
#if NANOPK_HUBS
    if (newton_lu.split) { /* A holds M_d: the dense LU needs M = M_d - gamma F E */
        double *M = SUNDenseMatrix_Column(A, 0), gamma = 0.0;
        if (CVodeGetCurrentGamma(newton_lu.cvode, &gamma) != 0) return -1;
        for (int j = 0; j < NANOPK_N; j++)
            for (int k = 0; k < NANOPK_H; k++) {
                const double e = gamma * newton_lu.E[k + j * NANOPK_H];
                if (e != 0.0)
                    for (int i = 0; i < NANOPK_N; i++) M[i + j * NANOPK_N] -= newton_lu.F[i + k * NANOPK_N] * e;
            }
    }
#endif
    return SUNLinSolSetup_Dense(S, A);
}

static int sparse_setup(SUNLinearSolver S, SUNMatrix A)
{
    newton_lu.checked = 0;
    newton_lu.dense = 0;
    if (nanopk_lu_factor(SUNDenseMatrix_Column(A, 0), newton_lu.values, newton_lu.matrix) != 0)
        return dense_fallback(S, A);
#if NANOPK_HUBS
    if (newton_lu.split && low_rank_setup() != 0) return dense_fallback(S, A);
#endif
    return 0;
}

/* Solve one N x N Newton system with whichever factorisation the last setup made. */
static int newton_solve(SUNLinearSolver S, SUNMatrix A, N_Vector x, N_Vector b, sunrealtype tol)
{
    if (newton_lu.dense) return SUNLinSolSolve_Dense(S, A, x, b, tol);
    double *X = N_VGetArrayPointer(x), B[NANOPK_N];
    memcpy(B, N_VGetArrayPointer(b), sizeof B); /* b may be x */
    memcpy(X, B, sizeof B);
    nanopk_lu_solve(newton_lu.values, X);
    double correction[NANOPK_N], *c = NULL;
#if NANOPK_HUBS
    if (newton_lu.split) low_rank_solve(X, newton_lu.checked ? NULL : (c = correction));
#else
    (void)correction;
#endif
    if (newton_lu.checked) return 0;
    newton_lu.checked = 1;
    if (nanopk_lu_backward_error(newton_lu.matrix, X, B, c) <= nanopk_lu_max_backward_error) return 0;
    int flag = dense_fallback(S, A); /* A still holds M: the sparse LU worked on copies */
    if (flag != 0) return flag;
    memcpy(X, B, sizeof B);
    return SUNLinSolSolve_Dense(S, A, x, x, tol);
}

/*
 * Block-diagonal Newton matrices diag(M, ..., M) (the model with its forward
 * sensitivities): CVODE is given the one N x N block M and SUNDIALS' dense solver, which
 * factors M once per setup; its solve is replaced by block_solve, which applies those
 * factors to each block of the right-hand side.  An LU of M and one triangular solve
 * per block cost ~N³/3 + (K+1)·N² instead of a band LU of the whole (K+1)·N system
 * (and far less with the sparse LU).
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
        int flag = newton_solve(S, A, block_views.x, block_views.b, tol);
        if (flag != 0) return flag;
    }
    return 0;
}

/*
 * Put `replacement` in place of `original` in the dense solver's table of operations
 * (how SUNDIALS customises a solver; its headers are not in the wheel).  The solver
 * object is {content, ops, context} before SUNDIALS 7.5 and {content, python, ops,
 * context} since, the table has 15 or 16 entries: the table is the first non-null word
 * after the content that holds the original.  Returns 0 if not found.
 */
static int replace_operation(SUNLinearSolver LS, void *original, void *replacement)
{
    void **object = (void **)LS;
    for (int w = 1; w <= 2; w++) {
        void **ops = (void **)object[w];
        if (ops == NULL) continue;
        for (int i = 0; i < 15; i++)
            if (ops[i] == original) {
                ops[i] = replacement;
                return 1;
            }
        return 0;
    }
    return 0;
}

/* Install the sparse LU in a dense solver of the N x N Newton matrix; 1 if installed,
   2 if with the low-rank update (then the Jacobian function writes J_d, F and E). */
static int use_sparse_lu(SUNLinearSolver LS, int block)
{
    newton_lu.split = 0;
    if (!NANOPK_SPARSE_LU || !nanopk_sparse_lu_enabled) return 0;
    if (!replace_operation(LS, (void *)SUNLinSolSetup_Dense, (void *)sparse_setup)) return 0;
    if (!block && !replace_operation(LS, (void *)SUNLinSolSolve_Dense, (void *)newton_solve)) {
        replace_operation(LS, (void *)sparse_setup, (void *)SUNLinSolSetup_Dense);
        return 0;
    }
    newton_lu.split = NANOPK_HUBS > 0;
    return 1 + newton_lu.split;
}

/*
 * Amounts (constraints[i] = 1) stay >= 0 and their sum stays what it was at t0.
 * CVODE's inequality constraints (CVodeSetConstraints, 1 = ">= 0") reject a step whose
 * amounts go negative by more than its error test allows, and correct smaller
 * excursions by setting those amounts to 0 - which adds their magnitude to the model's
 * mass (1e-8 to 6.2e-7 of the dose by 1000 h on mouse_tumour_full's particles, measured).
 * Every amount moves by fluxes from one amount to another (nanopk.model: mass balance
 * is structural), so their sum is an invariant of the ODE.  project_amounts, CVODE's
 * projection after a step (CVodeSetProjFn), restores it by scaling the positive amounts
 * by 1 - excess/sum, a relative change of the size of CVODE's local error.  It is
 * switched on (CVodeSetProjFrequency) once the sum has drifted, as seen at an output:
 * always on, it cost ~15 % of a solve's time where it changes nothing.  It runs after
 * CVODE's constraint correction, which changes only CVODE's correction vector: amounts
 * still < 0 in ycur are those CVODE sets to 0, so they count as 0 here and are left to it.
 */
static _Thread_local struct { const double *mask; int n; double total; } amounts;

static int project_amounts(sunrealtype t, N_Vector ycur, N_Vector corr, sunrealtype eps, N_Vector err, void *data)
{
    (void)t; (void)eps; (void)err; (void)data;
    const double *y = N_VGetArrayPointer(ycur);
    double *c = N_VGetArrayPointer(corr), kept = 0.0;
    for (int i = 0; i < amounts.n; i++) {
        c[i] = 0.0;
        if (amounts.mask[i] > 0.0 && y[i] > 0.0) kept += y[i];
    }
    if (!(kept > 0.0) || kept == amounts.total) return 0;
    const double scale = (kept - amounts.total) / kept;
    if (!(fabs(scale) < 1.0)) return 1; /* not a rounding-sized excess: CVODE retries a smaller step */
    for (int i = 0; i < amounts.n; i++)
        if (amounts.mask[i] > 0.0 && y[i] > 0.0) c[i] = -y[i] * scale;
    return 0;
}

/* The amounts' sum may drift by rounding alone (~1e-12 relative by 1000 h, measured):
   ten times that, CVODE's constraint corrections have added mass. */
#define NANOPK_DRIFT 1e-11

static int drifted(const double *y)
{
    double sum = 0.0;
    for (int i = 0; i < amounts.n; i++)
        if (amounts.mask[i] > 0.0) sum += y[i];
    return fabs(sum - amounts.total) > NANOPK_DRIFT * amounts.total;
}

/* An output (nanopk_output_mode 1 or 2) projected like a step where it needs it: amounts
   below 0 set to 0, the positive ones scaled so that their sum is the invariant's.  An
   output with no amount below 0 and its sum within NANOPK_DRIFT is left as CVODE gave
   it: rescaling every output by its rounding-level drift made the outputs jitter with
   the parameters (a fit's MAP at rtol 1e-11 moved by 1.6e-6, tests/test_fit_priors.py). */
static void project_output(double *y)
{
    double kept = 0.0;
    int negative = 0;
    for (int i = 0; i < amounts.n; i++)
        if (amounts.mask[i] > 0.0) {
            if (y[i] < 0.0) { y[i] = 0.0; negative = 1; }
            kept += y[i];
        }
    if (!negative && fabs(kept - amounts.total) <= NANOPK_DRIFT * amounts.total) return;
    if (!(kept > 0.0)) return;
    const double scale = amounts.total / kept;
    for (int i = 0; i < amounts.n; i++)
        if (amounts.mask[i] > 0.0) y[i] *= scale;
}

/*
 * Integrate an n-dimensional system (the model, or the model with its forward
 * sensitivities) from t0 to each tout[k] (increasing), writing y(tout[k]) to
 * yout[k*n ... k*n+n-1].  info[0] = time reached, info[1] = steps, info[2] = f
 * evaluations, info[3] = linear solver (0 dense, 1 dense blocks, 2 band), info[4] = 1 if
 * the sparse LU factored the dense or block matrices (2: with the low-rank update),
 * info[5] = setups it declined, info[6] = messages SUNDIALS issued (nanopk_messages),
 * info[7] = linear-solver setups (factorisations of M), info[8] = nonlinear iterations
 * (one linear solve each), info[9] = Jacobian evaluations (info has 10 entries).
 * block = 0: dense Newton matrix filled by jac.  block = N > 0: block-diagonal with
 * N x N blocks, jac filling one block; if the block solve cannot be installed, a band
 * matrix of half-bandwidth N - 1 filled by band_jac.  constraints: NULL, or n values,
 * 1 for an amount kept >= 0 (with the sum of these kept at its initial value), else 0.
 * Returns 0 on success or the CVODE flag.
 */
static int run_cvode(int n, int block, CVRhsFn rhs, CVLsJacFn jac, CVLsJacFn band_jac, double t0, const double *y0,
                     const double *p, int nout, const double *tout, double *yout, double rtol, const double *atol,
                     const double *constraints, long max_steps, double *info)
{
    SUNContext ctx = NULL;
    int flag = 0;
    info[0] = t0;
    if (SUNContext_Create(0, &ctx) != 0) return -100;
    SUNLogger own_logger = quiet_context(ctx); /* errors come back as flags, messages to Python */
    N_Vector y = N_VNew_Serial(n, ctx);
    N_Vector abstol = N_VNew_Serial(n, ctx);
    N_Vector limits = constraints ? N_VNew_Serial(n, ctx) : NULL;
    N_Vector template = NULL;
    SUNMatrix A = NULL;
    SUNLinearSolver LS = NULL;
    block_views.x = block_views.b = NULL;
    newton_lu.dense = 1;
    newton_lu.fallbacks = 0;
    info[3] = info[4] = info[5] = 0;
    if (block > 0) {
        template = N_VNew_Serial(block, ctx);
        block_views.x = N_VNewEmpty_Serial(block, ctx);
        block_views.b = N_VNewEmpty_Serial(block, ctx);
        block_views.size = block;
        block_views.count = n / block;
        A = SUNDenseMatrix(block, block, ctx);
        LS = (template && A) ? SUNLinSol_Dense(template, A, ctx) : NULL;
        if (LS && block_views.x && block_views.b && nanopk_block_solve_enabled
            && replace_operation(LS, (void *)SUNLinSolSolve_Dense, (void *)block_solve)) {
            info[3] = 1;
            info[4] = use_sparse_lu(LS, 1);
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
        info[4] = LS ? use_sparse_lu(LS, 0) : 0;
    }
    void *mem = CVodeCreate(CV_BDF, ctx);
    newton_lu.cvode = mem; /* low_rank_setup asks it for gamma */
    if (!y || !abstol || !A || !LS || !mem || (constraints && !limits)) { flag = -100; goto done; }
    memcpy(N_VGetArrayPointer(y), y0, sizeof(double) * n);
    memcpy(N_VGetArrayPointer(abstol), atol, sizeof(double) * n);
    if ((flag = CVodeInit(mem, rhs, t0, y)) != 0) goto done;
    if ((flag = CVodeSVtolerances(mem, rtol, abstol)) != 0) goto done;
    CVodeSetUserData(mem, (void *)p);
    CVodeSetMaxNumSteps(mem, max_steps);
    if (nanopk_max_order != 5 && (flag = CVodeSetMaxOrd(mem, nanopk_max_order)) != 0) goto done;
    if (nanopk_initial_step > 0.0 && (flag = CVodeSetInitStep(mem, nanopk_initial_step)) != 0) goto done;
    if ((flag = CVodeSetLinearSolver(mem, LS, A)) != 0) goto done;
    if ((flag = CVodeSetJacFn(mem, jac)) != 0) goto done;
    if (limits) {
        memcpy(N_VGetArrayPointer(limits), constraints, sizeof(double) * n);
        if ((flag = CVodeSetConstraints(mem, limits)) != 0) goto done;
        amounts.mask = constraints;
        amounts.n = n;
        amounts.total = 0.0;
        for (int i = 0; i < n; i++)
            if (constraints[i] > 0.0) amounts.total += y0[i];
        /* Registered, but off (frequency 0) until the amounts' sum has drifted: CVODE's
           projection costs ~15 % of a solve's time even where it changes nothing. */
        if ((flag = CVodeSetProjFn(mem, project_amounts)) != 0) goto done;
        if ((flag = CVodeSetProjFrequency(mem, 0)) != 0) goto done;
    }
    int projecting = !limits || !nanopk_project_amounts; /* 1: nothing (more) to switch on */
    if (nout > 0) CVodeSetStopTime(mem, tout[nout - 1]);
    for (int k = 0; k < nout; k++) {
        double *row = yout + (size_t)k * n;
        sunrealtype tret = t0;
        if (tout[k] <= t0) {
            memcpy(row, y0, sizeof(double) * n);
            continue;
        }
        if (nanopk_output_mode == 1) CVodeSetStopTime(mem, tout[k]);
        flag = CVode(mem, tout[k], y, &tret, CV_NORMAL);
        info[0] = tret;
        if (flag < 0) goto done;
        flag = 0;
        /* The sum drifts only by CVODE's constraint corrections, seen here at the outputs
           (checking after every step, with CV_ONE_STEP, cost 5 % more time): from the next
           step on, every step restores it. */
        if (!projecting && drifted(N_VGetArrayPointer(y))) {
            projecting = 1;
            if ((flag = CVodeSetProjFrequency(mem, 1)) != 0) goto done;
        }
        memcpy(row, N_VGetArrayPointer(y), sizeof(double) * n);
        if (limits && nanopk_output_mode != 0) project_output(row);
    }
done:
    if (mem) {
        long nst = 0, nfe = 0, nsetups = 0, nni = 0, nje = 0;
        CVodeGetNumSteps(mem, &nst);
        CVodeGetNumRhsEvals(mem, &nfe);
        CVodeGetNumLinSolvSetups(mem, &nsetups);
        CVodeGetNumNonlinSolvIters(mem, &nni);
        CVodeGetNumJacEvals(mem, &nje);
        info[1] = (double)nst;
        info[2] = (double)nfe;
        info[7] = (double)nsetups;
        info[8] = (double)nni;
        info[9] = (double)nje;
        info[5] = (double)newton_lu.fallbacks;
        CVodeFree(&mem);
    }
    if (LS) SUNLinSolFree(LS);
    if (A) SUNMatDestroy(A);
    if (template) N_VDestroy(template);
    if (block_views.x) N_VDestroy(block_views.x);
    if (block_views.b) N_VDestroy(block_views.b);
    block_views.x = block_views.b = NULL;
    if (abstol) N_VDestroy(abstol);
    if (limits) N_VDestroy(limits);
    if (y) N_VDestroy(y);
    SUNContext_Free(&ctx);
    if (own_logger) SUNLogger_Destroy(&own_logger);
    info[6] = (double)solver_messages.count;
    return flag;
}

int nanopk_solve(double t0, const double *y0, const double *p, int nout, const double *tout,
                 double *yout, double rtol, const double *atol, const double *constraints, long max_steps, double *info)
{
    nanopk_rhs_constants(p, solve_constants);
    nanopk_jac_prepare(p);
    return run_cvode(NANOPK_N, 0, cv_rhs, cv_jac, NULL, t0, y0, p, nout, tout, yout, rtol, atol, constraints, max_steps,
                     info);
}
