using System.Runtime.Intrinsics;

namespace Lowbit.Backends.Cpu;

/// <summary>The residual connection y[i] += x[i]. Decode (dim 2048): 16 KB read, 8 KB written.</summary>
public static unsafe class Residual
{
    /// <exception cref="ArgumentException">x and y differ in length.</exception>
    public static void Add(ReadOnlySpan<float> x, Span<float> y) => Add(CpuCapabilities.Best, x, y);

    internal static void Add(SimdLevel level, ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.Length != y.Length)
            throw new ArgumentException($"Residual.Add: x has {x.Length} elements, y {y.Length}; they must match.", nameof(x));
        fixed (float* px = x)
        fixed (float* py = y)
        {
            int i = 0;
            switch (level)
            {
                case SimdLevel.Avx512: Run<Simd512, Vector512<float>>(px, py, y.Length, ref i); break;
                case SimdLevel.Avx2: Run<Simd256, Vector256<float>>(px, py, y.Length, ref i); break;
            }

            Run<SimdScalar, float>(px, py, y.Length, ref i);
        }
    }

    private static void Run<TS, TV>(float* x, float* y, int n, ref int i)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        for (; i <= n - TS.Count; i += TS.Count)
            TS.Store(y + i, TS.Add(TS.Load(y + i), TS.Load(x + i)));
    }
}
