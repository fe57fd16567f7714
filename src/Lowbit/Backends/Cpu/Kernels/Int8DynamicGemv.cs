using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = s_x[m]·s_w[n]·Σ_k q_x[m, k]·q_w[n, k]: the weight in the <see cref="Int8PerRowWeight"/> layout, the
/// activations quantized per token here (<see cref="QuantizeToken"/>, torchao's symmetric [−127, 127] per-token
/// scheme).
/// <para>Decode (M = 1): integer dot products, exact. .NET 10 exposes no AVX-512 VNNI (there is no Avx512Vnni
/// class, and AvxVnni.IsSupported is false on this Zen 5 VM), and vpmaddubsw (u8×s8, the +128 offset trick with
/// a −128·Σw correction) saturates its int16 pair sums (2·255·127 &gt; 32767), so it is not exact. Instead the
/// token's codes are widened to int16 once per call, each 32 weights are sign-extended to int16 (vpmovsxbw) and
/// vpmaddwd multiplies and adds pairs into int32 lanes, which cannot overflow for K &lt; 2^31 / 127² ≈ 133 000:
/// 3 µops per 32 weights (load-widen, vpmaddwd, vpaddd) against 3 per 16 for int8wo's f32 path.</para>
/// <para>Prefill (M &gt; 1): each token's activations are replaced by q_x·s_x (f32, exact) and the int8wo
/// unpack + dense tile run on them: the same math with f32 accumulation.</para>
/// Decode N=5632, K=2048: 11.5 MB int8 + scales + 4 KB codes; memory-bound like int8wo.
/// </summary>
internal readonly unsafe struct Int8DynamicGemv : IPackedFormat
{
    /// <summary>torchao's eps for per-token activation scales.</summary>
    public const float Eps = 1e-5f;

    [ThreadStatic]
    private static void* t_buffer;

    [ThreadStatic]
    private static nint t_bufferBytes;

    /// <summary>y[m, N] = quant(x)[m, K] · deq(W)ᵀ on <see cref="CpuThreadPool.Shared"/>.</summary>
    public static void Compute(ReadOnlySpan<float> x, int m, Int8DynamicWeight weight, Span<float> y) =>
        Compute(CpuCapabilities.Best, CpuThreadPool.Shared, x, m, weight, y);

    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Int8DynamicWeight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        var w = weight.Weight;
        int k = w.InFeatures;
        if (m < 0 || (long)m * k != x.Length)
            throw new ArgumentException($"{weight.FormatName} linear: x has {x.Length} elements; m·K = {m}·{k} expected.", nameof(x));
        var job = new PackedJob
        {
            Q = (byte*)w.Data.Data,
            RowBytes = k,
            Scales = (byte*)w.Scales.Data,
            ScaleDType = w.Scales.DType,
            GroupSize = k,
            N = w.OutFeatures,
            K = k,
        };
        if (m == 1)
        {
            job.XQ = (short*)Buffer((nint)k * sizeof(short));
            job.XScale = QuantizeToken(x, new Span<short>(job.XQ, k));
            PackedLinear.Compute<Int8DynamicGemv>(level, pool, weight.FormatName, x, m, job, y);
            return;
        }

        // Prefill: x̂ = q_x·s_x per token (f32, exact), then the shared unpack + tile.
        float* buffer = (float*)Buffer(((nint)m * k * sizeof(float)) + ((nint)k * sizeof(short)));
        var fake = new Span<float>(buffer, m * k);
        var codes = new Span<short>(buffer + ((nint)m * k), k);
        for (int t = 0; t < m; t++)
        {
            float s = QuantizeToken(x.Slice(t * k, k), codes);
            Span<float> row = fake.Slice(t * k, k);
            for (int i = 0; i < k; i++)
                row[i] = codes[i] * s;
        }

        PackedLinear.Compute<Int8DynamicGemv>(level, pool, weight.FormatName, fake, m, job, y);
    }

    /// <summary>One token's int8 codes (held as int16) and its scale: s = max(max|x| / 127, 1e−5),
    /// q = clamp(round_half_even(x·(1/s)), −127, 127), as torchao's choose_qparams_affine / quantize_affine
    /// (symmetric, quant range [−127, 127], F32).</summary>
    internal static float QuantizeToken(ReadOnlySpan<float> x, Span<short> codes)
    {
        float amax = 0;
        foreach (float v in x)
            amax = MathF.Max(amax, MathF.Abs(v));
        float scale = MathF.Max(amax / 127f, Eps), inverse = 1f / scale;
        for (int i = 0; i < x.Length; i++)
            codes[i] = (short)Math.Clamp(MathF.Round(x[i] * inverse), -127f, 127f);
        return scale;
    }

    /// <summary>This (calling) thread's activation buffer, grown to at least <paramref name="bytes"/>; kept for the
    /// thread's life, so decode allocates only on the first call.</summary>
    private static void* Buffer(nint bytes)
    {
        if (t_bufferBytes < bytes)
        {
            NativeMemory.AlignedFree(t_buffer);
            t_buffer = NativeMemory.AlignedAlloc((nuint)bytes, 64);
            t_bufferBytes = bytes;
        }

        return t_buffer;
    }

    public static bool UsesGroupSums => false;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dot4<TS, TV, TQ>(PackedJob* job, int row, float* y)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        nint rowBytes = job->RowBytes;
        sbyte* w0 = (sbyte*)(job->Q + (row * rowBytes)), w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
        short* xq = job->XQ;
        int k = job->K;
        nint i = 0;
        int d0 = 0, d1 = 0, d2 = 0, d3 = 0;
        if (typeof(TV) == typeof(Vector512<float>))
        {
            Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= k - 32; i += 32)
            {
                PackedLinear.Prefetch((byte*)w0 + i, (byte*)w1 + i, (byte*)w2 + i, (byte*)w3 + i, 4 * rowBytes);
                Vector512<short> xv = Vector512.Load(xq + i);
                a0 += Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(w0 + i)), xv);
                a1 += Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(w1 + i)), xv);
                a2 += Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(w2 + i)), xv);
                a3 += Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(w3 + i)), xv);
            }

            (d0, d1, d2, d3) = (Vector512.Sum(a0), Vector512.Sum(a1), Vector512.Sum(a2), Vector512.Sum(a3));
        }
        else if (typeof(TV) == typeof(Vector256<float>))
        {
            Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= k - 16; i += 16)
            {
                PackedLinear.Prefetch((byte*)w0 + i, (byte*)w1 + i, (byte*)w2 + i, (byte*)w3 + i, 4 * rowBytes);
                Vector256<short> xv = Vector256.Load(xq + i);
                a0 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Vector128.Load(w0 + i)), xv);
                a1 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Vector128.Load(w1 + i)), xv);
                a2 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Vector128.Load(w2 + i)), xv);
                a3 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Vector128.Load(w3 + i)), xv);
            }

            (d0, d1, d2, d3) = (Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2), Vector256.Sum(a3));
        }

        float sx = job->XScale;
        y[0] = (d0 + Tail(w0, xq, i, k)) * (sx * Int8PerRowGemv.Scale(job, row));
        y[1] = (d1 + Tail(w1, xq, i, k)) * (sx * Int8PerRowGemv.Scale(job, row + 1));
        y[2] = (d2 + Tail(w2, xq, i, k)) * (sx * Int8PerRowGemv.Scale(job, row + 2));
        y[3] = (d3 + Tail(w3, xq, i, k)) * (sx * Int8PerRowGemv.Scale(job, row + 3));
    }

    public static float Dot1<TS, TV, TQ>(PackedJob* job, int row)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV>
    {
        sbyte* w = (sbyte*)(job->Q + (row * job->RowBytes));
        return Tail(w, job->XQ, 0, job->K) * (job->XScale * Int8PerRowGemv.Scale(job, row));
    }

    /// <summary>The int8wo unpack: the weight's values are the same.</summary>
    public static void Unpack<TS, TV, TQ>(PackedJob* job, int row, float* destination)
        where TS : ISimd<TV>
        where TV : unmanaged
        where TQ : IPackedLoads<TV> =>
        Int8PerRowGemv.Unpack<TS, TV, TQ>(job, row, destination);

    /// <summary>Σ_{i∈[from, k)} q_w[i]·q_x[i] in int32, one element at a time (the exact scalar path).</summary>
    private static int Tail(sbyte* w, short* xq, nint from, int k)
    {
        int sum = 0;
        for (nint i = from; i < k; i++)
            sum += w[i] * xq[i];
        return sum;
    }
}
