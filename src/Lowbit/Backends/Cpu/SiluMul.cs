using System.Runtime.Intrinsics;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The SwiGLU activation of a Llama MLP, in place: gate[i] = silu(gate[i])·up[i], silu(g) = g / (1 + e^−g).
/// e^x is Vector512/Vector256.Exp (the BCL's vectorised port of AMD's AOCL expf, about 1 ulp) and MathF.Exp
/// on the scalar path; the tests bound the relative error at 1e-6. Decode (FFN 8192): 64 KB read, 32 KB
/// written.
/// </summary>
public static unsafe class SiluMul
{
    /// <exception cref="ArgumentException">up and gate differ in length.</exception>
    public static void Apply(ReadOnlySpan<float> up, Span<float> gate) => Apply(CpuCapabilities.Best, up, gate);

    internal static void Apply(SimdLevel level, ReadOnlySpan<float> up, Span<float> gate)
    {
        if (up.Length != gate.Length)
            throw new ArgumentException($"SiluMul: up has {up.Length} elements, gate {gate.Length}; they must match.", nameof(up));
        fixed (float* pu = up)
        fixed (float* pg = gate)
        {
            int i = 0;
            switch (level)
            {
                case SimdLevel.Avx512: Run<Simd512, Vector512<float>>(pu, pg, gate.Length, ref i); break;
                case SimdLevel.Avx2: Run<Simd256, Vector256<float>>(pu, pg, gate.Length, ref i); break;
            }

            Run<SimdScalar, float>(pu, pg, gate.Length, ref i);
        }
    }

    private static void Run<TS, TV>(float* up, float* gate, int n, ref int i)
        where TS : ISimd<TV>
        where TV : unmanaged
    {
        TV one = TS.Broadcast(1f), minusOne = TS.Broadcast(-1f);
        for (; i <= n - TS.Count; i += TS.Count)
        {
            TV g = TS.Load(gate + i);
            TV silu = TS.Divide(g, TS.Add(one, TS.Exp(TS.Multiply(g, minusOne))));
            TS.Store(gate + i, TS.Multiply(silu, TS.Load(up + i)));
        }
    }
}
