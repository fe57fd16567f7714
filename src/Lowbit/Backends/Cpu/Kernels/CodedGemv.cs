using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>What turns one format's codes into f32 values (before the block scale): the element decoder that
/// <see cref="CodedGemv{TM}"/> is generic over. Byte codes are read by vpmovzxbd; narrower ones are cut out of
/// 16-element chunks as the job's <see cref="CodePlan"/> says (which also gives the width).</summary>
internal interface ICodeMap
{
    /// <summary>Whether codes are whole bytes (plan <see cref="CodePlan.Stream"/>(8)), handed to Map
    /// sign-extended (vpmovsxbd; the scalar path passes (sbyte)).</summary>
    static abstract bool Bytes { get; }

    /// <summary>Whether the vector Maps ignore all but the code's bits (vpermps reads only the low 4 index bits),
    /// so the cut can skip its mask.</summary>
    static abstract bool MaskFree { get; }

    /// <summary>Whether each group has an integer zero point: deq = (v − z)·s instead of v·s.</summary>
    static abstract bool HasZero { get; }

    static abstract Vector512<float> Map(Vector512<int> codes);

    static abstract Vector256<float> Map(Vector256<int> codes);

    static abstract float Map(int code);
}

/// <summary>
/// Where each of the 16 codes of a chunk sits in the chunk's 2·Bits bytes: lane j's code is bits
/// [Shift[j], Shift[j] + Bits) of the little-endian 16-bit word at byte Byte[j] (Shift[j] + Bits ≤ 16, since
/// a code that is not a whole byte has Bits ≤ 7). <see cref="Shuffle"/> is the vpshufb control that puts that word in dword j (upper bytes
/// zeroed). One plan per packing: <see cref="Stream"/>(b) for <see cref="Quantization.Primitives.BitPacking"/>'s
/// little-endian stream (uintx, FP6), <see cref="Nf4"/> for NF4's element-2k-in-the-high-nibble order. Plans
/// live in native memory for the life of the process (a few hundred bytes).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CodePlan
{
    public fixed byte Shuffle[64];
    public fixed uint Shift[16];
    public fixed byte Byte[16];
    public uint Mask;
    public int Bits;

    private static readonly nint[] s_stream = CreateStreams();
    private static readonly CodePlan* s_nf4 = Create(4, static j => (8 * (j / 2)) + (j % 2 == 0 ? 4 : 0));

    /// <summary>The plan of a b-bit little-endian stream (element j at bits [j·b, (j + 1)·b)), b = 1..8.</summary>
    public static CodePlan* Stream(int bits) => (CodePlan*)s_stream[bits];

    /// <summary>NF4: element 2k in the high nibble of byte k, 2k + 1 in the low one.</summary>
    public static CodePlan* Nf4 => s_nf4;

    /// <summary>Lane <paramref name="lane"/>'s code of the chunk at <paramref name="chunk"/>, reading only the
    /// bytes that hold it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly int Code(byte* chunk, int lane)
    {
        int b = Byte[lane], shift = (int)Shift[lane];
        int word = chunk[b];
        if (shift + Bits > 8)
            word |= chunk[b + 1] << 8;
        return (word >> shift) & (int)Mask;
    }

    private static nint[] CreateStreams()
    {
        var plans = new nint[9];
        for (int b = 1; b <= 8; b++)
        {
            int bits = b;
            plans[b] = (nint)Create(bits, j => j * bits);
        }

        return plans;
    }

    private static CodePlan* Create(int bits, Func<int, int> bitOf)
    {
        var plan = (CodePlan*)NativeMemory.AlignedAlloc((nuint)sizeof(CodePlan), 64);
        *plan = default;
        plan->Bits = bits;
        plan->Mask = (1u << bits) - 1;
        for (int j = 0; j < 16; j++)
        {
            int bit = bitOf(j);
            plan->Byte[j] = (byte)(bit / 8);
            plan->Shift[j] = (uint)(bit % 8);
            plan->Shuffle[4 * j] = (byte)(bit / 8);
            plan->Shuffle[(4 * j) + 1] = (byte)((bit / 8) + 1); // ≤ 2·7 − 1 + 1 < 16: inside the 16 bytes loaded
            plan->Shuffle[(4 * j) + 2] = 0x80;
            plan->Shuffle[(4 * j) + 3] = 0x80;
        }

        return plan;
    }
}

/// <summary>
/// The generic driver's element side for every "codes × block scale" format (fp8wo, nf4, uintx, fp6):
/// y[m, n] = Σ_g s[n, g]·Σ_{k∈g} x[m, k]·(v(q[n, k]) − z[n, g]), v = TM.Map(code), z = 0 unless TM.HasZero.
/// <para>Rows are cut into chunks of 16 elements (2·Bits bytes, Bits from the job's plan; a group is a whole number of chunks, or the
/// whole row for per-row formats, whose last K mod 16 elements go one by one). Decode (M = 1): 4 rows at a time,
/// one accumulator per row per group, then one FMA with the group's scale; the zero points fold out as
/// −Σ_g z·s·X[g] (X[g] = Σ_{k∈g} x[k], once per call), so each weight costs its decode + one FMA. Prefill:
/// <see cref="Unpack{TS, TV, TQ}"/> writes (v − z)·s exactly as the formats' reference Dequantize, and
/// <see cref="PackedLinear"/> runs the dense 4×4 tile.</para>
/// <para>A vector decode reads 16 bytes from the chunk start; the chunks whose 16 bytes would pass the row's end
/// (the last one or two of a row when 2·Bits &lt; 16: under 16 bytes) are read from a copy on the stack made once
/// per row, so no load leaves the row and the loop has no call (a memcpy call made the JIT spill every
/// accumulator: fp8wo 3.5x slower).</para>
/// Scales and zeros: F32 [N, K/G]. Costs and measurements are in each format's Compute entry.
/// </summary>
internal readonly unsafe struct CodedGemv<TM> : IPackedFormat
    where TM : ICodeMap
{
    public const int Chunk = 16;

    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ on <paramref name="pool"/>, the codes cut as <paramref name="plan"/> says:
    /// every codes × scale format's entry point.</summary>
    public static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, CodedWeight weight, CodePlan* plan, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        PackedJob job = Job(weight.Codes, weight.InFeatures, weight.GroupSize, plan);
        job.Scales = (byte*)weight.Scales.Data;
        job.Zeros = weight.Zeros is null ? null : (byte*)weight.Zeros.Data;
        PackedLinear.Compute<CodedGemv<TM>>(level, pool, weight.FormatName, x, m, job, y);
    }

    /// <summary>The same on double-quantized NF4 scales: each call decodes the scales of the rows it works on
    /// (<see cref="RowScales"/>), never the whole matrix's.</summary>
    public static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Nf4DoubleQuantWeight weight, CodePlan* plan, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        PackedJob job = Job(weight.Codes, weight.InFeatures, weight.BlockSize, plan);
        job.ScaleCodes = (sbyte*)weight.ScaleCodes.Data;
        job.ScaleFactors = (float*)weight.ScaleFactors.Data;
        job.ScaleMean = weight.ScaleMean.AsSpan<float>()[0];
        job.ScalerBlockSize = weight.ScalerBlockSize;
        PackedLinear.Compute<CodedGemv<TM>>(level, pool, weight.FormatName, x, m, job, y);
    }

    private static PackedJob Job(Tensors.Tensor codes, int k, int groupSize, CodePlan* plan) => new()
    {
        Q = (byte*)codes.Data,
        RowBytes = codes.Shape[1],
        ScaleDType = Tensors.DType.F32,
        GroupSize = groupSize,
        Plan = plan,
        N = codes.Shape[0],
        K = k,
    };

    [ThreadStatic]
    private static float[]? t_scales;

    /// <summary>The F32 scales of rows [row, row + rows): in place, or decoded from <see cref="PackedJob.ScaleCodes"/>
    /// into this thread's buffer (valid until its next call), so the loops below read F32 either way.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* RowScales(PackedJob* job, int row, int rows)
    {
        int groups = job->K / job->GroupSize;
        return job->ScaleCodes == null ? (float*)job->Scales + ((nint)row * groups) : DecodeScales(job, row * groups, rows * groups);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float* DecodeScales(PackedJob* job, int start, int count)
    {
        if (t_scales is null || t_scales.Length < count)
            t_scales = GC.AllocateUninitializedArray<float>(count, pinned: true);
        int total = job->N * (job->K / job->GroupSize), factors = ((total - 1) / job->ScalerBlockSize) + 1;
        Quantization.Primitives.Nf4.DequantizeScales(new ReadOnlySpan<sbyte>(job->ScaleCodes, total), new ReadOnlySpan<float>(job->ScaleFactors, factors),
            job->ScaleMean, job->ScalerBlockSize, start, t_scales.AsSpan(0, count));
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(t_scales));
    }

    public static bool UsesGroupSums => TM.HasZero;

    /// <summary>Bytes at the start of a row whose chunks can be loaded in place (a whole number of chunks, each
    /// with 16 bytes of row from its start); the rest (under 16 bytes) is read from a copy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static nint Direct(nint rowBytes, nint chunkBytes) => rowBytes >= Chunk ? (((rowBytes - Chunk) / chunkBytes) + 1) * chunkBytes : 0;

    /// <summary>Copies row bytes [direct, rowBytes) to <paramref name="tail"/> (2·Chunk bytes), by hand: a memcpy
    /// call would make the JIT spill the accumulators around it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* Tail(byte* row, nint direct, nint rowBytes, byte* tail)
    {
        for (nint b = direct; b < rowBytes; b++)
            tail[b - direct] = row[b];
        return tail;
    }

    /// <summary>Row <paramref name="row"/>'s codes, its bytes past <paramref name="direct"/> copied to <paramref name="tail"/>
    /// (the one-row GEMV's and the unpack's setup).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* Row(PackedJob* job, int row, byte* tail, out nint direct)
    {
        nint rowBytes = job->RowBytes;
        byte* q = job->Q + (row * rowBytes);
        direct = Direct(rowBytes, 2 * job->Plan->Bits);
        Tail(q, direct, rowBytes, tail);
        return q;
    }

    /// <summary>The chunk at byte <paramref name="o"/> of a row: in place, or in the row's tail copy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* At(byte* row, byte* tail, nint o, nint direct) => o < direct ? row + o : tail + (o - direct);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4<TS, TV, TQ>(PackedJob* job, int row, float* y)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        nint rowBytes = job->RowBytes;
        byte* q0 = job->Q + (row * rowBytes), q1 = q0 + rowBytes, q2 = q1 + rowBytes, q3 = q2 + rowBytes;
        int size = job->GroupSize, groups = job->K / size;
        float* s0 = RowScales(job, row, 4), s1 = s0 + groups, s2 = s1 + groups, s3 = s2 + groups;
        CodePlan* plan = job->Plan;
        float* x = job->X;
        nint chunkBytes = 2 * plan->Bits, direct = Direct(rowBytes, chunkBytes);
        byte* tails = stackalloc byte[8 * Chunk];
        byte* t0 = Tail(q0, direct, rowBytes, tails), t1 = Tail(q1, direct, rowBytes, tails + (2 * Chunk));
        byte* t2 = Tail(q2, direct, rowBytes, tails + (4 * Chunk)), t3 = Tail(q3, direct, rowBytes, tails + (6 * Chunk));
        TV y0 = TS.Zero, y1 = TS.Zero, y2 = TS.Zero, y3 = TS.Zero;
        float u0 = 0, u1 = 0, u2 = 0, u3 = 0;
        for (int g = 0; g < groups; g++)
        {
            nint i = (nint)g * size, end = i + size, full = i + (size & ~(Chunk - 1));
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            for (; i < full; i += Chunk)
            {
                nint o = i / Chunk * chunkBytes;
                PackedLinear.Prefetch(q0 + o, q1 + o, q2 + o, q3 + o, 4 * rowBytes);
                byte* p0 = At(q0, t0, o, direct), p1 = At(q1, t1, o, direct), p2 = At(q2, t2, o, direct), p3 = At(q3, t3, o, direct);
                // One step at Vector512 (the JIT folds the loop away), two at Vector256, 16 at scalar.
                for (int j = 0; j < Chunk; j += TS.Count)
                {
                    TV xv = TS.Load(x + i + j);
                    a0 = TS.MultiplyAdd(TQ.LoadCodes<TM>(p0, j, plan), xv, a0);
                    a1 = TS.MultiplyAdd(TQ.LoadCodes<TM>(p1, j, plan), xv, a1);
                    a2 = TS.MultiplyAdd(TQ.LoadCodes<TM>(p2, j, plan), xv, a2);
                    a3 = TS.MultiplyAdd(TQ.LoadCodes<TM>(p3, j, plan), xv, a3);
                    if (TS.Count == Chunk)
                        break;
                }
            }

            if (i < end)
            {
                u0 += Rest(q0, i, end, x, plan) * s0[g];
                u1 += Rest(q1, i, end, x, plan) * s1[g];
                u2 += Rest(q2, i, end, x, plan) * s2[g];
                u3 += Rest(q3, i, end, x, plan) * s3[g];
            }

            y0 = TS.MultiplyAdd(a0, TS.Broadcast(s0[g]), y0);
            y1 = TS.MultiplyAdd(a1, TS.Broadcast(s1[g]), y1);
            y2 = TS.MultiplyAdd(a2, TS.Broadcast(s2[g]), y2);
            y3 = TS.MultiplyAdd(a3, TS.Broadcast(s3[g]), y3);
        }

        y[0] = TS.Sum(y0) + u0 + ZeroTerm(job, row);
        y[1] = TS.Sum(y1) + u1 + ZeroTerm(job, row + 1);
        y[2] = TS.Sum(y2) + u2 + ZeroTerm(job, row + 2);
        y[3] = TS.Sum(y3) + u3 + ZeroTerm(job, row + 3);
    }

    public static float Dot1<TS, TV, TQ>(PackedJob* job, int row)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        byte* tail = stackalloc byte[2 * Chunk];
        byte* q = Row(job, row, tail, out nint direct);
        int size = job->GroupSize, groups = job->K / size;
        float* s = RowScales(job, row, 1);
        float* x = job->X;
        CodePlan* plan = job->Plan;
        nint chunkBytes = 2 * plan->Bits;
        TV y = TS.Zero;
        float u = 0;
        for (int g = 0; g < groups; g++)
        {
            nint i = (nint)g * size, end = i + size, full = i + (size & ~(Chunk - 1));
            TV a = TS.Zero;
            for (; i < full; i += Chunk)
            {
                byte* p = At(q, tail, i / Chunk * chunkBytes, direct);
                for (int j = 0; j < Chunk; j += TS.Count)
                    a = TS.MultiplyAdd(TQ.LoadCodes<TM>(p, j, plan), TS.Load(x + i + j), a);
            }

            if (i < end)
                u += Rest(q, i, end, x, plan) * s[g];
            y = TS.MultiplyAdd(a, TS.Broadcast(s[g]), y);
        }

        return TS.Sum(y) + u + ZeroTerm(job, row);
    }

    public static void Unpack<TS, TV, TQ>(PackedJob* job, int row, float* destination)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        byte* tail = stackalloc byte[2 * Chunk];
        byte* q = Row(job, row, tail, out nint direct);
        int size = job->GroupSize, groups = job->K / size;
        float* s = RowScales(job, row, 1);
        float* z = TM.HasZero ? (float*)job->Zeros + ((nint)row * groups) : null;
        CodePlan* plan = job->Plan;
        nint chunkBytes = 2 * plan->Bits;
        for (int g = 0; g < groups; g++)
        {
            // (v − z)·s or v·s, one rounding each, as the references: the unpacked row is bit-exact.
            float sg = s[g], zg = TM.HasZero ? z[g] : 0f;
            TV sv = TS.Broadcast(sg), zv = TS.Broadcast(zg);
            nint i = (nint)g * size, end = i + size, full = i + (size & ~(Chunk - 1));
            for (; i < full; i += Chunk)
            {
                byte* p = At(q, tail, i / Chunk * chunkBytes, direct);
                for (int j = 0; j < Chunk; j += TS.Count)
                {
                    TV v = TQ.LoadCodes<TM>(p, j, plan);
                    TS.Store(destination + i + j, TS.Multiply(TM.HasZero ? TS.Subtract(v, zv) : v, sv));
                }
            }

            for (; i < end; i++)
                destination[i] = (TM.HasZero ? Value(q, i, plan) - zg : Value(q, i, plan)) * sg;
        }
    }

    /// <summary>Σ_{k∈[from, end)} x[k]·v(q[k]) one element at a time (the last K mod 16 of a per-row format).</summary>
    private static float Rest(byte* q, nint from, nint end, float* x, CodePlan* plan)
    {
        float sum = 0;
        for (nint i = from; i < end; i++)
            sum += Value(q, i, plan) * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Value(byte* q, nint i, CodePlan* plan) =>
        PackedScalar.LoadCodes<TM>(q + (i / Chunk * 2 * plan->Bits), (int)(i % Chunk), plan);

    /// <summary>−Σ_g z[g]·s[g]·X[g] for formats with zero points, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ZeroTerm(PackedJob* job, int row)
    {
        if (!TM.HasZero)
            return 0;
        int groups = job->K / job->GroupSize;
        float* s = (float*)job->Scales + ((nint)row * groups), z = (float*)job->Zeros + ((nint)row * groups);
        float sum = 0;
        for (int g = 0; g < groups; g++)
            sum -= z[g] * s[g] * job->XSums[g];
        return sum;
    }
}
