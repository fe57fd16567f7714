using System.Runtime.Intrinsics;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// Causal grouped-query attention over one layer's KV cache. For token j (position p = startPos + j) and
/// query head h, with D = headDim and kv head g = h / (heads / kvHeads):
///   s[t] = q[j, h]·K[t, g] / sqrt(D) for t ≤ p;  a = softmax(s);  out[j, h] = Σ_t a[t]·V[t, g].
/// Shapes: q and out [m, heads·D]; K and V caches [maxSeq, kvHeads·D], f32, row-major, rows 0..startPos+m−1
/// already written. Threads split the (token, head) pairs into ThreadCount contiguous parts; part i keeps its
/// scores in scratch[i·maxSeq ..], so nothing allocates.
/// Decode at p = 1023 (32 heads, 4 kv heads, D = 64): reads 2·1024·256·4 = 2 MB of cache, 8.4 MFLOP.
/// Measured 359 us on 2 threads (bench --filter decode, shared 2-core Zen 5, 2026-11-24): 5.8 GB/s, far
/// from bandwidth, because each query head re-reads its kv head's rows; sharing them across the 8 heads
/// of a group is the next step.
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
                Parts = Math.Min(Math.Min(pool.ThreadCount, scratch.Length / maxSeq), m * heads),
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
        float* output = job->Out + offset;
        nint kvOffset = (nint)(head / job->Group) * d;
        int length = job->StartPos + token + 1;

        for (int t = 0; t < length; t++)
            scores[t] = MatMulKernel.Dot1<TS, TV, F32Weights>(q, (byte*)(job->K + (t * kvDim) + kvOffset), d) * job->Scale;
        Softmax.Row<TS, TV>(scores, length);

        new Span<float>(output, d).Clear();
        for (int t = 0; t < length; t++)
        {
            float* v = job->V + (t * kvDim) + kvOffset;
            int i = 0;
            Axpy<TS, TV>(scores[t], v, output, d, ref i);
            Axpy<SimdScalar, float>(scores[t], v, output, d, ref i);
        }
    }

    /// <summary>y[i] += a·x[i] over whole vectors from i on.</summary>
    private static void Axpy<TS, TV>(float a, float* x, float* y, int n, ref int i)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        TV av = TS.Broadcast(a);
        for (; i <= n - TS.Count; i += TS.Count)
            TS.Store(y + i, TS.MultiplyAdd(av, TS.Load(x + i), TS.Load(y + i)));
    }
}
