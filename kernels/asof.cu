// Segmented as-of join (pandas merge_asof semantics, backward/forward, exact-match rule, tolerance).
// One thread per left row: a binary search for (key, x) over the right side's (by, on) pairs, sorted
// lexicographically. Rows are independent, so threads never wait on each other and the load is even
// whatever the segment sizes (8 market sections or a million code-period segments); one thread per
// segment would serialise the big segments. Same search, step for step, as the CPU twin in
// gpuetl/kernels/asof.py.
// lby/rby: int64 keys, lon/ron: T (int64 or double), out: int64 index into the right rows or -1.

template <typename T>
__device__ void asof_one(const long long* __restrict__ lby, const T* __restrict__ lon,
                         const long long* __restrict__ rby, const T* __restrict__ ron, long long m,
                         int backward, int exact, int use_tol, T tol, long long* __restrict__ out,
                         long long i) {
    const long long k = lby[i];
    const T x = lon[i];
    // upper: the first right row with (by, on) > (k, x), else the first with (by, on) >= (k, x)
    const bool upper = (backward != 0) == (exact != 0);
    long long lo = 0, hi = m;
    while (lo < hi) {
        const long long mid = (lo + hi) >> 1;
        const long long b = rby[mid];
        const bool before = upper ? (b < k || (b == k && ron[mid] <= x)) : (b < k || (b == k && ron[mid] < x));
        if (before) lo = mid + 1; else hi = mid;
    }
    const long long j = backward ? lo - 1 : lo;
    if (j < 0 || j >= m || rby[j] != k) {
        out[i] = -1;
    } else if (use_tol && (backward ? (x - ron[j] > tol) : (ron[j] - x > tol))) {
        out[i] = -1;
    } else {
        out[i] = j;
    }
}

extern "C" __global__ void segmented_asof_i64(const long long* __restrict__ lby, const long long* __restrict__ lon,
                                              const long long* __restrict__ rby, const long long* __restrict__ ron,
                                              long long n, long long m, int backward, int exact, int use_tol,
                                              long long tol, long long* __restrict__ out) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        asof_one<long long>(lby, lon, rby, ron, m, backward, exact, use_tol, tol, out, i);
    }
}

extern "C" __global__ void segmented_asof_f64(const long long* __restrict__ lby, const double* __restrict__ lon,
                                              const long long* __restrict__ rby, const double* __restrict__ ron,
                                              long long n, long long m, int backward, int exact, int use_tol,
                                              double tol, long long* __restrict__ out) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        asof_one<double>(lby, lon, rby, ron, m, backward, exact, use_tol, tol, out, i);
    }
}
