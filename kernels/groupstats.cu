// Per-group statistics and ranks of many columns (e.g. every feature per day). CPU twin:
// gpuetl/kernels/groupstats.py (the same arithmetic in the same row order: compiled with --fmad=false, results
// agree bit for bit). One thread walks one (column, group) pair; columns are rows of `vals` (k x n, row-major),
// and group g is the rows order[offs[g] .. offs[g+1]), in increasing row order (the wrapper's stable sort).
//
// group_stats: stats[q][c][g] for q = count, mean, std, min, max (pandas' groupby semantics: Kahan sum for the
// mean, Welford for the variance with ddof 1, NaN skipped; std exactly 0 when the finite min equals the max).
//
// group_rank: perm (k x n) holds, for column c, the rows of each group ordered by value with NaN last, group g
// at perm[c][offs[g] .. offs[g+1]) (the wrapper sorts). Each run of equal values gets the mean of its 1-based
// ranks; NaN rows are left untouched (the wrapper fills NaN).

extern "C" __global__ void group_stats(const double* __restrict__ vals, const long long* __restrict__ order,
                                       const long long* __restrict__ offs, long long n, long long n_groups,
                                       long long k, double* __restrict__ stats) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= k * n_groups) return;
    const long long c = j / n_groups, s = j % n_groups;
    const double nan = __longlong_as_double(0x7ff8000000000000LL);
    const double inf = __longlong_as_double(0x7ff0000000000000LL);
    const double* col = vals + c * n;
    long long nobs = 0;
    double total = 0.0, comp = 0.0, mean = 0.0, m2 = 0.0, lo = inf, hi = -inf;
    for (long long i = offs[s]; i < offs[s + 1]; ++i) {
        const double v = col[order[i]];
        if (v != v) continue;
        ++nobs;
        const double y = v - comp;  // Kahan (pandas group_mean); a non-finite compensation is reset
        const double t = total + y;
        comp = t - total - y;
        if (comp != comp) comp = 0.0;
        total = t;
        const double old = mean;  // Welford (pandas group_var)
        mean += (v - old) / (double)nobs;
        m2 += (v - mean) * (v - old);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    const long long plane = k * n_groups, at = c * n_groups + s;
    stats[at] = (double)nobs;
    stats[plane + at] = nobs > 0 ? total / (double)nobs : nan;
    double sd;
    if (nobs < 2) sd = nan;
    else if (lo == hi && fabs(lo) < inf) sd = 0.0;
    else sd = sqrt(m2 / (double)(nobs - 1));
    stats[2 * plane + at] = sd;
    stats[3 * plane + at] = nobs > 0 ? lo : nan;
    stats[4 * plane + at] = nobs > 0 ? hi : nan;
}

extern "C" __global__ void group_rank(const double* __restrict__ vals, const long long* __restrict__ perm,
                                      const long long* __restrict__ offs, long long n, long long n_groups,
                                      long long k, double* __restrict__ rank) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= k * n_groups) return;
    const long long c = j / n_groups, s = j % n_groups;
    const double* col = vals + c * n;
    const long long* p = perm + c * n;
    double* out = rank + c * n;
    const long long lo = offs[s], hi = offs[s + 1];
    long long i = lo;
    while (i < hi) {
        const double v = col[p[i]];
        if (v != v) break;  // NaN last: the rest of the group is missing
        long long e = i;
        while (e + 1 < hi && col[p[e + 1]] == v) ++e;
        const double avg = (double)((i - lo) + (e - lo) + 2) * 0.5;
        for (long long t = i; t <= e; ++t) out[p[t]] = avg;
        i = e + 1;
    }
}
