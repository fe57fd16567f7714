using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The linear layer: y[m, n] = Σ_k x[m, k]·W[n, k]. x and y are F32, row-major; W is an F32, BF16 or F16
/// tensor [N, K] in Hugging Face layout (out_features × in_features), read in its own dtype and widened in
/// registers. Threads take blocks of <see cref="RowBlock"/> output rows from a shared counter.
/// Decode (m = 1) is a GEMV, memory-bound: an MLP up projection N=5632, K=2048 in bf16 moves 23.1 MB of
/// weights (+8 KB x) for 23.1 MFLOP (1 FLOP/byte); floor at 60 GB/s: 0.38 ms.
/// Prefill (m ≥ 4) tiles 4 tokens × 4 rows so each weight vector widened serves 4 tokens; compute-bound.
/// Measured (bench/Lowbit.Bench.Kernels, 2 threads, shared 2-core Zen 5, 2026-11-24): bf16 GEMV 5632×2048
/// 1.22 ms = 19.0 GB/s = 96% of the same run's read bandwidth (2048×5632: 86-95%); bf16 prefill m=64
/// 2048×2048 179 GFLOP/s, ~90 GFLOP/s a core (FMA peak 117). Details: docs/cpu-kernels.md.
/// The loops: <see cref="MatMulKernel"/>.
/// </summary>
public static unsafe class MatMul
{
    /// <summary>Output rows per work item: the row-group of the register tile.</summary>
    internal const int RowBlock = 4;

    /// <summary>Multiply-adds below which a product runs on one thread: 64K is ~5 us on one core, the
    /// order of a worker's wake-up on a busy machine (stories260K's layers are all below it).</summary>
    internal const long MinParallelMacs = 1 << 16;

    /// <summary>Row blocks are handed out in about this many grabs per thread (see MatMulKernel.Worker).</summary>
    private const int GrabsPerThread = 16;

    /// <summary>y[m, N] = x[m, K] · W[N, K]ᵀ on <see cref="CpuThreadPool.Shared"/>.</summary>
    /// <exception cref="ArgumentException">x is not m·K long, y is not m·N long, or W is not rank 2.</exception>
    /// <exception cref="NotSupportedException">W's dtype is not F32, BF16 or F16.</exception>
    public static void Compute(ReadOnlySpan<float> x, int m, Tensor w, Span<float> y) =>
        Compute(CpuCapabilities.Best, CpuThreadPool.Shared, x, m, w, y);

    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Tensor w, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(pool);
        if (w.Rank != 2)
            throw new ArgumentException($"MatMul: the weight must be [N, K]; got {w}.", nameof(w));
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        int n = w.Shape[0], k = w.Shape[1];
        if ((long)m * k != x.Length)
            throw new ArgumentException($"MatMul: x has {x.Length} elements; m·K = {m}·{k} expected for weight {w}.", nameof(x));
        if ((long)m * n != y.Length)
            throw new ArgumentException($"MatMul: y has {y.Length} elements; m·N = {m}·{n} expected for weight {w}.", nameof(y));
        if (m == 0 || n == 0)
            return;
        if (k == 0)
        {
            y.Clear();
            return;
        }

        int blocks = (int)((n + (long)RowBlock - 1) / RowBlock);
        fixed (float* px = x)
        fixed (float* py = y)
        {
            var job = new MatMulKernel.Job
            {
                X = px,
                W = (byte*)w.Data,
                RowBytes = (nint)k * w.DType.Size(),
                Y = py,
                M = m,
                N = n,
                K = k,
                Blocks = blocks,
                Grab = Math.Max(1, blocks / (GrabsPerThread * pool.ThreadCount)),
            };
            // A product too small to pay for waking a worker (a few microseconds) runs on the caller alone.
            int parts = (long)m * n * k < MinParallelMacs ? 1 : Math.Min(pool.ThreadCount, blocks);
            pool.Run(Select(level, w.DType), &job, parts);
        }
    }

    private static delegate*<void*, int, int, void> Select(SimdLevel level, DType dtype) => dtype switch
    {
        DType.F32 => Select<F32Weights>(level),
        DType.BF16 => Select<Bf16Weights>(level),
        DType.F16 => Select<F16Weights>(level),
        _ => throw new NotSupportedException($"MatMul: weights of dtype {dtype} are not supported on the CPU (F32, BF16, F16 are)."),
    };

    private static delegate*<void*, int, int, void> Select<TW>(SimdLevel level)
        where TW : IWeightType => level switch
        {
            SimdLevel.Avx512 => &MatMulKernel.Worker<Simd512, System.Runtime.Intrinsics.Vector512<float>, TW>,
            SimdLevel.Avx2 => &MatMulKernel.Worker<Simd256, System.Runtime.Intrinsics.Vector256<float>, TW>,
            _ => &MatMulKernel.Worker<SimdScalar, float, TW>,
        };
}
