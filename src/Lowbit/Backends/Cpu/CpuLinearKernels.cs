using Lowbit.Backends.Cpu.Kernels;
using Lowbit.Quantization.Formats;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The CPU's registration table, (weight format → linear kernel), in one place. <see cref="CpuBackend.Linear"/>
/// looks the weight's type up here; a format with no entry fails, naming the format and the backend.
/// </summary>
internal static class CpuLinearKernels
{
    /// <summary>y[m, N] = x[m, K] · Wᵀ for one weight type at <paramref name="level"/>, threaded on <paramref name="pool"/>.</summary>
    public delegate void Kernel(SimdLevel level, CpuThreadPool pool, ReadOnlySpan<float> x, int m, IWeight weight, Span<float> y);

    private static readonly Dictionary<Type, Kernel> s_kernels = new()
    {
        [typeof(DenseWeight)] = static (level, pool, x, m, w, y) => MatMul.Compute(level, pool, x, m, ((DenseWeight)w).Tensor, y),
        [typeof(Int8PerRowWeight)] = static (level, pool, x, m, w, y) => Int8PerRowGemv.Compute(level, pool, x, m, (Int8PerRowWeight)w, y),
        [typeof(Int4GroupedWeight)] = static (level, pool, x, m, w, y) => Int4GroupedGemv.Compute(level, pool, x, m, (Int4GroupedWeight)w, y),
        [typeof(Int4GroupedA8Weight)] = static (level, pool, x, m, w, y) => Int4GroupedA8Gemv.Compute(level, pool, x, m, (Int4GroupedA8Weight)w, y),
        [typeof(Float8PerRowWeight)] = static (level, pool, x, m, w, y) => Float8PerRowGemv.Compute(level, pool, x, m, (Float8PerRowWeight)w, y),
        [typeof(Int8DynamicWeight)] = static (level, pool, x, m, w, y) => Int8DynamicGemv.Compute(level, pool, x, m, (Int8DynamicWeight)w, y),
        [typeof(UIntXGroupedWeight)] = static (level, pool, x, m, w, y) => UIntXGroupedGemv.Compute(level, pool, x, m, (UIntXGroupedWeight)w, y),
        [typeof(Fp6PerRowWeight)] = static (level, pool, x, m, w, y) => Fp6PerRowGemv.Compute(level, pool, x, m, (Fp6PerRowWeight)w, y),
        [typeof(Int8DynamicInt4Weight)] = static (level, pool, x, m, w, y) => Int8DynamicInt4Gemv.Compute(level, pool, x, m, (Int8DynamicInt4Weight)w, y),
        [typeof(Float8DynamicWeight)] = static (level, pool, x, m, w, y) => Float8DynamicGemv.Compute(level, pool, x, m, (Float8DynamicWeight)w, y),
        [typeof(Nf4BlockwiseWeight)] = static (level, pool, x, m, w, y) => Nf4BlockwiseGemv.Compute(level, pool, x, m, (Nf4BlockwiseWeight)w, y),
        [typeof(Nf4DoubleQuantWeight)] = static (level, pool, x, m, w, y) => Nf4BlockwiseGemv.Compute(level, pool, x, m, (Nf4DoubleQuantWeight)w, y),
    };

    /// <summary>True when the CPU backend has a kernel for <paramref name="weight"/>'s format.</summary>
    public static bool Supports(IWeight weight) => s_kernels.ContainsKey(weight.GetType());

    public static Kernel For(IWeight weight) =>
        s_kernels.TryGetValue(weight.GetType(), out var kernel)
            ? kernel
            : throw new NotSupportedException($"The CPU backend has no linear kernel for weight format {weight.FormatName} ({weight.GetType().Name}).");
}
