using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// Causal grouped-query attention over one layer's KV cache. For token j (position p = startPos + j) and
/// query head h, with D = headDim and kv head g = h / (heads / kvHeads):
///   s[t] = q[j, h]·K[t, g] / sqrt(D) for t ≤ p;  a = softmax(s);  out[j, h] = Σ_t a[t]·V[t, g].
/// Shapes: q and out [m, heads·D]; K and V caches [maxSeq, kvHeads·D], f32 or bf16 (read widened in registers,
/// as bf16 weights are), row-major, rows 0..startPos+m−1 already written. Threads split the (token, head) pairs into ThreadCount contiguous parts; part i keeps its
/// scores in scratch[i·maxSeq ..], so nothing allocates. Pairs run head-major within a token, so the heads
/// of one kv group follow each other and find that group's cache rows in L2.
/// Decode at p = 1023 (32 heads, 4 kv heads, D = 64): reads 2·1024·256·4 = 2 MB of cache, 8.4 MFLOP.
/// Measured 137 us on 2 threads, best of 3 runs (bench --filter decode, shared 2-core Zen 5, 2026-11-24;
/// 344 us before scores went 4 rows per Dot4 and the weighted sum kept its strip in registers).
/// </summary>
public static unsafe class Attention
{
    /// <summary>Floats of scratch that <see cref="Compute"/> needs to use <paramref name="threads"/> threads
    /// (a smaller scratch, at least maxSeq, uses fewer threads).</summary>
    public static int ScratchLength(int threads, int maxSeq)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxSeq);
        return checked(threads * maxSeq);
    }

    /// <exception cref="ArgumentException">A span's length does not match the shapes, heads is not a multiple
    /// of kvHeads, startPos + m exceeds the cache, or scratch is shorter than maxSeq.</exception>
    public static void Compute(ReadOnlySpan<float> q, ReadOnlySpan<float> kCache, ReadOnlySpan<float> vCache, int m, int heads, int kvHeads, int headDim, int startPos, Span<float> scratch, Span<float> output) =>
        Compute(CpuCapabilities.Best, CpuThreadPool.Shared, q, kCache, vCache, m, heads, kvHeads, headDim, startPos, scratch, output);

    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> q, ReadOnlySpan<float> kCache, ReadOnlySpan<float> vCache, int m, int heads, int kvHeads, int headDim, int startPos, Span<float> scratch, Span<float> output) =>
        Compute(level, pool, q, MemoryMarshal.AsBytes(kCache), MemoryMarshal.AsBytes(vCache), DType.F32, m, heads, kvHeads, headDim, startPos, scratch, output);

    /// <summary>Attention over caches of <paramref name="cacheType"/> elements (F32 or BF16) given as bytes.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> q, ReadOnlySpan<byte> kCache, ReadOnlySpan<byte> vCache, DType cacheType, int m, int heads, int kvHeads, int headDim, int startPos, Span<float> scratch, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(startPos);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        if (heads % kvHeads != 0)
            throw new ArgumentException($"Attention: heads ({heads}) must be a multiple of kvHeads ({kvHeads}).", nameof(kvHeads));
        long qLength = (long)m * heads * headDim;
        if (q.Length != qLength)
            throw new ArgumentException($"Attention: q has {q.Length} elements; m·heads·headDim = {m}·{heads}·{headDim} expected.", nameof(q));
        if (output.Length != qLength)
            throw new ArgumentException($"Attention: output has {output.Length} elements; m·heads·headDim = {m}·{heads}·{headDim} expected.", nameof(output));
        if (cacheType is not (DType.F32 or DType.BF16))
            throw new NotSupportedException($"Attention: the KV cache is F32 or BF16, not {cacheType}.");
        int kvDim = kvHeads * headDim, rowBytes = kvDim * cacheType.Size();
        if (kCache.Length != vCache.Length || kCache.Length % rowBytes != 0)
            throw new ArgumentException($"Attention: the K and V caches must both be [maxSeq, {kvDim}] {cacheType}; got {kCache.Length} and {vCache.Length} bytes.", nameof(kCache));
        int maxSeq = kCache.Length / rowBytes;
        if ((long)startPos + m > maxSeq)
            throw new ArgumentException($"Attention: positions {startPos}..{startPos + m - 1} do not fit a cache of {maxSeq} positions.", nameof(startPos));
        if (scratch.Length < maxSeq || maxSeq == 0)
            throw new ArgumentException($"Attention: scratch has {scratch.Length} floats; at least maxSeq = {maxSeq} (ScratchLength(threads, maxSeq) for all threads) expected.", nameof(scratch));
        if (m == 0)
            return;

        fixed (float* pq = q)
        fixed (byte* pk = kCache)
        fixed (byte* pv = vCache)
        fixed (float* ps = scratch)
        fixed (float* po = output)
        {
            var job = new Job
            {
                Q = pq,
                K = pk,
                V = pv,
                Scratch = ps,
                Out = po,
                Pairs = m * heads,
                Heads = heads,
                Group = heads / kvHeads,
                HeadDim = headDim,
                KvDim = kvDim,
                StartPos = startPos,
                MaxSeq = maxSeq,
                // Short contexts of small heads run on one thread, like small matrix products.
                Parts = (long)m * heads * headDim * (startPos + m) < MatMul.MinParallelMacs ? 1
                    : Math.Min(Math.Min(pool.ThreadCount, scratch.Length / maxSeq), m * heads),
                Scale = 1f / MathF.Sqrt(headDim),
            };
            delegate*<void*, int, int, void> work = (level, cacheType) switch
            {
                (SimdLevel.Avx512, DType.F32) => &Parts<Simd512, Vector512<float>, F32Weights>,
                (SimdLevel.Avx2, DType.F32) => &Parts<Simd256, Vector256<float>, F32Weights>,
                (_, DType.F32) => &Parts<SimdScalar, float, F32Weights>,
                (SimdLevel.Avx512, _) => &Parts<Simd512, Vector512<float>, Bf16Weights>,
                (SimdLevel.Avx2, _) => &Parts<Simd256, Vector256<float>, Bf16Weights>,
                _ => &Parts<SimdScalar, float, Bf16Weights>,
            };
            pool.Run(work, &job, job.Parts);
        }
    }

    private struct Job
    {
        public float* Q, Scratch, Out;
        public byte* K, V;
        public int Pairs, Heads, Group, HeadDim, KvDim, StartPos, MaxSeq, Parts;
        public float Scale;
    }

    /// <summary>Pool work item: parts [start, end); part i does pairs [Pairs·i/Parts, Pairs·(i+1)/Parts).</summary>
    private static void Parts<TS, TV, TC>(void* context, int start, int end)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TC : IWeightType
    {
        Job* job = (Job*)context;
        for (int part = start; part < end; part++)
        {
            float* scores = job->Scratch + ((nint)part * job->MaxSeq);
            int first = (int)((long)job->Pairs * part / job->Parts);
            int last = (int)((long)job->Pairs * (part + 1) / job->Parts);
            for (int pair = first; pair < last; pair++)
                Head<TS, TV, TC>(job, pair / job->Heads, pair % job->Heads, scores);
        }
    }

    /// <typeparam name="TC">The cache's element type (how a row is read into f32 registers).</typeparam>
    private static void Head<TS, TV, TC>(Job* job, int token, int head, float* scores)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TC : IWeightType
    {
        int d = job->HeadDim;
        nint kvDim = job->KvDim, rowBytes = kvDim * TC.Size;
        nint offset = (((nint)token * job->Heads) + head) * d;
        float* q = job->Q + offset;
        byte* k = job->K + ((nint)(head / job->Group) * d * TC.Size);
        int length = job->StartPos + token + 1;

        // Scores: four cache rows per Dot4 (one transpose-and-add for four dot products).
        int t = 0;
        for (; t + 4 <= length; t += 4)
            MatMulKernel.Dot4<TS, TV, TC>(q, k + (t * rowBytes), rowBytes, d, scores + t);
        for (; t < length; t++)
            scores[t] = MatMulKernel.Dot1<TS, TV, TC>(q, k + (t * rowBytes), d);
        Softmax.Row<TS, TV>(scores, length, job->Scale);

        byte* v = job->V + ((nint)(head / job->Group) * d * TC.Size);
        float* output = job->Out + offset;
        int i = 0;
        WeightedSum<TS, TV, TC>(scores, v, rowBytes, length, d, output, ref i);
        WeightedSum<SimdScalar, float, TC>(scores, v, rowBytes, length, d, output, ref i);
    }

    /// <summary>output[i] = Σ_t p[t]·v[t·stride + i] for whole vectors of i from i on. Strips of 4 vectors
    /// (all of D = 64 at 512 bits) stay in registers while the positions are swept, so each cache row is read
    /// once, in order, and output is written once. <paramref name="stride"/> is a cache row's bytes.</summary>
    private static void WeightedSum<TS, TV, TC>(float* p, byte* v, nint stride, int length, int d, float* output, ref int i)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TC : IWeightType
    {
        int c = TS.Count;
        for (; i <= d - (4 * c); i += 4 * c)
        {
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            byte* row = v;
            for (int t = 0; t < length; t++, row += stride)
            {
                TV pt = TS.Broadcast(p[t]);
                a0 = TS.MultiplyAdd(pt, TC.Load<TS, TV>(row, i), a0);
                a1 = TS.MultiplyAdd(pt, TC.Load<TS, TV>(row, i + c), a1);
                a2 = TS.MultiplyAdd(pt, TC.Load<TS, TV>(row, i + (2 * c)), a2);
                a3 = TS.MultiplyAdd(pt, TC.Load<TS, TV>(row, i + (3 * c)), a3);
            }

            TS.Store(output + i, a0);
            TS.Store(output + i + c, a1);
            TS.Store(output + i + (2 * c), a2);
            TS.Store(output + i + (3 * c), a3);
        }

        for (; i <= d - c; i += c)
        {
            TV a = TS.Zero;
            byte* row = v;
            for (int t = 0; t < length; t++, row += stride)
                a = TS.MultiplyAdd(TS.Broadcast(p[t]), TC.Load<TS, TV>(row, i), a);
            TS.Store(output + i, a);
        }
    }
}
