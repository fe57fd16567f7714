using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>One linear call on a packed weight: pointers into the format's tensors, x [M, K] and y [M, N].</summary>
internal unsafe struct PackedJob
{
    public byte* Q;          // packed values, row n at Q + n·RowBytes
    public nint RowBytes;
    public byte* Scales;     // the format's scale tensor, or null when ScaleCodes holds them
    public sbyte* ScaleCodes; // double-quantized F32 scales (nf4-dq): s_j = ScaleCodes[j] / ScaleFactors[j / ScalerBlockSize] + ScaleMean, or null
    public float* ScaleFactors;
    public float ScaleMean;
    public int ScalerBlockSize;
    public byte* Zeros;      // the format's zero tensor, or null
    public DType ScaleDType;
    public int GroupSize;    // K for per-row formats
    public CodePlan* Plan;   // where each code of a 16-element chunk sits (CodedGemv formats), or null
    public short* XQ;        // [K]: token 0's int8 activation codes widened to int16 (dynamic-activation formats)
    public float XScale;     // token 0's activation scale (dynamic-activation formats)
    public float* X;         // [M, K]
    public float* XSplit;    // [K]: token 0's x as the int4 nibble split wants it (Int4GroupedGemv decode), or null
    public sbyte* XCodes;    // token 0's int8 codes in Int4GroupedA8Gemv's order, or null
    public float* XLaneScales; // token 0's activation scale per int32 lane of Int4GroupedA8Gemv's blocks, or null
    public float* XSums;     // [K / GroupSize]: Σ x over each group of token 0 (decode only), or null
    public float* Y;         // [M, N]
    public int M;
    public int N;
    public int K;
}

/// <summary>What a packed format supplies to <see cref="PackedLinear"/>: a GEMV over 4 rows and over 1 row
/// reading the packed bytes directly, and an exact unpack of one row to f32 (the reference's values, so the
/// prefill path is as exact as a dense f32 matmul of the dequantized weight).</summary>
internal unsafe interface IPackedFormat
{
    /// <summary>Whether the GEMV reads <see cref="PackedJob.XSums"/> (formats with zero points fold them with it).</summary>
    static abstract bool UsesGroupSums { get; }

    /// <summary>y[0..4) = x(token 0) · deq(W[row..row + 4)).</summary>
    static abstract void Dot4<TS, TV, TQ>(PackedJob* job, int row, float* y)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>;

    /// <summary>x(token 0) · deq(W[row]).</summary>
    static abstract float Dot1<TS, TV, TQ>(PackedJob* job, int row)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>;

    /// <summary>destination[0..K) = deq(W[row]), bit-identical to the format's reference Dequantize.</summary>
    static abstract void Unpack<TS, TV, TQ>(PackedJob* job, int row, float* destination)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>;
}

/// <summary>
/// The driver every packed weight format shares: y[m, n] = Σ_k x[m, k]·deq(W[n, k]), threaded over blocks of
/// <see cref="RowBlock"/> output rows on a <see cref="CpuThreadPool"/>.
/// <list type="bullet">
/// <item>Decode (M = 1): the format's GEMV reads the packed bytes once; no dequantized copy exists.</item>
/// <item>Prefill (M &gt; 1): each thread unpacks one block of 4 rows into a per-thread f32 scratch (4·K floats,
/// L2-resident) and runs <see cref="MatMulKernel"/>'s 4×4 register tile over every token, so each unpacked
/// weight serves all M tokens; the unpack is K work per row against M·K FMAs.</item>
/// </list>
/// </summary>
internal static unsafe class PackedLinear
{
    /// <summary>Output rows per work item.</summary>
    public const int RowBlock = 4;

    [ThreadStatic]
    private static float* t_scratch;

    [ThreadStatic]
    private static int t_scratchLength;

    /// <summary>Software prefetch for the GEMVs: each of a 4-row block's streams fetches the same position of
    /// the next block, <paramref name="ahead"/> = 4 rows further on (rows are contiguous, so the next block is the
    /// next 4·RowBytes). A block starts a new 4 KB page, which the hardware prefetchers do not cross; into L2
    /// (prefetcht1) rather than L1, which measured int8wo 1.8x → 3.2x bf16 on one Zen 5 core. A prefetch past the
    /// weight's end never faults.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Prefetch(byte* a, byte* b, byte* c, byte* d, nint ahead)
    {
        if (Sse.IsSupported)
        {
            Sse.Prefetch1(a + ahead);
            Sse.Prefetch1(b + ahead);
            Sse.Prefetch1(c + ahead);
            Sse.Prefetch1(d + ahead);
        }
    }

    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ for the weight described by <paramref name="weight"/> (its Q, RowBytes,
    /// Scales, Zeros, ScaleDType, GroupSize, N and K; the rest is filled in here) at <paramref name="level"/>.</summary>
    public static void Compute<TF>(SimdLevel level, CpuThreadPool pool, string format, ReadOnlySpan<float> x, int m, PackedJob weight, Span<float> y)
        where TF : IPackedFormat
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        int n = weight.N, k = weight.K;
        CheckX(format, x, m, k);
        if ((long)m * n != y.Length)
            throw new ArgumentException($"{format} linear: y has {y.Length} elements; m·N = {m}·{n} expected.", nameof(y));
        if (m == 0 || n == 0)
            return;

        // Decode: Σ x over each group, once per call (a few hundred floats at most).
        int groups = m == 1 && TF.UsesGroupSums ? k / weight.GroupSize : 0;
        float* sums = stackalloc float[groups];
        for (int g = 0; g < groups; g++)
        {
            float s = 0;
            foreach (float v in x.Slice(g * weight.GroupSize, weight.GroupSize))
                s += v;
            sums[g] = s;
        }

        fixed (float* px = x)
        fixed (float* py = y)
        {
            PackedJob job = weight;
            job.X = px;
            job.XSums = sums;
            job.Y = py;
            job.M = m;
            delegate*<void*, int, int, void> work = level switch
            {
                SimdLevel.Avx512 => &Rows<TF, Simd512, Vector512<float>, Packed512>,
                SimdLevel.Avx2 => &Rows<TF, Simd256, Vector256<float>, Packed256>,
                _ => &Rows<TF, SimdScalar, float, PackedScalar>,
            };
            int blocks = (n + RowBlock - 1) / RowBlock;
            // As MatMul: a product too small to pay for waking a worker runs on the caller alone.
            if ((long)m * n * k < MatMul.MinParallelMacs)
                work(&job, 0, blocks);
            else
                pool.Run(work, &job, blocks);
        }
    }

    /// <summary>Fails unless x is [m, K] with m ≥ 0: every entry point's check, made before it reads x.</summary>
    public static void CheckX(string format, ReadOnlySpan<float> x, int m, int k)
    {
        if (m < 0 || (long)m * k != x.Length)
            throw new ArgumentException($"{format} linear: x has {x.Length} elements; m·K = {m}·{k} expected.", nameof(x));
    }

    /// <summary>Pool work item: row blocks [start, end).</summary>
    private static void Rows<TF, TS, TV, TQ>(void* context, int start, int end)
        where TF : IPackedFormat
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        PackedJob* job = (PackedJob*)context;
        int m = job->M, n = job->N, k = job->K;
        int r = start * RowBlock;
        int rowEnd = Math.Min(end * RowBlock, n);
        if (m == 1)
        {
            for (; r + RowBlock <= rowEnd; r += RowBlock)
                TF.Dot4<TS, TV, TQ>(job, r, job->Y + r);
            for (; r < rowEnd; r++)
                job->Y[r] = TF.Dot1<TS, TV, TQ>(job, r);
            return;
        }

        float* w = Scratch(RowBlock * k);
        nint rowBytes = (nint)k * sizeof(float);
        float* x = job->X;
        for (; r < rowEnd; r += RowBlock)
        {
            int rows = Math.Min(RowBlock, rowEnd - r);
            for (int i = 0; i < rows; i++)
                TF.Unpack<TS, TV, TQ>(job, r + i, w + ((nint)i * k));
            float* y = job->Y + r;
            if (rows == RowBlock)
            {
                int t = 0;
                for (; t + 4 <= m; t += 4)
                    MatMulKernel.Tile4x4<TS, TV, F32Weights>(x + ((nint)t * k), k, (byte*)w, rowBytes, k, y + ((nint)t * n), n, false);
                for (; t < m; t++)
                    MatMulKernel.Dot4<TS, TV, F32Weights>(x + ((nint)t * k), (byte*)w, rowBytes, k, y + ((nint)t * n));
                continue;
            }

            for (int i = 0; i < rows; i++)
            {
                for (int t = 0; t < m; t++)
                    y[((nint)t * n) + i] = MatMulKernel.Dot1<TS, TV, F32Weights>(x + ((nint)t * k), (byte*)(w + ((nint)i * k)), k);
            }
        }
    }

    /// <summary>This thread's unpack buffer, grown to at least <paramref name="floats"/>. It lives as long as the
    /// thread (pool threads live as long as the process), so prefill allocates only on a thread's first,
    /// or a wider, call.</summary>
    private static float* Scratch(int floats)
    {
        if (t_scratchLength < floats)
        {
            NativeMemory.AlignedFree(t_scratch);
            t_scratch = (float*)NativeMemory.AlignedAlloc((nuint)floats * sizeof(float), 64);
            t_scratchLength = floats;
        }

        return t_scratch;
    }
}
