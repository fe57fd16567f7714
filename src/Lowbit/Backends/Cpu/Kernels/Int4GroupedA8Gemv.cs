using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = Σ_k x̂[m, k]·((q[n, k] − 8)·s[n, g] + z[n, g]), x̂ = q_x·s_x the activations quantized per block of
/// 32 (<see cref="Int4GroupedA8Weight"/>), q in the <see cref="Int4GroupedWeight"/> layout.
/// <para>Decode: x is quantized once per call, its codes laid out in the weight's order: per 128 elements (64
/// packed bytes) the 64 codes the low nibbles multiply, then the 64 the high nibbles multiply. Per 64 bytes of a
/// row: the low nibbles (and), the high ones (16-bit shift, and), two vpmaddubsw of the unsigned nibbles by the
/// signed codes (exact: |pair sum| ≤ 2·15·127, and the two added ≤ 7620 &lt; 2^15), vpmaddwd by ones to 16 int32
/// lanes (lane l: bytes 4l..4l+3, so 4 lanes per 32-element chunk), convert, times the chunks' activation scales,
/// and one FMA with the lanes' weight scales (vpermps from the row's f32 scales): about 11 µops per 128 weights
/// against 20 for int4wo's exact f32 loop. The zero point folds out as in int4wo: + Σ_g (z − 8s)·Σ_{k∈g} x̂.
/// A K with K mod 128 ≠ 0 ends in a partial block, read from a zero-padded copy of the row's last bytes; its
/// missing codes are 0.</para>
/// <para>Prefill: x is replaced by x̂ (f32, exact) and int4wo's exact unpack + dense tile run on it: the same math.</para>
/// Decode N=5632, K=2048, G=64: 5.8 MB nibbles + 0.7 MB bf16 scales/zeros + 2 KB codes.
/// Measured on one Zen 5 core, 4 rows × K = 2048 in L2 (2026-11-25, best of 200, loop only): 67 G weights/s against 30
/// for int4wo's exact kernel; `lowbit-bench linear --threads 1` (2 blocks): 2.6–2.9 ms a step against 3.8–4.4, 82% of
/// the read bandwidth (docs/quantization.md).
/// </summary>
internal readonly unsafe struct Int4GroupedA8Gemv : IPackedFormat
{
    /// <summary>Elements per 64 packed bytes, the decode step.</summary>
    private const int Block = 128;

    /// <summary>y[m, N] = x̂[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Int4GroupedA8Weight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        var w = weight.Weight;
        int k = w.InFeatures;
        PackedLinear.CheckX(weight.FormatName, x, m, k);
        int padded = (k + Block - 1) / Block * Block;
        // [x̂: m·K floats][codes: padded bytes][lane scales: padded / 8 floats]
        float* xhat = (float*)DynamicActivation.Buffer(((nint)m * k * sizeof(float)) + padded + (padded / 8 * sizeof(float)));
        sbyte* codes = (sbyte*)(xhat + ((nint)m * k));
        float* laneScales = (float*)(codes + padded);
        for (int t = 0; t < m; t++)
            Quantize(x.Slice(t * k, k), xhat + ((nint)t * k), m == 1 ? codes : null, laneScales);

        PackedLinear.Compute<Int4GroupedA8Gemv>(level, pool, weight.FormatName, new ReadOnlySpan<float>(xhat, m * k), m,
            Int4GroupedGemv.Job(w) with { XCodes = codes, XLaneScales = laneScales }, y);
    }

    /// <summary>One token: x̂ = q_x·s per block of 32 into <paramref name="xhat"/> and, when <paramref name="codes"/>
    /// is not null, the codes in the decode order and each int32 lane's scale (zero past K, up to a whole block).
    /// The same f32 operations as <see cref="DynamicActivation.QuantizeToken"/>'s Symmetric127 (s = max(max|x| / 127,
    /// 1e−5), q = clamp(round(x·(1/s)), −127, 127), round half to even), 8 lanes at a time.</summary>
    internal static void Quantize(ReadOnlySpan<float> x, float* xhat, sbyte* codes, float* laneScales)
    {
        const int n = Int4GroupedA8Weight.ActivationBlock;
        int k = x.Length, padded = (k + Block - 1) / Block * Block;
        Vector256<float> limit = Vector256.Create(127f);
        fixed (float* px = x)
        {
            for (int c = 0; c < padded / n; c++)
            {
                float* xc = px + (c * n);
                Vector256<float> v0 = default, v1 = default, v2 = default, v3 = default;
                float s = 0;
                if (c * n < k)
                {
                    (v0, v1, v2, v3) = (Vector256.Load(xc), Vector256.Load(xc + 8), Vector256.Load(xc + 16), Vector256.Load(xc + 24));
                    Vector256<float> m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
                    float amax = 0;
                    for (int i = 0; i < 8; i++)
                        amax = MathF.Max(amax, m[i]);
                    s = MathF.Max(amax / 127f, 1e-5f);
                    Vector256<float> inverse = Vector256.Create(1f / s), scale = Vector256.Create(s);
                    v0 = Vector256.Min(Vector256.Max(Vector256.Round(v0 * inverse), -limit), limit);
                    v1 = Vector256.Min(Vector256.Max(Vector256.Round(v1 * inverse), -limit), limit);
                    v2 = Vector256.Min(Vector256.Max(Vector256.Round(v2 * inverse), -limit), limit);
                    v3 = Vector256.Min(Vector256.Max(Vector256.Round(v3 * inverse), -limit), limit);
                    (v0 * scale).Store(xhat + (c * n));
                    (v1 * scale).Store(xhat + (c * n) + 8);
                    (v2 * scale).Store(xhat + (c * n) + 16);
                    (v3 * scale).Store(xhat + (c * n) + 24);
                }

                if (codes is null)
                    continue;
                // Chunk c is bytes 16·(c mod 4) .. + 16 of its block: low nibbles elements 32c + j, high ones 32c + 16 + j.
                Vector256<sbyte> q = Vector256.Narrow(
                    Vector256.Narrow(Vector256.ConvertToInt32(v0), Vector256.ConvertToInt32(v1)),
                    Vector256.Narrow(Vector256.ConvertToInt32(v2), Vector256.ConvertToInt32(v3)));
                sbyte* low = codes + (c / 4 * Block) + (16 * (c % 4));
                q.GetLower().Store(low);
                q.GetUpper().Store(low + (Block / 2));
                Vector128.Create(s).Store(laneScales + (4 * c));
            }
        }
    }

    public static bool UsesGroupSums => true;

    /// <summary>AVX-512: 4 rows a step, sharing the codes and lane scales (25% faster than a row at a time, from
    /// L3); narrower levels a row at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4<TS, TV, TQ>(PackedJob* job, int row, float* y)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        if (typeof(TV) != typeof(Vector512<float>))
        {
            for (int r = 0; r < 4; r++)
                y[r] = Dot1<TS, TV, TQ>(job, row + r);
            return;
        }

        nint rowBytes = job->RowBytes;
        byte* q0 = job->Q + (row * rowBytes), q1 = q0 + rowBytes, q2 = q1 + rowBytes, q3 = q2 + rowBytes;
        int stride = (job->K / job->GroupSize) + 16;
        float* s0 = stackalloc float[4 * stride];
        float* s1 = s0 + stride, s2 = s1 + stride, s3 = s2 + stride;
        byte* t0 = stackalloc byte[4 * (Block / 2)];
        byte* t1 = t0 + (Block / 2), t2 = t1 + (Block / 2), t3 = t2 + (Block / 2);
        float b0 = Setup<TS, TV>(job, row, s0, t0), b1 = Setup<TS, TV>(job, row + 1, s1, t1);
        float b2 = Setup<TS, TV>(job, row + 2, s2, t2), b3 = Setup<TS, TV>(job, row + 3, s3, t3);
        int blocks = (job->K + Block - 1) / Block, full = job->K / Block, shift = BitOperations.Log2((uint)job->GroupSize);
        sbyte* codes = job->XCodes;
        float* laneScales = job->XLaneScales;
        // Lane l's group, counted from its block's first: (32·(l / 4)) >> log2 G.
        Vector512<int> lanes = Vector512.ShiftRightLogical(Vector512.Create(0, 0, 0, 0, 32, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 96), shift);
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < blocks; b++)
        {
            nint o = b * (Block / 2);
            bool inRow = b < full;
            PackedLinear.Prefetch(q0 + o, q1 + o, q2 + o, q3 + o, 4 * rowBytes);
            Vector512<sbyte> low = Vector512.Load(codes + (b * Block)), high = Vector512.Load(codes + (b * Block) + (Block / 2));
            Vector512<float> sx = Vector512.Load(laneScales + (16 * b));
            int g = (b * Block) >> shift;
            a0 = Vector512.FusedMultiplyAdd(Dot512(inRow ? q0 + o : t0, low, high) * sx, Avx512F.PermuteVar16x32(Vector512.Load(s0 + g), lanes), a0);
            a1 = Vector512.FusedMultiplyAdd(Dot512(inRow ? q1 + o : t1, low, high) * sx, Avx512F.PermuteVar16x32(Vector512.Load(s1 + g), lanes), a1);
            a2 = Vector512.FusedMultiplyAdd(Dot512(inRow ? q2 + o : t2, low, high) * sx, Avx512F.PermuteVar16x32(Vector512.Load(s2 + g), lanes), a2);
            a3 = Vector512.FusedMultiplyAdd(Dot512(inRow ? q3 + o : t3, low, high) * sx, Avx512F.PermuteVar16x32(Vector512.Load(s3 + g), lanes), a3);
        }

        y[0] = Vector512.Sum(a0) + b0;
        y[1] = Vector512.Sum(a1) + b1;
        y[2] = Vector512.Sum(a2) + b2;
        y[3] = Vector512.Sum(a3) + b3;
    }

    /// <summary>The 16 int32 lane sums of one block (64 bytes at <paramref name="p"/>) times its codes, as f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Dot512(byte* p, Vector512<sbyte> low, Vector512<sbyte> high)
    {
        Vector512<byte> v = Vector512.Load(p), nibble = Vector512.Create((byte)15);
        Vector512<short> pairs = Avx512BW.MultiplyAddAdjacent(v & nibble, low)
            + Avx512BW.MultiplyAddAdjacent(Vector512.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & nibble, high);
        return Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(pairs, Vector512.Create((short)1)));
    }

    /// <summary>A row at a time (the rows past the last 4-row block, and the narrower levels): AVX2 on any vector
    /// level, one chunk at a time in int32 on the scalar one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot1<TS, TV, TQ>(PackedJob* job, int row)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        byte* q = job->Q + (row * job->RowBytes);
        float* s = stackalloc float[(job->K / job->GroupSize) + 16];
        byte* tail = stackalloc byte[Block / 2];
        float bias = Setup<TS, TV>(job, row, s, tail);
        int blocks = (job->K + Block - 1) / Block, full = job->K / Block, shift = BitOperations.Log2((uint)job->GroupSize);
        return bias + (typeof(TV) == typeof(float)
            ? BlocksScalar(q, tail, job->XCodes, job->XLaneScales, s, blocks, full, shift)
            : Blocks256(q, tail, job->XCodes, job->XLaneScales, s, blocks, full, shift, 4 * job->RowBytes));
    }

    /// <summary>Row <paramref name="row"/>'s f32 scales into <paramref name="s"/> (K/G of them, then 16 zeros, so a
    /// 16-wide window at any group stays inside) and, when K mod 128 ≠ 0, its last partial block into
    /// <paramref name="tail"/> (64 bytes, zero-padded); returns the zero-point term.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Setup<TS, TV>(PackedJob* job, int row, float* s, byte* tail)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        int groups = job->K / job->GroupSize;
        float bias = Int4GroupedGemv.Prepare<TS, TV>(job, row, s);
        new Span<float>(s + groups, 16).Clear();
        nint rowBytes = job->RowBytes, from = job->K / Block * (Block / 2);
        byte* q = job->Q + (row * rowBytes);
        // By hand: a memcpy call here makes the JIT keep the loop's vectors on the stack (see CodedGemv).
        for (nint b = 0; from < rowBytes && b < Block / 2; b++)
            tail[b] = from + b < rowBytes ? q[from + b] : (byte)0;
        return bias;
    }

    /// <summary>Σ over one row's blocks of the lanes' s_x·s_w·(int32 dot), Vector256: each block is two 32-byte
    /// halves of 8 lanes. <paramref name="ahead"/>: the prefetch distance (the same place 4 rows on).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Blocks256(byte* q, byte* tail, sbyte* codes, float* laneScales, float* s, int blocks, int full, int shift, nint ahead)
    {
        Vector256<byte> nibble = Vector256.Create((byte)15);
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> lanes = Vector256.ShiftRightLogical(Vector256.Create(0, 0, 0, 0, 32, 32, 32, 32), shift);
        Vector256<float> acc = Vector256<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            byte* p = b < full ? q + (b * (Block / 2)) : tail;
            if (Sse.IsSupported)
                Sse.Prefetch1(p + ahead);
            for (int h = 0; h < 2; h++)
            {
                Vector256<byte> v = Vector256.Load(p + (32 * h));
                sbyte* c = codes + (b * Block) + (32 * h);
                Vector256<short> pairs = Avx2.MultiplyAddAdjacent(v & nibble, Vector256.Load(c))
                    + Avx2.MultiplyAddAdjacent(Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & nibble, Vector256.Load(c + (Block / 2)));
                Vector256<float> dot = Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(pairs, ones));
                Vector256<float> sw = Avx2.PermuteVar8x32(Vector256.Load(s + (((b * Block) + (64 * h)) >> shift)), lanes);
                acc = Fma.MultiplyAdd(dot * Vector256.Load(laneScales + (16 * b) + (8 * h)), sw, acc);
            }
        }

        return Vector256.Sum(acc);
    }

    /// <summary>One 32-element chunk at a time in int32: the reference path.</summary>
    private static float BlocksScalar(byte* q, byte* tail, sbyte* codes, float* laneScales, float* s, int blocks, int full, int shift)
    {
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            byte* p = b < full ? q + (b * (Block / 2)) : tail;
            for (int c = 0; c < 4; c++)
            {
                int dot = 0;
                for (int j = 0; j < 16; j++)
                {
                    int v = p[(16 * c) + j];
                    dot += ((v & 15) * codes[(b * Block) + (16 * c) + j]) + ((v >> 4) * codes[(b * Block) + (Block / 2) + (16 * c) + j]);
                }

                sum += dot * laneScales[(16 * b) + (4 * c)] * s[((b * Block) + (32 * c)) >> shift];
            }
        }

        return sum;
    }

    /// <summary>int4wo's exact unpack: prefill multiplies it by x̂.</summary>
    public static void Unpack<TS, TV, TQ>(PackedJob* job, int row, float* destination)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV> => Int4GroupedGemv.Unpack<TS, TV, TQ>(job, row, destination);
}
