// A CUDA execution model on the host, for running kernels/*.cu where there is no GPU (tests only).
//
// The kernel source is compiled by g++ with this header in front. Blocks run one after another; the
// threads of a block run as OS threads, so __syncthreads() is a real barrier and `__shared__` (a static
// local) is shared by the block's threads. Warp shuffles exchange values through a per-warp buffer
// between two warp barriers. A thread that returns drops out of its barriers, as exited threads do on
// the device. Kernels that neither sync nor shuffle run their threads in order on one OS thread.
// Not modelled: memory spaces, races between threads that CUDA would also leave undefined, timing.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace cudasim {

struct Block {
    explicit Block(unsigned n) : bar(n), xchg(n) {
        for (unsigned w = 0; w * 32 < n; ++w) {
            const unsigned lanes = n - w * 32 < 32 ? n - w * 32 : 32;
            warp_bars.emplace_back(std::make_unique<std::barrier<>>(lanes));
        }
    }
    std::barrier<> bar;
    std::vector<std::unique_ptr<std::barrier<>>> warp_bars;
    std::vector<std::uint64_t> xchg;
};

inline thread_local dim3 t_idx, b_idx;
inline thread_local unsigned t_linear = 0;
inline thread_local Block* t_block = nullptr;
inline dim3 b_dim, g_dim;

template <class F>
void launch(dim3 grid, dim3 block, bool threaded, F&& body) {
    g_dim = grid;
    b_dim = block;
    const unsigned n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                auto run = [&, bx, by, bz](unsigned lin, Block* blk) {
                    b_idx = dim3{bx, by, bz};
                    t_idx = dim3{lin % block.x, (lin / block.x) % block.y, lin / (block.x * block.y)};
                    t_linear = lin;
                    t_block = blk;
                    body();
                    if (blk) {  // an exited thread no longer holds up __syncthreads or its warp
                        blk->warp_bars[lin / 32]->arrive_and_drop();
                        blk->bar.arrive_and_drop();
                    }
                };
                if (!threaded) {
                    for (unsigned lin = 0; lin < n; ++lin) run(lin, nullptr);
                    continue;
                }
                Block blk(n);
                std::vector<std::thread> threads;
                threads.reserve(n);
                for (unsigned lin = 0; lin < n; ++lin) threads.emplace_back(run, lin, &blk);
                for (auto& t : threads) t.join();
            }
}

}  // namespace cudasim

#define threadIdx (::cudasim::t_idx)
#define blockIdx (::cudasim::b_idx)
#define blockDim (::cudasim::b_dim)
#define gridDim (::cudasim::g_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { ::cudasim::t_block->bar.arrive_and_wait(); }

inline double __longlong_as_double(long long v) {
    double d;
    std::memcpy(&d, &v, sizeof d);
    return d;
}

inline long long __double_as_longlong(double d) {
    long long v;
    std::memcpy(&v, &d, sizeof v);
    return v;
}

// round-to-nearest products and sums; the library is compiled with -ffp-contract=off, like --fmad=false
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }

template <class T>
T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask) {
    static_assert(sizeof(T) <= sizeof(std::uint64_t), "shuffles move at most 64 bits");
    ::cudasim::Block* blk = ::cudasim::t_block;
    const unsigned lin = ::cudasim::t_linear, warp = lin / 32, lane = lin % 32;
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    blk->xchg[lin] = bits;
    blk->warp_bars[warp]->arrive_and_wait();
    const std::uint64_t other = blk->xchg[warp * 32 + (lane ^ static_cast<unsigned>(lane_mask))];
    blk->warp_bars[warp]->arrive_and_wait();
    T out;
    std::memcpy(&out, &other, sizeof(T));
    return out;
}
