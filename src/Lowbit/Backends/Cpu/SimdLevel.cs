using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lowbit.Backends.Cpu;

/// <summary>Which instruction set a CPU kernel runs with. Each kernel has an internal overload that takes
/// the level explicitly, so tests can run every path the machine supports side by side (no global switch:
/// test classes run in parallel).</summary>
internal enum SimdLevel
{
    /// <summary>Plain C# float math; also the tail loop of the vector paths.</summary>
    Scalar,

    /// <summary>Vector256 with FMA (AVX2 + FMA3).</summary>
    Avx2,

    /// <summary>Vector512 (AVX-512 F/BW).</summary>
    Avx512,
}

/// <summary>What this CPU can run, detected once.</summary>
internal static class CpuCapabilities
{
    /// <summary>The fastest level supported here. AVX-512 is picked only where the JIT also treats
    /// Vector512 as accelerated (it does not by default on CPUs that throttle 512-bit code).</summary>
    public static readonly SimdLevel Best =
        IsSupported(SimdLevel.Avx512) && Vector512.IsHardwareAccelerated ? SimdLevel.Avx512
        : IsSupported(SimdLevel.Avx2) ? SimdLevel.Avx2
        : SimdLevel.Scalar;

    public static bool IsSupported(SimdLevel level) => level switch
    {
        SimdLevel.Scalar => true,
        SimdLevel.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        SimdLevel.Avx512 => Avx512F.IsSupported && Avx512BW.IsSupported,
        _ => false,
    };
}
