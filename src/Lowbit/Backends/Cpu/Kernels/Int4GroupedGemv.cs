using System.Runtime.CompilerServices;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = Σ_k x[m, k]·((q[n, k] − 8)·s[n, g] + z[n, g]), g = k / G, q in the <see cref="Int4GroupedWeight"/>
/// layout. Decode folds the zero point out of the inner loop:
/// y[n] = Σ_g s[n, g]·(Σ_{k∈g} x[k]·q[n, k]) + (z[n, g] − 8·s[n, g])·X[g], X[g] = Σ_{k∈g} x[k] computed once
/// per call. A 16-byte load widened to 16 int32 lanes gives 16 elements by &amp; 15 and the next 16 by &gt;&gt; 4
/// (the layout's point), each converted and FMA'd once: one FMA per element; 4 rows × (low, high) = 8 chains.
/// Prefill: <see cref="PackedLinear"/> unpacks 4 rows to f32 and runs the dense 4×4 tile.
/// Scales are widened to f32 once per row (a stack buffer) so the per-group step is one FMA with a broadcast, and
/// the zero-point term is one vector pass over the groups; the next 4-row block is software-prefetched.
/// Decode N=5632, K=2048, G=64: 5.8 MB nibbles + 0.7 MB bf16 scales/zeros + 8 KB x; 23 MFLOP
/// (3.6 FLOP/byte). Floor at the 30 GB/s one core streams here: 0.22 ms.
/// Cost: ~3.5 vector µops per 16 weights (a 16-byte widen-load, mask or shift, convert, FMA).
/// Measured 2026-11-24, 2-core AMD EPYC Zen 5 VM shared with other jobs (load average ~4), `lowbit-bench linear`
/// (3 blocks of dim 2048 / hidden 5632, 74 MB int4wo-64, best of 30): 1 thread 11.9 GB/s, 43% of the 27.4 GB/s read
/// in the same run, 2.8x the bf16 kernel; 2 threads 23.4 GB/s, 2.9-3.1x bf16. Below the 3.3x / 85% target: it is
/// compute-bound at ~21 G weights/s per core (the same in L3). vpermps instead of mask + convert, or dropping half
/// the FMAs, did not move it; without hardware counters (none in this VM) the limit is not pinned down.
/// </summary>
internal readonly unsafe struct Int4GroupedGemv : IPackedFormat
{
    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ on <see cref="CpuThreadPool.Shared"/>.</summary>
    public static void Compute(ReadOnlySpan<float> x, int m, Int4GroupedWeight weight, Span<float> y) =>
        Compute(CpuCapabilities.Best, CpuThreadPool.Shared, x, m, weight, y);

    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Int4GroupedWeight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        PackedLinear.Compute<Int4GroupedGemv>(level, pool, weight.FormatName, x, m, new PackedJob
        {
            Q = (byte*)weight.Packed.Data,
            RowBytes = weight.InFeatures / 2,
            Scales = (byte*)weight.Scales.Data,
            Zeros = (byte*)weight.Zeros.Data,
            ScaleDType = weight.Scales.DType,
            GroupSize = weight.GroupSize,
            N = weight.OutFeatures,
            K = weight.InFeatures,
        }, y);
    }

    /// <summary>The zero-point term (z − 8s)·Σx needs each group's Σx.</summary>
    public static bool UsesGroupSums => true;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4<TS, TV, TQ>(PackedJob* job, int row, float* y)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        nint rowBytes = job->RowBytes;
        byte* q0 = job->Q + (row * rowBytes), q1 = q0 + rowBytes, q2 = q1 + rowBytes, q3 = q2 + rowBytes;
        int groups = job->K / job->GroupSize;
        // The 4 rows' scales in f32, so the per-group multiply is one FMA with a broadcast operand.
        float* s0 = stackalloc float[4 * groups];
        float* s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        float b0 = Prepare<TS, TV>(job, row, s0), b1 = Prepare<TS, TV>(job, row + 1, s1);
        float b2 = Prepare<TS, TV>(job, row + 2, s2), b3 = Prepare<TS, TV>(job, row + 3, s3);
        float* x = job->X;
        int chunksPerGroup = job->GroupSize / Int4GroupedWeight.ChunkElements;
        nint c = TS.Count;
        TV y0 = TS.Zero, y1 = TS.Zero, y2 = TS.Zero, y3 = TS.Zero;
        nint chunk = 0;
        for (int g = 0; g < groups; g++)
        {
            TV l0 = TS.Zero, l1 = TS.Zero, l2 = TS.Zero, l3 = TS.Zero;
            TV h0 = TS.Zero, h1 = TS.Zero, h2 = TS.Zero, h3 = TS.Zero;
            for (nint end = chunk + chunksPerGroup; chunk < end; chunk++)
            {
                float* xc = x + (chunk * 32);
                nint b = chunk * 16;
                PackedLinear.Prefetch(q0 + b, q1 + b, q2 + b, q3 + b, 4 * rowBytes);
                for (nint j = 0; j < 16; j += c)
                {
                    TV xl = TS.Load(xc + j), xh = TS.Load(xc + 16 + j);
                    TQ.LoadUInt4(q0 + b + j, out TV lo, out TV hi);
                    l0 = TS.MultiplyAdd(lo, xl, l0);
                    h0 = TS.MultiplyAdd(hi, xh, h0);
                    TQ.LoadUInt4(q1 + b + j, out lo, out hi);
                    l1 = TS.MultiplyAdd(lo, xl, l1);
                    h1 = TS.MultiplyAdd(hi, xh, h1);
                    TQ.LoadUInt4(q2 + b + j, out lo, out hi);
                    l2 = TS.MultiplyAdd(lo, xl, l2);
                    h2 = TS.MultiplyAdd(hi, xh, h2);
                    TQ.LoadUInt4(q3 + b + j, out lo, out hi);
                    l3 = TS.MultiplyAdd(lo, xl, l3);
                    h3 = TS.MultiplyAdd(hi, xh, h3);
                }
            }

            y0 = TS.MultiplyAdd(TS.Add(l0, h0), TS.Broadcast(s0[g]), y0);
            y1 = TS.MultiplyAdd(TS.Add(l1, h1), TS.Broadcast(s1[g]), y1);
            y2 = TS.MultiplyAdd(TS.Add(l2, h2), TS.Broadcast(s2[g]), y2);
            y3 = TS.MultiplyAdd(TS.Add(l3, h3), TS.Broadcast(s3[g]), y3);
        }

        y[0] = TS.Sum(y0) + b0;
        y[1] = TS.Sum(y1) + b1;
        y[2] = TS.Sum(y2) + b2;
        y[3] = TS.Sum(y3) + b3;
    }

    public static float Dot1<TS, TV, TQ>(PackedJob* job, int row)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        byte* q = job->Q + (row * job->RowBytes);
        int groups = job->K / job->GroupSize;
        float* s = stackalloc float[groups];
        float bias = Prepare<TS, TV>(job, row, s);
        int chunksPerGroup = job->GroupSize / Int4GroupedWeight.ChunkElements;
        nint c = TS.Count;
        TV y = TS.Zero;
        nint chunk = 0;
        for (int g = 0; g < groups; g++)
        {
            TV l = TS.Zero, h = TS.Zero;
            for (nint end = chunk + chunksPerGroup; chunk < end; chunk++)
            {
                float* xc = job->X + (chunk * 32);
                for (nint j = 0; j < 16; j += c)
                {
                    TQ.LoadUInt4(q + (chunk * 16) + j, out TV lo, out TV hi);
                    l = TS.MultiplyAdd(lo, TS.Load(xc + j), l);
                    h = TS.MultiplyAdd(hi, TS.Load(xc + 16 + j), h);
                }
            }

            y = TS.MultiplyAdd(TS.Add(l, h), TS.Broadcast(s[g]), y);
        }

        return TS.Sum(y) + bias;
    }

    /// <summary>Widens row <paramref name="row"/>'s bf16 scales into <paramref name="scales"/> and returns its
    /// zero-point term Σ_g (z[g] − 8·s[g])·X[g], both vectorized over groups.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Prepare<TS, TV>(PackedJob* job, int row, float* scales)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        int groups = job->K / job->GroupSize;
        ushort* s = (ushort*)job->Scales + ((nint)row * groups);
        ushort* z = (ushort*)job->Zeros + ((nint)row * groups);
        float* sums = job->XSums;
        TV eight = TS.Broadcast(8f), acc = TS.Zero;
        nint c = TS.Count, g = 0;
        for (; g <= groups - c; g += c)
        {
            TV sv = TS.LoadBf16(s + g);
            TS.Store(scales + g, sv);
            acc = TS.MultiplyAdd(TS.Subtract(TS.LoadBf16(z + g), TS.Multiply(eight, sv)), TS.Load(sums + g), acc);
        }

        float bias = TS.Sum(acc);
        for (; g < groups; g++)
        {
            float sg = Bf16(s[g]);
            scales[g] = sg;
            bias += (Bf16(z[g]) - (8f * sg)) * sums[g];
        }

        return bias;
    }

    public static void Unpack<TS, TV, TQ>(PackedJob* job, int row, float* destination)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        byte* q = job->Q + (row * job->RowBytes);
        int groups = job->K / job->GroupSize;
        ushort* s = (ushort*)job->Scales + ((nint)row * groups);
        ushort* z = (ushort*)job->Zeros + ((nint)row * groups);
        int chunksPerGroup = job->GroupSize / Int4GroupedWeight.ChunkElements;
        nint c = TS.Count;
        TV mid = TS.Broadcast(8f);
        nint chunk = 0;
        for (int g = 0; g < groups; g++)
        {
            // (q − 8)·s + z as two roundings, like the reference (no FMA): the unpacked row is bit-exact.
            TV sv = TS.Broadcast(Bf16(s[g])), zv = TS.Broadcast(Bf16(z[g]));
            for (nint end = chunk + chunksPerGroup; chunk < end; chunk++)
            {
                float* d = destination + (chunk * 32);
                for (nint j = 0; j < 16; j += c)
                {
                    TQ.LoadUInt4(q + (chunk * 16) + j, out TV lo, out TV hi);
                    TS.Store(d + j, TS.Add(TS.Multiply(TS.Subtract(lo, mid), sv), zv));
                    TS.Store(d + 16 + j, TS.Add(TS.Multiply(TS.Subtract(hi, mid), sv), zv));
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}
