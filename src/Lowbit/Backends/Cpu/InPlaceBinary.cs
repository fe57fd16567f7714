using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Lowbit.Backends.Cpu;

/// <summary>An element-wise y[i] = op(y[i], x[i]): a scalar-or-vector <see cref="Invoke"/> that the
/// driver <see cref="InPlaceBinary.Apply"/> runs over whole vectors, then the scalar tail.</summary>
internal interface IInPlaceBinaryOperator
{
    static abstract TV Invoke<TS, TV>(TV y, TV x)
        where TS : ISimd<TV>
        where TV : unmanaged;
}

/// <summary>Runs an <see cref="IInPlaceBinaryOperator"/> over spans at a SIMD level.</summary>
internal static unsafe class InPlaceBinary
{
    /// <summary>y = op(y, x); fails unless the lengths match, naming <paramref name="op"/> and the caller's two
    /// arguments.</summary>
    public static void Apply<TOp>(string op, SimdLevel level, ReadOnlySpan<float> x, Span<float> y,
        [CallerArgumentExpression(nameof(x))] string xName = "", [CallerArgumentExpression(nameof(y))] string yName = "")
        where TOp : IInPlaceBinaryOperator
    {
        if (x.Length != y.Length)
            throw new ArgumentException($"{op}: {xName} has {x.Length} elements, {yName} {y.Length}; they must match.", xName);
        fixed (float* px = x)
        fixed (float* py = y)
        {
            int i = 0;
            switch (level)
            {
                case SimdLevel.Avx512: Run<TOp, Simd512, Vector512<float>>(px, py, y.Length, ref i); break;
                case SimdLevel.Avx2: Run<TOp, Simd256, Vector256<float>>(px, py, y.Length, ref i); break;
            }

            Run<TOp, SimdScalar, float>(px, py, y.Length, ref i);
        }
    }

    private static void Run<TOp, TS, TV>(float* x, float* y, int n, ref int i)
        where TOp : IInPlaceBinaryOperator
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        for (; i <= n - TS.Count; i += TS.Count)
            TS.Store(y + i, TOp.Invoke<TS, TV>(TS.Load(y + i), TS.Load(x + i)));
    }
}
