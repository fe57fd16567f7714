using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = Σ_k x[m, k]·((q[n, k] − 8)·s[n, g] + z[n, g]), g = k / G, q in the <see cref="Int4GroupedWeight"/>
/// layout. Decode folds the zero point out of the inner loop:
/// y[n] = Σ_g s[n, g]·(Σ_{k∈g} x[k]·q[n, k]) + (z[n, g] − 8·s[n, g])·X[g], X[g] = Σ_{k∈g} x[k] computed once
/// per call. The nibbles are not separated: byte b = 16·h + l of chunk c holds l = q[32c + j] and h = q[32c + 16 + j],
/// and x_l·l + x_h·h = (x_l − x_h/16)·l + (x_h/16)·b, so x is rewritten once per call (<see cref="PackedJob.XSplit"/>)
/// and each 16 bytes cost one widen-load (vpmovzxbd), the low nibbles as f32 by one vpermps into a 0..15 table (it
/// reads only the index's low 4 bits), the whole bytes by one vcvtdq2ps, and two FMAs: no shift, no mask. The terms
/// can be 16x the products they replace (x_h/16·b ≤ 16·|x_h|), within the error budget of the zero-point fold's own
/// 16·|s| + |z| terms. 4 rows × (low, whole) = 8 chains.
/// Prefill: <see cref="PackedLinear"/> unpacks 4 rows to f32 and runs the dense 4×4 tile.
/// Scales are widened to f32 once per row (a stack buffer) so the per-group step is one FMA with a broadcast, and
/// the zero-point term is one vector pass over the groups; the next 4-row block is software-prefetched.
/// Decode N=5632, K=2048, G=64: 5.8 MB nibbles + 0.7 MB bf16 scales/zeros + 8 KB x; 23 MFLOP
/// (3.6 FLOP/byte). Floor at the 30 GB/s one core streams here: 0.22 ms.
/// Cost: 5 vector µops per 32 weights (widen-load, vpermps, convert, 2 FMAs; before: 7, with mask, shift and two
/// converts). Measured on one Zen 5 core, 4 rows × K = 2048 in L2 (2026-11-25, best of 200, loop only): 30.3 G weights/s,
/// against 26.1 for the mask-and-shift loop, 24.6 for a per-(row, group) table T[q] = (q − 8)·s + z indexed by
/// vpermps (low nibble, then shifted), 29.3 for whole 64-byte loads indexed 8 times with shifts, and 54.6 for the
/// FMAs alone: on this core the vector ALU µops, not the loads, set the pace, and an exact f32 dot product needs one
/// FMA per 16 weights plus the decode (<see cref="Int4GroupedA8Gemv"/>, int4wo-a8, trades the exactness for integer
/// dot products). `lowbit-bench linear --threads 1 --layers 2 --reps 10` (2 blocks, 49.5 MB int4wo-64, best of 10),
/// this and the previous build alternately, 4 times, load average 60-100: 3.76-4.39 ms a step against 4.40-5.03
/// (2.00-2.21x the bf16 kernel against 1.81-1.93x).
/// </summary>
internal readonly unsafe struct Int4GroupedGemv : IPackedFormat
{
    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Int4GroupedWeight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        int k = weight.InFeatures;
        float* split = null;
        if (m == 1 && x.Length == k)
        {
            split = (float*)DynamicActivation.Buffer((nint)k * sizeof(float));
            Split(x, split);
        }

        PackedLinear.Compute<Int4GroupedGemv>(level, pool, weight.FormatName, x, m, Job(weight) with { XSplit = split }, y);
    }

    /// <summary>The job of an int4wo weight (int4wo-a8's weight is one too).</summary>
    internal static PackedJob Job(Int4GroupedWeight weight) => new()
    {
        Q = (byte*)weight.Packed.Data,
        RowBytes = weight.InFeatures / 2,
        Scales = (byte*)weight.Scales.Data,
        Zeros = (byte*)weight.Zeros.Data,
        ScaleDType = weight.Scales.DType,
        GroupSize = weight.GroupSize,
        N = weight.OutFeatures,
        K = weight.InFeatures,
    };

    /// <summary>destination[32c + j] = x[32c + j] − x[32c + 16 + j]/16 (the low nibble's weight) and
    /// destination[32c + 16 + j] = x[32c + 16 + j]/16 (the whole byte's), j &lt; 16: the same f32 roundings at every
    /// SIMD level.</summary>
    internal static void Split(ReadOnlySpan<float> x, float* destination)
    {
        fixed (float* p = x)
        {
            Vector128<float> sixteenth = Vector128.Create(1f / 16);
            for (int c = 0; c < x.Length; c += Int4GroupedWeight.ChunkElements)
            {
                for (int j = 0; j < 16; j += Vector128<float>.Count)
                {
                    Vector128<float> high = Vector128.Load(p + c + 16 + j) * sixteenth;
                    (Vector128.Load(p + c + j) - high).Store(destination + c + j);
                    high.Store(destination + c + 16 + j);
                }
            }
        }
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
        float* x = job->XSplit;
        int chunksPerGroup = job->GroupSize / Int4GroupedWeight.ChunkElements;
        nint c = TS.Count;
        TV y0 = TS.Zero, y1 = TS.Zero, y2 = TS.Zero, y3 = TS.Zero;
        nint chunk = 0;
        for (int g = 0; g < groups; g++)
        {
            TV l0 = TS.Zero, l1 = TS.Zero, l2 = TS.Zero, l3 = TS.Zero;
            TV w0 = TS.Zero, w1 = TS.Zero, w2 = TS.Zero, w3 = TS.Zero;
            for (nint end = chunk + chunksPerGroup; chunk < end; chunk++)
            {
                float* xc = x + (chunk * 32);
                nint b = chunk * 16;
                PackedLinear.Prefetch(q0 + b, q1 + b, q2 + b, q3 + b, 4 * rowBytes);
                for (nint j = 0; j < 16; j += c)
                {
                    TV xl = TS.Load(xc + j), xb = TS.Load(xc + 16 + j);
                    TQ.LoadUInt4(q0 + b + j, out TV lo, out TV whole);
                    l0 = TS.MultiplyAdd(lo, xl, l0);
                    w0 = TS.MultiplyAdd(whole, xb, w0);
                    TQ.LoadUInt4(q1 + b + j, out lo, out whole);
                    l1 = TS.MultiplyAdd(lo, xl, l1);
                    w1 = TS.MultiplyAdd(whole, xb, w1);
                    TQ.LoadUInt4(q2 + b + j, out lo, out whole);
                    l2 = TS.MultiplyAdd(lo, xl, l2);
                    w2 = TS.MultiplyAdd(whole, xb, w2);
                    TQ.LoadUInt4(q3 + b + j, out lo, out whole);
                    l3 = TS.MultiplyAdd(lo, xl, l3);
                    w3 = TS.MultiplyAdd(whole, xb, w3);
                }
            }

            y0 = TS.MultiplyAdd(TS.Add(l0, w0), TS.Broadcast(s0[g]), y0);
            y1 = TS.MultiplyAdd(TS.Add(l1, w1), TS.Broadcast(s1[g]), y1);
            y2 = TS.MultiplyAdd(TS.Add(l2, w2), TS.Broadcast(s2[g]), y2);
            y3 = TS.MultiplyAdd(TS.Add(l3, w3), TS.Broadcast(s3[g]), y3);
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
            TV l = TS.Zero, w = TS.Zero;
            for (nint end = chunk + chunksPerGroup; chunk < end; chunk++)
            {
                float* xc = job->XSplit + (chunk * 32);
                for (nint j = 0; j < 16; j += c)
                {
                    TQ.LoadUInt4(q + (chunk * 16) + j, out TV lo, out TV whole);
                    l = TS.MultiplyAdd(lo, TS.Load(xc + j), l);
                    w = TS.MultiplyAdd(whole, TS.Load(xc + 16 + j), w);
                }
            }

            y = TS.MultiplyAdd(TS.Add(l, w), TS.Broadcast(s[g]), y);
        }

        return TS.Sum(y) + bias;
    }

    /// <summary>Widens row <paramref name="row"/>'s bf16 scales into <paramref name="scales"/> and returns its
    /// zero-point term Σ_g (z[g] − 8·s[g])·X[g], both vectorized over groups.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Prepare<TS, TV>(PackedJob* job, int row, float* scales)
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
            TV sv = TS.Broadcast(Bf16(s[g])), zv = TS.Broadcast(Bf16(z[g])), sixteenth = TS.Broadcast(1f / 16);
            for (nint end = chunk + chunksPerGroup; chunk < end; chunk++)
            {
                float* d = destination + (chunk * 32);
                for (nint j = 0; j < 16; j += c)
                {
                    TQ.LoadUInt4(q + (chunk * 16) + j, out TV lo, out TV whole);
                    TV hi = TS.Multiply(TS.Subtract(whole, lo), sixteenth); // exact: a multiple of 16, times 2^-4
                    TS.Store(d + j, TS.Add(TS.Multiply(TS.Subtract(lo, mid), sv), zv));
                    TS.Store(d + 16 + j, TS.Add(TS.Multiply(TS.Subtract(hi, mid), sv), zv));
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}
