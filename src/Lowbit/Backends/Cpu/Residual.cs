namespace Lowbit.Backends.Cpu;

/// <summary>The residual connection y[i] += x[i]. Decode (dim 2048): 16 KB read, 8 KB written; measured
/// ~0.1 us (bench --filter decode, 2026-11-24).</summary>
public static class Residual
{
    /// <exception cref="ArgumentException">x and y differ in length.</exception>
    public static void Add(ReadOnlySpan<float> x, Span<float> y) => Add(CpuCapabilities.Best, x, y);

    internal static void Add(SimdLevel level, ReadOnlySpan<float> x, Span<float> y) =>
        InPlaceBinary.Apply<AddOperator>("Residual.Add", level, x, y);

    private readonly struct AddOperator : IInPlaceBinaryOperator
    {
        public static TV Invoke<TS, TV>(TV y, TV x)
            where TS : ISimd<TV>
            where TV : unmanaged => TS.Add(y, x);
    }
}
