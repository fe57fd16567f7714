using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The inner loops of <see cref="MatMul"/>, written once over the vector width (TS) and the weight dtype
/// (TW). Every output is a dot product along K of an x row and a W row, both contiguous:
/// <list type="bullet">
/// <item><see cref="Dot4"/>: one token × 4 weight rows, 2 accumulators a row (8 FMA chains in flight);
/// the GEMV (decode) loop, and the token tail of a prefill.</item>
/// <item><see cref="Tile4x4"/>: 4 tokens × 4 weight rows, 16 accumulators, each weight vector widened once
/// and used by 4 tokens (prefill).</item>
/// </list>
/// Four accumulators end in one <see cref="ISimd{TV}.Sum4"/> (a transpose-and-add) and one 16-byte store.
/// K tails run in scalar f32. Offsets into W are nint (rows may lie past 2^31 bytes).
/// </summary>
internal static unsafe class MatMulKernel
{
    /// <summary>K slice of a prefill tile: 4 tokens × 512 f32 = 8 KB of x stays in L1 (32 KB here).</summary>
    internal const int KBlock = 512;


    /// <summary>One call: pointers to x [M, K], W [N, K] (RowBytes apart) and y [M, N]; row blocks are
    /// handed out <see cref="Grab"/> at a time from <see cref="Next"/>.</summary>
    internal struct Job
    {
        public float* X;
        public byte* W;
        public nint RowBytes;
        public float* Y;
        public int M;
        public int N;
        public int K;
        public int Blocks;
        public int Grab;
        public int Next;
    }

    /// <summary>Pool work item (one per thread): takes <see cref="Job.Grab"/> row blocks at a time until
    /// none are left. Handing blocks out dynamically, as ggml does, keeps both cores busy when the other
    /// thread loses its core for a while (this machine is shared); a static split would wait for it.</summary>
    public static void Worker<TS, TV, TW>(void* context, int start, int end)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TW : IWeightType
    {
        Job* job = (Job*)context;
        while (true)
        {
            int first = Interlocked.Add(ref job->Next, job->Grab) - job->Grab;
            if (first >= job->Blocks)
                return;
            Blocks<TS, TV, TW>(job, first, Math.Min(first + job->Grab, job->Blocks));
        }
    }

    /// <summary>Row blocks [start, end) of <see cref="MatMul.RowBlock"/> rows, every token. Whole groups of
    /// 4 tokens go through <see cref="Tile4x4"/> in K slices of <see cref="KBlock"/>, token group outermost,
    /// so a group's x slice (4·KBlock f32 = 8 KB) stays in L1 while the weight slices stream from L2;
    /// the other tokens (m mod 4, all of a decode) go through <see cref="Dot4"/> over the whole of K.</summary>
    private static void Blocks<TS, TV, TW>(Job* job, int start, int end)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TW : IWeightType
    {
        float* x = job->X;
        float* y = job->Y;
        int m = job->M, n = job->N, k = job->K;
        nint rowBytes = job->RowBytes;
        int rowStart = start * MatMul.RowBlock;
        int rowEnd = Math.Min(end * MatMul.RowBlock, n);
        int fullRowsEnd = rowStart + ((rowEnd - rowStart) & ~3);
        int tileTokens = m & ~3;

        for (int k0 = 0; k0 < k && tileTokens > 0; k0 += KBlock)
        {
            int length = Math.Min(KBlock, k - k0);
            for (int t = 0; t < tileTokens; t += 4)
            {
                for (int r = rowStart; r < fullRowsEnd; r += 4)
                    Tile4x4<TS, TV, TW>(x + ((nint)t * k) + k0, k, job->W + (r * rowBytes) + ((nint)k0 * TW.Size), rowBytes, length, y + ((nint)t * n) + r, n, k0 > 0);
            }
        }

        for (int r = rowStart; r < fullRowsEnd; r += 4)
        {
            for (int t = tileTokens; t < m; t++)
                Dot4<TS, TV, TW>(x + ((nint)t * k), job->W + (r * rowBytes), rowBytes, k, y + ((nint)t * n) + r);
        }

        for (int r = fullRowsEnd; r < rowEnd; r++)
        {
            for (int t = 0; t < m; t++)
                y[((nint)t * n) + r] = Dot1<TS, TV, TW>(x + ((nint)t * k), job->W + (r * rowBytes), k);
        }
    }

    /// <summary>y[0..4) = x · W[row 0..4], rows rowBytes apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4<TS, TV, TW>(float* x, byte* w, nint rowBytes, int k, float* y)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TW : IWeightType
    {
        byte* w0 = w, w1 = w + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        nint c = TS.Count;
        TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
        TV b0 = TS.Zero, b1 = TS.Zero, b2 = TS.Zero, b3 = TS.Zero;
        nint i = 0;
        for (; i <= k - (2 * c); i += 2 * c)
        {
            // The hardware prefetcher trains per 4 KB page, and each row here is its own short stream
            // (a 2048-wide bf16 row is one page). Pull the next 4-row group into L2 at the pace this group
            // is read: measured 60-78% → 93-107% of read bandwidth (docs/cpu-kernels.md).
            PrefetchL2(w3 + rowBytes + (4 * i * TW.Size), 8 * c * TW.Size);

            Fma4<TS, TV>(TW.Load<TS, TV>(w0, i), TW.Load<TS, TV>(w1, i), TW.Load<TS, TV>(w2, i), TW.Load<TS, TV>(w3, i), TS.Load(x + i), ref a0, ref a1, ref a2, ref a3);
            nint j = i + c;
            Fma4<TS, TV>(TW.Load<TS, TV>(w0, j), TW.Load<TS, TV>(w1, j), TW.Load<TS, TV>(w2, j), TW.Load<TS, TV>(w3, j), TS.Load(x + j), ref b0, ref b1, ref b2, ref b3);
        }

        if (i <= k - c)
        {
            Fma4<TS, TV>(TW.Load<TS, TV>(w0, i), TW.Load<TS, TV>(w1, i), TW.Load<TS, TV>(w2, i), TW.Load<TS, TV>(w3, i), TS.Load(x + i), ref a0, ref a1, ref a2, ref a3);
            i += c;
        }

        Finish4<TS, TV, TW>(TS.Add(a0, b0), TS.Add(a1, b1), TS.Add(a2, b2), TS.Add(a3, b3), x, w, rowBytes, i, k, y, false);
    }

    /// <summary>y[t·n + j] (+)= x[t] · W[row j] over [0, k) for t, j in 0..4: x rows xStride apart, W rows
    /// rowBytes apart; adds to y when <paramref name="accumulate"/> (a later K slice).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile4x4<TS, TV, TW>(float* x, int xStride, byte* w, nint rowBytes, int k, float* y, int n, bool accumulate)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TW : IWeightType
    {
        byte* w0 = w, w1 = w + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        float* x0 = x, x1 = x + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
        nint c = TS.Count;
        TV c00 = TS.Zero, c01 = TS.Zero, c02 = TS.Zero, c03 = TS.Zero;
        TV c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero, c13 = TS.Zero;
        TV c20 = TS.Zero, c21 = TS.Zero, c22 = TS.Zero, c23 = TS.Zero;
        TV c30 = TS.Zero, c31 = TS.Zero, c32 = TS.Zero, c33 = TS.Zero;
        nint i = 0;
        for (; i <= k - c; i += c)
        {
            TV v0 = TW.Load<TS, TV>(w0, i), v1 = TW.Load<TS, TV>(w1, i);
            TV v2 = TW.Load<TS, TV>(w2, i), v3 = TW.Load<TS, TV>(w3, i);
            Fma4<TS, TV>(v0, v1, v2, v3, TS.Load(x0 + i), ref c00, ref c01, ref c02, ref c03);
            Fma4<TS, TV>(v0, v1, v2, v3, TS.Load(x1 + i), ref c10, ref c11, ref c12, ref c13);
            Fma4<TS, TV>(v0, v1, v2, v3, TS.Load(x2 + i), ref c20, ref c21, ref c22, ref c23);
            Fma4<TS, TV>(v0, v1, v2, v3, TS.Load(x3 + i), ref c30, ref c31, ref c32, ref c33);
        }

        Finish4<TS, TV, TW>(c00, c01, c02, c03, x0, w, rowBytes, i, k, y, accumulate);
        Finish4<TS, TV, TW>(c10, c11, c12, c13, x1, w, rowBytes, i, k, y + n, accumulate);
        Finish4<TS, TV, TW>(c20, c21, c22, c23, x2, w, rowBytes, i, k, y + (2 * n), accumulate);
        Finish4<TS, TV, TW>(c30, c31, c32, c33, x3, w, rowBytes, i, k, y + (3 * n), accumulate);
    }

    /// <summary>prefetcht1 on each 64-byte line of [p, p + bytes), bytes a JIT-time constant (the 4-row
    /// group's bytes per iteration: 256 for bf16 at 512 bits, 512 for f32), written out so no loop is left.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchL2(byte* p, nint bytes)
    {
        if (!Sse.IsSupported || bytes < 64)
            return;
        Sse.Prefetch1(p);
        if (bytes >= 128)
            Sse.Prefetch1(p + 64);
        if (bytes >= 256)
        {
            Sse.Prefetch1(p + 128);
            Sse.Prefetch1(p + 192);
        }

        if (bytes >= 512)
        {
            Sse.Prefetch1(p + 256);
            Sse.Prefetch1(p + 320);
            Sse.Prefetch1(p + 384);
            Sse.Prefetch1(p + 448);
        }
    }

    /// <summary>One token's step of a tile: c_j += v_j·x for the 4 weight rows j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fma4<TS, TV>(TV v0, TV v1, TV v2, TV v3, TV x, ref TV c0, ref TV c1, ref TV c2, ref TV c3)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        c0 = TS.MultiplyAdd(v0, x, c0);
        c1 = TS.MultiplyAdd(v1, x, c1);
        c2 = TS.MultiplyAdd(v2, x, c2);
        c3 = TS.MultiplyAdd(v3, x, c3);
    }

    /// <summary>One token's 4 outputs: the 4 accumulators' sums plus the scalar K tail [from, k), stored to
    /// (or, when accumulating, added to) y[0..4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish4<TS, TV, TW>(TV s0, TV s1, TV s2, TV s3, float* x, byte* w, nint rowBytes, nint from, int k, float* y, bool accumulate)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TW : IWeightType
    {
        Vector128<float> sums = TS.Sum4(s0, s1, s2, s3);
        if (from < k)
        {
            sums += Vector128.Create(
                DotTail<TW>(x, w, from, k),
                DotTail<TW>(x, w + rowBytes, from, k),
                DotTail<TW>(x, w + (2 * rowBytes), from, k),
                DotTail<TW>(x, w + (3 * rowBytes), from, k));
        }

        if (accumulate)
            sums += Vector128.Load(y);
        sums.Store(y);
    }

    /// <summary>x · W[row]: the tail rows of a block.</summary>
    public static float Dot1<TS, TV, TW>(float* x, byte* w, int k)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TW : IWeightType
    {
        nint c = TS.Count;
        TV a = TS.Zero, b = TS.Zero;
        nint i = 0;
        for (; i <= k - (2 * c); i += 2 * c)
        {
            a = TS.MultiplyAdd(TW.Load<TS, TV>(w, i), TS.Load(x + i), a);
            b = TS.MultiplyAdd(TW.Load<TS, TV>(w, i + c), TS.Load(x + i + c), b);
        }

        if (i <= k - c)
        {
            a = TS.MultiplyAdd(TW.Load<TS, TV>(w, i), TS.Load(x + i), a);
            i += c;
        }

        return TS.Sum(TS.Add(a, b)) + DotTail<TW>(x, w, i, k);
    }

    /// <summary>Σ_{i in [from, k)} x[i]·W[i] in scalar f32 (fewer than two vectors' worth).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotTail<TW>(float* x, byte* w, nint from, int k)
        where TW : IWeightType
    {
        float s = 0;
        for (nint i = from; i < k; i++)
            s += TW.Load<SimdScalar, float>(w, i) * x[i];
        return s;
    }
}
