/*
 * Forward parameter sensitivities, appended to the model's CVODE driver.
 *
 * For the K parameters p_j being fitted, s_j = dy/dp_j obeys
 *     ds_j/dt = J(t, y) s_j + df/dp_j(t, y),      s_j(t0) = dy0/dp_j,
 * integrated together with y as one system z = [y, s_1, ..., s_K] under full error
 * control (as CVODES does with errconS = true).  J and df/dp are the generated
 * symbolic derivatives, so no finite-difference step is involved.  CVODE's Newton
 * matrix uses the block-diagonal part diag(J, ..., J): exact when J does not depend on
 * y (linear kinetics, e.g. mouse_pbpk), a modified-Newton approximation otherwise,
 * which changes the iteration count, never the solution.  Its blocks being equal,
 * CVODE is handed the one block and solves block by block (block_solve in the driver):
 * one LU of N³/3 per setup instead of a band LU of the (K+1)·N system.  Where that
 * solve cannot be installed, the same matrix is stored as a band of half-bandwidth N-1.
 */
#define NANOPK_NA (NANOPK_N * (NANOPK_K + 1))
/*JNZ_TABLES*/

/* nanopk_dfdp_constants/_core: df/dp with its parameter-only work done once per solve, as f
   and J (nanopk.backends.ccode.c_dfdp_code); nanopk_dfdp(t, y, D, p): both, for one call. */
/*DFDP_CODE*/
static _Thread_local double dfdp_constants[NANOPK_DFDP_NC > 0 ? NANOPK_DFDP_NC : 1];

static int cvs_rhs(sunrealtype t, N_Vector z, N_Vector zdot, void *user_data)
{
    const double *p = (const double *)user_data;
    const double *Z = N_VGetArrayPointer(z);
    double *dZ = N_VGetArrayPointer(zdot);
    /* On the stack: thread-safe.  J is read at its structural non-zeros only, which
       nanopk_jac writes on every call, so it need not be zeroed. */
    double J[NANOPK_N * NANOPK_N];
    double D[NANOPK_N * NANOPK_K];
    memset(D, 0, sizeof D);
    /* From the constants nanopk_solve_sens computed once. */
    if (nanopk_rhs_hoisted)
        nanopk_rhs_core(t, Z, dZ, p, solve_constants);
    else
        nanopk_rhs(t, Z, dZ, p);
    nanopk_jac_hoisted(t, Z, J, p);
    nanopk_dfdp_core(t, Z, D, p, dfdp_constants);
    for (int j = 0; j < NANOPK_K; j++) {
        const double *sj = Z + NANOPK_N * (j + 1);
        double *dsj = dZ + NANOPK_N * (j + 1);
        for (int i = 0; i < NANOPK_N; i++) {
            double d = D[i + j * NANOPK_N];
            /* At t = 0 a Hill term (t/K50)^n differentiated by n gives 0*log(0); its
               limit is 0, the value the formula takes for any t > 0 approaching 0. */
            dsj[i] = (!isfinite(d) && t <= 0.0) ? 0.0 : d;
        }
        for (int k = 0; k < NANOPK_JNZ; k++) {
            int i = nanopk_jnz_row[k], l = nanopk_jnz_col[k];
            dsj[i] += J[i + l * NANOPK_N] * sj[l];
        }
    }
    for (int i = 0; i < NANOPK_NA; i++)
        if (!isfinite(dZ[i])) return -1;
    return 0;
}

static int cvs_band_jac(sunrealtype t, N_Vector z, N_Vector fz, SUNMatrix Jm, void *user_data,
                   N_Vector t1, N_Vector t2, N_Vector t3)
{
    (void)fz; (void)t1; (void)t2; (void)t3;
    double J[NANOPK_N * NANOPK_N];
    memset(J, 0, sizeof J);
    nanopk_jac_hoisted(t, N_VGetArrayPointer(z), J, (const double *)user_data);
    for (int b = 0; b <= NANOPK_K; b++)
        for (int l = 0; l < NANOPK_N; l++) {
            sunrealtype *col = SUNBandMatrix_Column(Jm, b * NANOPK_N + l);
            for (int i = 0; i < NANOPK_N; i++)
                SUN_BAND_ELEMENT(col, b * NANOPK_N + i, b * NANOPK_N + l) = J[i + l * NANOPK_N];
        }
    return 0;
}

int nanopk_solve_sens(double t0, const double *z0, const double *p, int nout, const double *tout,
                      double *zout, double rtol, const double *atol, const double *constraints, long max_steps,
                      double *info)
{
    nanopk_rhs_constants(p, solve_constants);
    nanopk_jac_prepare(p);
    nanopk_dfdp_constants(p, dfdp_constants);
    return run_cvode(NANOPK_NA, NANOPK_N, cvs_rhs, cv_jac, cvs_band_jac, t0, z0, p, nout, tout, zout, rtol, atol, constraints,
                     max_steps, info);
}
