using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// y[m, n] = Σ_g scale[n, g]·Σ_{k∈g} x[m, k]·(q[n, k] − zero[n, g]), q in the <see cref="UIntXGroupedWeight"/>
/// layout, through <see cref="CodedGemv{TM}"/> with <see cref="UIntMap"/> and <see cref="CodePlan.Stream"/>(B): the
/// zero point folds out as −Σ_g zero·scale·Σx, so each weight costs the cut (broadcast load, vpshufb, vpsrlvd,
/// and), a convert and one FMA whatever B is.
/// Decode N=5632, K=2048, G=64, B=3: 4.3 MB codes + 1.4 MB F32 scales and zeros + 8 KB x.
/// Measured 2026-11-24, `lowbit-bench linear --threads 1 --layers 2` (2 blocks of dim 2048 / hidden 5632, best of 10,
/// round-robin with bf16 8.33 ms, int8wo 3.81, int4wo-64 4.38), 2-core Zen 5 VM at load average 7-12: uintx-2/3/4-64 7.77 / 7.69 / 7.66 ms a step (the cost does not depend on B).
/// </summary>
internal static unsafe class UIntXGroupedGemv
{
    /// <summary>y[m, N] = x[m, K] · deq(W)ᵀ on <paramref name="pool"/>.</summary>
    internal static void Compute(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, UIntXGroupedWeight weight, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(weight); // before weight.Bits
        CodedGemv<UIntMap>.Compute(level, pool, x, m, weight, CodePlan.Stream(weight.Bits), y);
    }
}

/// <summary>An unsigned integer code is its own value (vcvtdq2ps); the zero point is the driver's.</summary>
internal readonly struct UIntMap : ICodeMap
{
    public static bool Bytes => false;

    public static bool MaskFree => false;

    public static bool HasZero => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Map(Vector512<int> codes) => Avx512F.ConvertToVector512Single(codes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Map(Vector256<int> codes) => Avx.ConvertToVector256Single(codes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Map(int code) => code;
}
