using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = s_x[m]·s_w[n]·Σ_k q_x[m, k]·q_w[n, k]: the weight in the <see cref="Int8PerRowWeight"/> layout, the
/// activations quantized per token by <see cref="DynamicActivation"/> (torchao's symmetric [−127, 127] per-token
/// scheme).
/// <para>Decode (M = 1): integer dot products, exact. .NET 10 exposes no AVX-512 VNNI (there is no Avx512Vnni
/// class, and AvxVnni.IsSupported is false on this Zen 5 VM), and vpmaddubsw (u8×s8, the +128 offset trick with
/// a −128·Σw correction) saturates its int16 pair sums (2·255·127 &gt; 32767), so it is not exact. Instead the
/// token's codes are held as int16 (once per call), each 32 weights are sign-extended to int16 (vpmovsxbw) and
/// vpmaddwd multiplies and adds pairs into int32 lanes, which cannot overflow for K &lt; 2^31 / 127² ≈ 133 000:
/// 3 µops per 32 weights (load-widen, vpmaddwd, vpaddd) against 3 per 16 for int8wo's f32 path.</para>
/// <para>Prefill (M &gt; 1): each token's activations are replaced by q_x·s_x (f32, exact) and the int8wo
/// unpack + dense tile run on them: the same math with f32 accumulation.</para>
/// Decode N=5632, K=2048: 11.5 MB int8 + scales + 4 KB codes; memory-bound like int8wo.
/// Measured 2026-11-24, `lowbit-bench linear --threads 1 --layers 2` (2 blocks of dim 2048 / hidden 5632, best of 10,
/// round-robin with bf16 8.33 ms, int8wo 3.81, int4wo-64 4.38), 2-core Zen 5 VM at load average 7-12: 3.82 ms a step, the same as int8wo's f32 path (3.81): the int16 path halves the µops but both read the same bytes.
/// </summary>
internal readonly unsafe struct Int8DynamicGemv : IPackedFormat
{
    /// <summary>y[m, N] = quant(x)[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Int8DynamicWeight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        DynamicActivation.Compute<Int8DynamicGemv>(level, pool, weight.FormatName, DynamicActivation.Scheme.Symmetric127, x, m,
            Int8PerRowGemv.Job(weight.Weight), y);
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
