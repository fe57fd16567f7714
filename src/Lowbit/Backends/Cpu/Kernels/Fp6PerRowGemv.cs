using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = scale[n]·Σ_k x[m, k]·fp6(q[n, k]), q in the <see cref="Fp6PerRowWeight"/> layout, through
/// <see cref="CodedGemv{TM}"/> with <see cref="Fp6Map"/> and <see cref="CodePlan.Stream"/>(6): 16 codes (12 bytes)
/// cut out per vector by vpshufb + vpsrlvd + and, then decoded by integer ops.
/// Decode N=5632, K=2048: 8.7 MB codes + 22 KB scales + 8 KB x.
/// </summary>
internal static unsafe class Fp6PerRowGemv
{
    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ on <see cref="CpuThreadPool.Shared"/>.</summary>
    public static void Compute(ReadOnlySpan<float> x, int m, Fp6PerRowWeight weight, Span<float> y) =>
        Compute(CpuCapabilities.Best, CpuThreadPool.Shared, x, m, weight, y);

    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Fp6PerRowWeight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        PackedLinear.Compute<CodedGemv<Fp6Map>>(level, pool, weight.FormatName, x, m,
            CodedGemv<Fp6Map>.Job(weight.Codes, weight.Scales, null, weight.OutFeatures, weight.InFeatures, weight.InFeatures, CodePlan.Stream(6)), y);
    }
}

/// <summary>FP6 E3M2 code → f32, as <see cref="E4M3Map"/>: exponent and mantissa (bits 4..0) to f32 bits
/// 25..21, the sign (bit 5) to bit 31, × 2^124 rebiases (3 → 127) and fixes subnormals. Exact for all 64 codes
/// (E3M2 has no inf/NaN).</summary>
internal readonly struct Fp6Map : ICodeMap
{
    private const float Rebias = 2.1267648e37f; // 2^124

    public static bool Bytes => false;

    public static bool HasZero => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Map(Vector512<int> codes) =>
        (((codes << 26) & Vector512.Create(int.MinValue)) | ((codes << 21) & Vector512.Create(0x03E00000))).AsSingle() * Vector512.Create(Rebias);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Map(Vector256<int> codes) =>
        (((codes << 26) & Vector256.Create(int.MinValue)) | ((codes << 21) & Vector256.Create(0x03E00000))).AsSingle() * Vector256.Create(Rebias);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Map(int code) =>
        BitConverter.Int32BitsToSingle(((code << 26) & int.MinValue) | ((code << 21) & 0x03E00000)) * Rebias;
}
