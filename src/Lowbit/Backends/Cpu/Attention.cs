using System.Runtime.Intrinsics;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// Causal grouped-query attention over one layer's KV cache. For token j (position p = startPos + j) and
/// query head h, with D = headDim and kv head g = h / (heads / kvHeads):
///   s[t] = q[j, h]·K[t, g] / sqrt(D) for t ≤ p;  a = softmax(s);  out[j, h] = Σ_t a[t]·V[t, g].
/// Shapes: q and out [m, heads·D]; K and V caches [maxSeq, kvHeads·D], f32, row-major, rows 0..startPos+m−1
/// already written. Threads split the (token, head) pairs into ThreadCount contiguous parts; part i keeps its
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

    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> q, ReadOnlySpan<float> kCache, ReadOnlySpan<float> vCache, int m, int heads, int kvHeads, int headDim, int startPos, Span<float> scratch, Span<float> output)
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
        int kvDim = kvHeads * headDim;
        if (kCache.Length != vCache.Length || kCache.Length % kvDim != 0)
            throw new ArgumentException($"Attention: the K and V caches must both be [maxSeq, {kvDim}]; got {kCache.Length} and {vCache.Length} elements.", nameof(kCache));
        int maxSeq = kCache.Length / kvDim;
        if ((long)startPos + m > maxSeq)
            throw new ArgumentException($"Attention: positions {startPos}..{startPos + m - 1} do not fit a cache of {maxSeq} positions.", nameof(startPos));
        if (scratch.Length < maxSeq || maxSeq == 0)
            throw new ArgumentException($"Attention: scratch has {scratch.Length} floats; at least maxSeq = {maxSeq} (ScratchLength(threads, maxSeq) for all threads) expected.", nameof(scratch));
        if (m == 0)
            return;

        fixed (float* pq = q)
        fixed (float* pk = kCache)
        fixed (float* pv = vCache)
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
            delegate*<void*, int, int, void> work = level switch
            {
                SimdLevel.Avx512 => &Parts<Simd512, Vector512<float>>,
                SimdLevel.Avx2 => &Parts<Simd256, Vector256<float>>,
                _ => &Parts<SimdScalar, float>,
            };
            pool.Run(work, &job, job.Parts);
        }
    }

    private struct Job
    {
        public float* Q, K, V, Scratch, Out;
        public int Pairs, Heads, Group, HeadDim, KvDim, StartPos, MaxSeq, Parts;
        public float Scale;
    }

    /// <summary>Pool work item: parts [start, end); part i does pairs [Pairs·i/Parts, Pairs·(i+1)/Parts).</summary>
    private static void Parts<TS, TV>(void* context, int start, int end)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        Job* job = (Job*)context;
        for (int part = start; part < end; part++)
        {
            float* scores = job->Scratch + ((nint)part * job->MaxSeq);
            int first = (int)((long)job->Pairs * part / job->Parts);
            int last = (int)((long)job->Pairs * (part + 1) / job->Parts);
            for (int pair = first; pair < last; pair++)
                Head<TS, TV>(job, pair / job->Heads, pair % job->Heads, scores);
        }
    }

    private static void Head<TS, TV>(Job* job, int token, int head, float* scores)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        int d = job->HeadDim;
        nint kvDim = job->KvDim;
        nint offset = (((nint)token * job->Heads) + head) * d;
        float* q = job->Q + offset;
        float* k = job->K + ((nint)(head / job->Group) * d);
        int length = job->StartPos + token + 1;

        // Scores: four cache rows per Dot4 (one transpose-and-add for four dot products).
        int t = 0;
        for (; t + 4 <= length; t += 4)
            MatMulKernel.Dot4<TS, TV, F32Weights>(q, (byte*)(k + (t * kvDim)), kvDim * sizeof(float), d, scores + t);
        for (; t < length; t++)
            scores[t] = MatMulKernel.Dot1<TS, TV, F32Weights>(q, (byte*)(k + (t * kvDim)), d);
        Softmax.Row<TS, TV>(scores, length, job->Scale);

        float* v = job->V + ((nint)(head / job->Group) * d);
        float* output = job->Out + offset;
        int i = 0;
        WeightedSum<TS, TV>(scores, v, kvDim, length, d, output, ref i);
        WeightedSum<SimdScalar, float>(scores, v, kvDim, length, d, output, ref i);
    }

    /// <summary>output[i] = Σ_t p[t]·v[t·stride + i] for whole vectors of i from i on. Strips of 4 vectors
    /// (all of D = 64 at 512 bits) stay in registers while the positions are swept, so each cache row is read
    /// once, in order, and output is written once.</summary>
    private static void WeightedSum<TS, TV>(float* p, float* v, nint stride, int length, int d, float* output, ref int i)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        int c = TS.Count;
        for (; i <= d - (4 * c); i += 4 * c)
        {
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            float* row = v + i;
            for (int t = 0; t < length; t++, row += stride)
            {
                TV pt = TS.Broadcast(p[t]);
                a0 = TS.MultiplyAdd(pt, TS.Load(row), a0);
                a1 = TS.MultiplyAdd(pt, TS.Load(row + c), a1);
                a2 = TS.MultiplyAdd(pt, TS.Load(row + (2 * c)), a2);
                a3 = TS.MultiplyAdd(pt, TS.Load(row + (3 * c)), a3);
            }

            TS.Store(output + i, a0);
            TS.Store(output + i + c, a1);
            TS.Store(output + i + (2 * c), a2);
            TS.Store(output + i + (3 * c), a3);
        }

        for (; i <= d - c; i += c)
        {
            TV a = TS.Zero;
            float* row = v + i;
            for (int t = 0; t < length; t++, row += stride)
                a = TS.MultiplyAdd(TS.Broadcast(p[t]), TS.Load(row), a);
            TS.Store(output + i, a);
        }
    }
}
