using Lowbit.Backends.Cpu.Kernels;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The CPU's registration table, (weight format → linear kernel), in one place. <see cref="CpuBackend.Linear"/>
/// looks the weight's type up here; a format with no entry fails, naming the format and the backend.
/// </summary>
internal static class CpuLinearKernels
{
    /// <summary>y[m, N] = x[m, K] · Wᵀ for one weight type, threaded on <paramref name="pool"/>.</summary>
    public delegate void Kernel(CpuThreadPool pool, TensorView x, IWeight weight, TensorView destination);

    private static readonly Dictionary<Type, Kernel> s_kernels = new()
    {
        [typeof(DenseWeight)] = static (pool, x, w, y) =>
            MatMul.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, ((DenseWeight)w).Tensor, y.AsSpan<float>()),
        [typeof(Int8PerRowWeight)] = static (pool, x, w, y) =>
            Int8PerRowGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Int8PerRowWeight)w, y.AsSpan<float>()),
        [typeof(Int4GroupedWeight)] = static (pool, x, w, y) =>
            Int4GroupedGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Int4GroupedWeight)w, y.AsSpan<float>()),
        [typeof(Int4GroupedA8Weight)] = static (pool, x, w, y) =>
            Int4GroupedA8Gemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Int4GroupedA8Weight)w, y.AsSpan<float>()),
        [typeof(Float8PerRowWeight)] = static (pool, x, w, y) =>
            Float8PerRowGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Float8PerRowWeight)w, y.AsSpan<float>()),
        [typeof(Int8DynamicWeight)] = static (pool, x, w, y) =>
            Int8DynamicGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Int8DynamicWeight)w, y.AsSpan<float>()),
        [typeof(UIntXGroupedWeight)] = static (pool, x, w, y) =>
            UIntXGroupedGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (UIntXGroupedWeight)w, y.AsSpan<float>()),
        [typeof(Fp6PerRowWeight)] = static (pool, x, w, y) =>
            Fp6PerRowGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Fp6PerRowWeight)w, y.AsSpan<float>()),
        [typeof(Int8DynamicInt4Weight)] = static (pool, x, w, y) =>
            Int8DynamicInt4Gemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Int8DynamicInt4Weight)w, y.AsSpan<float>()),
        [typeof(Float8DynamicWeight)] = static (pool, x, w, y) =>
            Float8DynamicGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Float8DynamicWeight)w, y.AsSpan<float>()),
        [typeof(Nf4BlockwiseWeight)] = static (pool, x, w, y) =>
            Nf4BlockwiseGemv.Compute(CpuCapabilities.Best, pool, x.AsSpan<float>(), x.Rows, (Nf4BlockwiseWeight)w, y.AsSpan<float>()),
    };

    /// <summary>True when the CPU backend has a kernel for <paramref name="weight"/>'s format.</summary>
    public static bool Supports(IWeight weight) => s_kernels.ContainsKey(weight.GetType());

    public static Kernel For(IWeight weight) =>
        s_kernels.TryGetValue(weight.GetType(), out var kernel)
            ? kernel
            : throw new NotSupportedException($"The CPU backend has no linear kernel for weight format {weight.FormatName} ({weight.GetType().Name}).");
}
