// kNN graph kernels for the daily correlation graphs. CPU twins: gpuetl/kernels/knn.py (same rules, same
// arithmetic order; compiled with --fmad=false so no product is fused into an FMA the CPU does not do).
//
// shrunk_correlation: covariance matrices s[b] (n x n, row-major, float64) -> in place, for every pair
// i < j computed ONCE and written to both (i, j) and (j, i), so the result is exactly symmetric:
//     h   = 0.5 * (s[i,j] + s[j,i]);  rho = (h * inv[i]) * inv[j]          (inv = 1 / sqrt(diag))
//     sh  = keep * rho + gamma * target[b]                                  (keep = 1 - gamma)
//     q   = rint(sh * scale) / scale                                        (scale = 2^bits: a fixed grid)
//     out = q if (valid[i] && valid[j] && q >= threshold) else -inf;  the diagonal is -inf.
// Tiles of 32 x 32: block (tj, ti, b) with ti <= tj loads s[I, J] and s[J, I] into shared memory, so both
// the reads and the mirrored writes are coalesced.
//
// row_topk: per row of x (rows x cols, float64), the TOPK_K largest entries in the order (value descending,
// column ascending); -inf and NaN are never selected; missing slots are (-1, -inf). One warp per row: each
// lane keeps its own sorted list over columns lane, lane + 32, ... (increasing, so ties keep the smaller
// column first), then TOPK_K rounds of a warp-wide arg-max over the lanes' heads.

#ifndef TOPK_K
#define TOPK_K 15
#endif

#define TILE 32
#define NEG_INF (-__longlong_as_double(0x7ff0000000000000LL))

extern "C" __global__ void shrunk_correlation(double* __restrict__ s, const double* __restrict__ inv,
                                              const unsigned char* __restrict__ valid,
                                              const double* __restrict__ target, long long n, double keep,
                                              double gamma, double threshold, double scale) {
    const long long tj = blockIdx.x, ti = blockIdx.y, b = blockIdx.z;
    if (ti > tj) return;
    __shared__ double a[TILE][TILE + 1];  // a[r][c] = s[i0 + r, j0 + c]
    __shared__ double m[TILE][TILE + 1];  // m[r][c] = s[j0 + r, i0 + c]
    double* sb = s + b * n * n;
    const double* invb = inv + b * n;
    const unsigned char* vb = valid + b * n;
    const long long i0 = ti * TILE, j0 = tj * TILE;
    const int c = threadIdx.x;
    for (int r = threadIdx.y; r < TILE; r += blockDim.y) {
        a[r][c] = (i0 + r < n && j0 + c < n) ? sb[(i0 + r) * n + j0 + c] : 0.0;
        m[r][c] = (j0 + r < n && i0 + c < n) ? sb[(j0 + r) * n + i0 + c] : 0.0;
    }
    __syncthreads();
    double out[TILE / 8];
    const double t = target[b];
    int k = 0;
    for (int r = threadIdx.y; r < TILE; r += blockDim.y, ++k) {
        const long long i = i0 + r, j = j0 + c;
        double v = NEG_INF;
        if (i < n && j < n && i != j && vb[i] && vb[j]) {
            const long long lo = i < j ? i : j, hi = i < j ? j : i;
            double h = 0.5 * (a[r][c] + m[c][r]);
            h = h * invb[lo];
            h = h * invb[hi];
            const double sh = keep * h + gamma * t;
            const double q = rint(sh * scale) / scale;
            if (q >= threshold) v = q;
        }
        out[k] = v;
    }
    __syncthreads();  // every read of a and m is done: m becomes the transposed output tile
    k = 0;
    for (int r = threadIdx.y; r < TILE; r += blockDim.y, ++k) {
        const long long i = i0 + r, j = j0 + c;
        if (i < n && j < n) sb[i * n + j] = out[k];
        m[c][r] = out[k];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < TILE; r += blockDim.y) {
        const long long j = j0 + r, i = i0 + c;  // mirrored element (j, i) = value of (i, j)
        if (i < n && j < n) sb[j * n + i] = m[r][c];
    }
}

extern "C" __global__ void row_topk(const double* __restrict__ x, long long rows, long long cols,
                                    int* __restrict__ out_idx, double* __restrict__ out_val) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // warp-uniform
    const double* xr = x + row * cols;
    double bv[TOPK_K];
    int bi[TOPK_K];
    int cnt = 0;
    for (long long col = lane; col < cols; col += 32) {
        const double v = xr[col];
        if (!(v > NEG_INF)) continue;  // -inf and NaN
        if (cnt == TOPK_K && !(v > bv[TOPK_K - 1])) continue;  // a tie with a kept value loses: larger column
        int p = cnt < TOPK_K ? cnt : TOPK_K - 1;
        while (p > 0 && v > bv[p - 1]) {
            bv[p] = bv[p - 1];
            bi[p] = bi[p - 1];
            --p;
        }
        bv[p] = v;
        bi[p] = (int)col;
        if (cnt < TOPK_K) ++cnt;
    }
    int head = 0;
    int k = 0;
    for (; k < TOPK_K; ++k) {
        double v = head < cnt ? bv[head] : NEG_INF;
        int col = head < cnt ? bi[head] : 0x7fffffff;
        int src = lane;
        for (int off = 16; off > 0; off >>= 1) {
            const double ov = __shfl_xor_sync(0xffffffffu, v, off);
            const int oc = __shfl_xor_sync(0xffffffffu, col, off);
            const int os = __shfl_xor_sync(0xffffffffu, src, off);
            if (ov > v || (ov == v && oc < col)) {
                v = ov;
                col = oc;
                src = os;
            }
        }
        if (!(v > NEG_INF)) break;  // every lane agrees: nothing left
        if (lane == src) ++head;
        if (lane == 0) {
            out_idx[row * TOPK_K + k] = col;
            out_val[row * TOPK_K + k] = v;
        }
    }
    if (lane == 0) {
        for (; k < TOPK_K; ++k) {
            out_idx[row * TOPK_K + k] = -1;
            out_val[row * TOPK_K + k] = NEG_INF;
        }
    }
}
