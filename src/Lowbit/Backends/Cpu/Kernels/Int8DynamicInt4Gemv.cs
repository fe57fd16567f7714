using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = s_x[m]·Σ_g scale[n, g]·Σ_{k∈g} c_x[m, k]·q[n, k], c_x = q_x − z_x from
/// <see cref="DynamicActivation"/> (asymmetric int8 per token), q in the <see cref="Int8DynamicInt4Weight"/> layout.
/// <para>Decode: per 64-element block a 32-byte load widened to 32 int16 lanes (vpmovzxbw) gives elements 0..31 by
/// <c>&amp; 15</c> and 32..63 by <c>&gt;&gt; 4</c>; minus 8 (vpsubw), vpmaddwd against the token's int16 codes
/// (exact: |c_x·q| ≤ 255·8) gives int32 pair sums, added per group and scaled once per group in f32
/// (G = 32: each half of a block is its own group). About 9 µops per 64 weights. No VNNI: see
/// <see cref="Int8DynamicGemv"/>. The half block at the end of a K with K mod 64 = 32 goes one element at a time.</para>
/// <para>Prefill: the activations become c_x·s_x (f32) and the rows unpack to q·scale for the dense tile.</para>
/// Decode N=5632, K=2048, G=32: 5.8 MB nibbles + 1.4 MB F32 scales + 4 KB codes.
/// Measured 2026-11-24, `lowbit-bench linear --threads 1 --layers 2` (2 blocks of dim 2048 / hidden 5632, best of 10,
/// round-robin with bf16 8.33 ms, int8wo 3.81, int4wo-64 4.38), 2-core Zen 5 VM at load average 7-12: 3.27 ms a step, the fastest format per step.
/// </summary>
internal readonly unsafe struct Int8DynamicInt4Gemv : IPackedFormat
{
    /// <summary>y[m, N] = quant(x)[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Int8DynamicInt4Weight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        DynamicActivation.Compute<Int8DynamicInt4Gemv>(level, pool, weight.FormatName, DynamicActivation.Scheme.Asymmetric, x, m, new PackedJob
        {
            Q = (byte*)weight.Packed.Data,
            RowBytes = weight.InFeatures / 2,
            Scales = (byte*)weight.Scales.Data,
            ScaleDType = Tensors.DType.F32,
            GroupSize = weight.GroupSize,
            N = weight.OutFeatures,
            K = weight.InFeatures,
        }, y);
    }

    public static bool UsesGroupSums => false;

    public static void Dot4<TS, TV, TQ>(PackedJob* job, int row, float* y)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        PackedLinear.Prefetch(job->Q + (row * job->RowBytes), job->Q + ((row + 1) * job->RowBytes),
            job->Q + ((row + 2) * job->RowBytes), job->Q + ((row + 3) * job->RowBytes), 4 * job->RowBytes);
        for (int r = 0; r < 4; r++)
            y[r] = Dot1<TS, TV, TQ>(job, row + r);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot1<TS, TV, TQ>(PackedJob* job, int row)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        byte* q = job->Q + (row * job->RowBytes);
        int k = job->K, size = job->GroupSize;
        float* s = (float*)job->Scales + ((nint)row * (k / size));
        short* x = job->XQ;
        int blocks = k / 64;
        float sum = 0;
        if (typeof(TV) == typeof(Vector512<float>))
            sum = Blocks512(q, x, s, blocks, size);
        else if (typeof(TV) == typeof(Vector256<float>))
            sum = Blocks256(q, x, s, blocks, size);
        else
            blocks = 0;

        // The rest (all of it on the scalar path), group by group in int32.
        for (int g = 64 * blocks / size; g < k / size; g++)
        {
            int dot = 0;
            for (int i = g * size; i < (g + 1) * size; i++)
                dot += x[i] * Code(q, i, k);
            sum += dot * s[g];
        }

        return sum * job->XScale;
    }

    /// <summary>Σ over the first <paramref name="blocks"/> 64-element blocks of scale[g]·Σ c_x·q, Vector512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Blocks512(byte* q, short* x, float* s, int blocks, int size)
    {
        Vector512<float> y = Vector512<float>.Zero;
        Vector512<int> acc = Vector512<int>.Zero;
        Vector512<short> mask = Vector512.Create((short)15), eight = Vector512.Create((short)8);
        int blocksPerGroup = size / 64;
        for (int b = 0; b < blocks; b++)
        {
            Vector512<short> w = Avx512BW.ConvertToVector512Int16(Vector256.Load(q + (32 * b)));
            Vector512<int> low = Avx512BW.MultiplyAddAdjacent((w & mask) - eight, Vector512.Load(x + (64 * b)));
            Vector512<int> high = Avx512BW.MultiplyAddAdjacent(Vector512.ShiftRightLogical(w, 4) - eight, Vector512.Load(x + (64 * b) + 32));
            if (size == 32)
            {
                y = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(low), Vector512.Create(s[2 * b]), y);
                y = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(high), Vector512.Create(s[(2 * b) + 1]), y);
                continue;
            }

            acc += low + high;
            if ((b + 1) % blocksPerGroup == 0)
            {
                y = Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(acc), Vector512.Create(s[b / blocksPerGroup]), y);
                acc = Vector512<int>.Zero;
            }
        }

        return Vector512.Sum(y);
    }

    /// <summary>As <see cref="Blocks512"/> with Vector256: each 32-byte block is two 16-byte halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Blocks256(byte* q, short* x, float* s, int blocks, int size)
    {
        Vector256<float> y = Vector256<float>.Zero;
        Vector256<int> acc = Vector256<int>.Zero;
        Vector256<short> mask = Vector256.Create((short)15), eight = Vector256.Create((short)8);
        int blocksPerGroup = size / 64;
        for (int b = 0; b < blocks; b++)
        {
            Vector256<short> w0 = Avx2.ConvertToVector256Int16(Vector128.Load(q + (32 * b)));
            Vector256<short> w1 = Avx2.ConvertToVector256Int16(Vector128.Load(q + (32 * b) + 16));
            short* xb = x + (64 * b);
            Vector256<int> low = Avx2.MultiplyAddAdjacent((w0 & mask) - eight, Vector256.Load(xb))
                + Avx2.MultiplyAddAdjacent((w1 & mask) - eight, Vector256.Load(xb + 16));
            Vector256<int> high = Avx2.MultiplyAddAdjacent(Vector256.ShiftRightLogical(w0, 4) - eight, Vector256.Load(xb + 32))
                + Avx2.MultiplyAddAdjacent(Vector256.ShiftRightLogical(w1, 4) - eight, Vector256.Load(xb + 48));
            if (size == 32)
            {
                y = Fma.MultiplyAdd(Avx.ConvertToVector256Single(low), Vector256.Create(s[2 * b]), y);
                y = Fma.MultiplyAdd(Avx.ConvertToVector256Single(high), Vector256.Create(s[(2 * b) + 1]), y);
                continue;
            }

            acc += low + high;
            if ((b + 1) % blocksPerGroup == 0)
            {
                y = Fma.MultiplyAdd(Avx.ConvertToVector256Single(acc), Vector256.Create(s[b / blocksPerGroup]), y);
                acc = Vector256<int>.Zero;
            }
        }

        return Vector256.Sum(y);
    }

    /// <summary>q[k] in [−8, 7] of a row of <paramref name="k"/> elements (the layout's formula).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Code(byte* q, int i, int k)
    {
        int block = i / 64, half = k - (64 * block) == 32 ? 16 : 32, j = i % 64;
        return ((q[(32 * block) + (j % half)] >> (j < half ? 0 : 4)) & 15) - 8;
    }

    /// <summary>destination[k] = q[k]·scale[k / G], as the reference (one rounding).</summary>
    public static void Unpack<TS, TV, TQ>(PackedJob* job, int row, float* destination)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        byte* q = job->Q + (row * job->RowBytes);
        int k = job->K, size = job->GroupSize;
        float* s = (float*)job->Scales + ((nint)row * (k / size));
        for (int i = 0; i < k; i++)
            destination[i] = Code(q, i, k) * s[i / size];
    }
}
