using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Formats;
using Lowbit.Quantization.Primitives;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = Σ_b scale[n, b]·Σ_{k∈b} x[m, k]·T[q[n, k]], q in the <see cref="Nf4BlockwiseWeight"/> layout, through
/// <see cref="CodedGemv{TM}"/> with <see cref="Nf4Map"/> and <see cref="CodePlan.Nf4"/> (element 2k high nibble).
/// Decode N=5632, K=2048, B=64: 5.8 MB nibbles + 0.7 MB F32 scales + 8 KB x; 23 MFLOP (3.5 FLOP/byte).
/// Floor at the 30 GB/s one core streams here: 0.22 ms. Cost: 4 vector µops per 16 weights (vbroadcasti32x4,
/// vpshufb, vpsrlvd, vpermps) + the FMA.
/// Measured 2026-11-24, `lowbit-bench linear --threads 1 --layers 2` (2 blocks of dim 2048 / hidden 5632, best of 10,
/// round-robin with bf16 8.33 ms, int8wo 3.81, int4wo-64 4.38), 2-core Zen 5 VM at load average 7-12: 6.04 ms a step.
/// </summary>
internal static unsafe class Nf4BlockwiseGemv
{
    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Nf4BlockwiseWeight weight, Span<float> y) =>
        CodedGemv<Nf4Map>.Compute(level, pool, x, m, weight, CodePlan.Nf4, y);

    /// <summary>The same with double-quantized scales ("nf4-dq"): the loops are nf4's; the scales of the 4 (or 1)
    /// rows a step reads are decoded first, 4·K/B divisions per 4·K weights.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, Nf4DoubleQuantWeight weight, Span<float> y) =>
        CodedGemv<Nf4Map>.Compute(level, pool, x, m, weight, CodePlan.Nf4, y);
}

/// <summary>NF4 code → T[code]: one vpermps on the 16-entry table (AVX-512; it reads only the low 4 index bits,
/// so the cut needs no mask); AVX2's vpermps has 8 entries, so both halves are looked up and bit 3 selects. The table is written out as constants (checked
/// against <see cref="Nf4.Table"/> by a test): a static readonly vector costs a class-initialization check in
/// the AggressiveOptimization loops, and its slow path made the JIT spill every accumulator.</summary>
internal readonly struct Nf4Map : ICodeMap
{
    private static Vector256<float> Low => Vector256.Create(-1.0000f, -0.6962f, -0.5251f, -0.3949f, -0.2844f, -0.1848f, -0.0911f, 0.0000f);

    private static Vector256<float> High => Vector256.Create(0.0796f, 0.1609f, 0.2461f, 0.3379f, 0.4407f, 0.5626f, 0.7230f, 1.0000f);

    public static bool Bytes => false;

    public static bool MaskFree => true;

    public static bool HasZero => false;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Map(Vector512<int> codes) => Avx512F.PermuteVar16x32(
        Vector512.Create(-1.0000f, -0.6962f, -0.5251f, -0.3949f, -0.2844f, -0.1848f, -0.0911f, 0.0000f,
            0.0796f, 0.1609f, 0.2461f, 0.3379f, 0.4407f, 0.5626f, 0.7230f, 1.0000f), codes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Map(Vector256<int> codes) => Vector256.ConditionalSelect(
        Vector256.Equals(codes & Vector256.Create(8), Vector256.Create(8)).AsSingle(),
        Avx2.PermuteVar8x32(High, codes),
        Avx2.PermuteVar8x32(Low, codes));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Map(int code) => Nf4.Table[code];
}
