using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = scale[n]·Σ_k x[m, k]·fp6(q[n, k]), q in the <see cref="Fp6PerRowWeight"/> layout, through
/// <see cref="CodedGemv{TM}"/> with <see cref="Fp6Map"/> and <see cref="CodePlan.Stream"/>(6): 16 codes (12 bytes)
/// cut out per vector by vpshufb + vpsrlvd + and, then decoded by a 32-entry vpermt2ps and the sign or'ed in.
/// Decode N=5632, K=2048: 8.7 MB codes + 22 KB scales + 8 KB x.
/// Measured 2026-11-24, `lowbit-bench linear --threads 1 --layers 2` (2 blocks of dim 2048 / hidden 5632, best of 10,
/// round-robin with bf16 8.33 ms, int8wo 3.81, int4wo-64 4.38), 2-core Zen 5 VM at load average 7-12: 8.34 ms a step.
/// </summary>
internal static unsafe class Fp6PerRowGemv
{
    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Fp6PerRowWeight weight, Span<float> y) =>
        CodedGemv<Fp6Map>.Compute(level, pool, x, m, weight, CodePlan.Stream(6), y);
}

/// <summary>FP6 E3M2 code → f32. AVX-512: the magnitude (bits 4..0) indexes a 32-entry table with one vpermt2ps
/// (two registers of 16), and the sign (bit 5, shifted to bit 31) is or'ed in: 3 µops. AVX2 and scalar, as
/// <see cref="E4M3Map"/>: exponent and mantissa to f32 bits 25..21, the sign to bit 31, × 2^124 rebiases (3 → 127)
/// and fixes subnormals. Exact for all 64 codes (E3M2 has no inf/NaN; tested at every width).</summary>
internal readonly struct Fp6Map : ICodeMap
{
    private const float Rebias = 2.1267648e37f; // 2^124

    public static bool Bytes => false;

    public static bool MaskFree => false;

    public static bool HasZero => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Map(Vector512<int> codes) =>
        Avx512F.PermuteVar16x32x2(
            Vector512.Create(0f, 0.0625f, 0.125f, 0.1875f, 0.25f, 0.3125f, 0.375f, 0.4375f, 0.5f, 0.625f, 0.75f, 0.875f, 1f, 1.25f, 1.5f, 1.75f),
            codes,
            Vector512.Create(2f, 2.5f, 3f, 3.5f, 4f, 5f, 6f, 7f, 8f, 10f, 12f, 14f, 16f, 20f, 24f, 28f))
        | ((codes << 26) & Vector512.Create(int.MinValue)).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Map(Vector256<int> codes) =>
        (((codes << 26) & Vector256.Create(int.MinValue)) | ((codes << 21) & Vector256.Create(0x03E00000))).AsSingle() * Vector256.Create(Rebias);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Map(int code) =>
        BitConverter.Int32BitsToSingle(((code << 26) & int.MinValue) | ((code << 21) & 0x03E00000)) * Rebias;
}
