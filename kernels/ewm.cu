// Segmented exponentially weighted mean and variance (pandas DataFrameGroupBy.ewm semantics).
// One thread walks one segment (rows sorted by group, then time): the recurrence is sequential within a
// segment and segments are independent. The arithmetic is written in the same order as pandas' Cython
// loop (and the CPU twin in gpuetl/kernels/ewm.py), so results agree to rounding.
// offsets: int64[n_segments + 1], values/out: float64[n].

extern "C" __global__ void segmented_ewm_mean(const double* __restrict__ vals,
                                              const long long* __restrict__ offs, long long n_seg,
                                              double com, int adjust, int ignore_na, int minp,
                                              double* __restrict__ out) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n_seg) return;
    const long long s = offs[j], e = offs[j + 1];
    if (e <= s) return;
    const double nan = __longlong_as_double(0x7ff8000000000000LL);
    const double alpha = 1.0 / (1.0 + com);
    const double old_wt_factor = 1.0 - alpha;
    double new_wt = adjust ? 1.0 : alpha;
    double weighted = vals[s];
    int nobs = (weighted == weighted) ? 1 : 0;
    out[s] = nobs >= minp ? weighted : nan;
    double old_wt = 1.0;
    for (long long i = s + 1; i < e; ++i) {
        const double cur = vals[i];
        const bool is_obs = cur == cur;
        nobs += is_obs ? 1 : 0;
        if (weighted == weighted) {
            if (is_obs || !ignore_na) {
                old_wt *= old_wt_factor;
                if (is_obs) {
                    if (weighted != cur) {
                        weighted = __dadd_rn(__dmul_rn(old_wt, weighted), __dmul_rn(new_wt, cur));
                        weighted = weighted / (old_wt + new_wt);
                    }
                    if (adjust) old_wt += new_wt; else old_wt = 1.0;
                }
            }
        } else if (is_obs) {
            weighted = cur;
        }
        out[i] = nobs >= minp ? weighted : nan;
    }
}

extern "C" __global__ void segmented_ewm_var(const double* __restrict__ vals,
                                             const long long* __restrict__ offs, long long n_seg,
                                             double com, int adjust, int ignore_na, int minp, int bias,
                                             double* __restrict__ out) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n_seg) return;
    const long long s = offs[j], e = offs[j + 1];
    if (e <= s) return;
    const double nan = __longlong_as_double(0x7ff8000000000000LL);
    const double alpha = 1.0 / (1.0 + com);
    const double old_wt_factor = 1.0 - alpha;
    const double new_wt = adjust ? 1.0 : alpha;
    double mean = vals[s];
    int nobs = (mean == mean) ? 1 : 0;
    out[s] = nobs >= minp ? (bias ? 0.0 : nan) : nan;
    double cov = 0.0, sum_wt = 1.0, sum_wt2 = 1.0, old_wt = 1.0;
    for (long long i = s + 1; i < e; ++i) {
        const double cur = vals[i];
        const bool is_obs = cur == cur;
        nobs += is_obs ? 1 : 0;
        if (mean == mean) {
            if (is_obs || !ignore_na) {
                sum_wt *= old_wt_factor;
                sum_wt2 *= __dmul_rn(old_wt_factor, old_wt_factor);
                old_wt *= old_wt_factor;
                if (is_obs) {
                    const double old_mean = mean;
                    if (mean != cur) {
                        mean = __dadd_rn(__dmul_rn(old_wt, old_mean), __dmul_rn(new_wt, cur)) / (old_wt + new_wt);
                    }
                    const double d_old = old_mean - mean;
                    const double d_cur = cur - mean;
                    cov = __dadd_rn(__dmul_rn(old_wt, __dadd_rn(cov, __dmul_rn(d_old, d_old))),
                                    __dmul_rn(new_wt, __dmul_rn(d_cur, d_cur))) / (old_wt + new_wt);
                    sum_wt += new_wt;
                    sum_wt2 += __dmul_rn(new_wt, new_wt);
                    old_wt += new_wt;
                    if (!adjust) {
                        sum_wt /= old_wt;
                        sum_wt2 /= __dmul_rn(old_wt, old_wt);
                        old_wt = 1.0;
                    }
                }
            }
        } else if (is_obs) {
            mean = cur;
        }
        if (nobs >= minp) {
            if (!bias) {
                const double numerator = __dmul_rn(sum_wt, sum_wt);
                const double denominator = numerator - sum_wt2;
                out[i] = denominator > 0 ? (numerator / denominator) * cov : nan;
            } else {
                out[i] = cov;
            }
        } else {
            out[i] = nan;
        }
    }
}
