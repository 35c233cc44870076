// Per-segment statistics and ranks of many columns (e.g. every feature per day). CPU twin:
// gpuetl/kernels/segstats.py (same loops, same arithmetic order: compiled with --fmad=false, results agree bit
// for bit). One thread walks one (column, segment) pair; columns are rows of `vals` (k x n, row-major), and
// segment s is the rows order[offs[s] .. offs[s+1]).
//
// segmented_stats: stats[q][c][s] for q = count, mean, std, min, max (pandas' groupby semantics: Kahan sum for
// the mean, Welford for the variance with ddof 1, NaN skipped; std exactly 0 when the finite min equals the max).
//
// segmented_rank: perm (k x n) holds, for column c, the rows of each segment ordered by value with NaN last,
// segment s at perm[c][offs[s] .. offs[s+1]) (the wrapper sorts). Each run of equal values gets the mean of
// its 1-based ranks; NaN rows are left untouched (the wrapper fills NaN).

extern "C" __global__ void segmented_stats(const double* __restrict__ vals, const long long* __restrict__ order,
                                           const long long* __restrict__ offs, long long n, long long n_seg,
                                           long long k, double* __restrict__ stats) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= k * n_seg) return;
    const long long c = j / n_seg, s = j % n_seg;
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
    const long long plane = k * n_seg, at = c * n_seg + s;
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

extern "C" __global__ void segmented_rank(const double* __restrict__ vals, const long long* __restrict__ perm,
                                          const long long* __restrict__ offs, long long n, long long n_seg,
                                          long long k, double* __restrict__ rank) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= k * n_seg) return;
    const long long c = j / n_seg, s = j % n_seg;
    const double* col = vals + c * n;
    const long long* p = perm + c * n;
    double* out = rank + c * n;
    const long long lo = offs[s], hi = offs[s + 1];
    long long i = lo;
    while (i < hi) {
        const double v = col[p[i]];
        if (v != v) break;  // NaN last: the rest of the segment is missing
        long long e = i;
        while (e + 1 < hi && col[p[e + 1]] == v) ++e;
        const double avg = (double)((i - lo) + (e - lo) + 2) * 0.5;
        for (long long t = i; t <= e; ++t) out[p[t]] = avg;
        i = e + 1;
    }
}
