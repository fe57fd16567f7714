namespace Lowbit.Backends.Cpu;

/// <summary>
/// The SwiGLU activation of a Llama MLP, in place: gate[i] = silu(gate[i])·up[i], silu(g) = g / (1 + e^−g).
/// e^x is Vector512/Vector256.Exp (the BCL's vectorised port of AMD's AOCL expf, about 1 ulp) and MathF.Exp
/// on the scalar path; the tests bound the relative error at 1e-6. Decode (FFN 8192): 64 KB read, 32 KB
/// written, ~20 FLOP an element (the exp polynomial). Measured 15.8 us at 5632 (bench --filter decode, shared
/// 2-core Zen 5, 2026-11-24): the BCL's float Exp works in double, so this is ALU-bound, ~0.3% of a step.
/// </summary>
public static class SiluMul
{
    /// <exception cref="ArgumentException">up and gate differ in length.</exception>
    public static void Apply(ReadOnlySpan<float> up, Span<float> gate) => Apply(CpuCapabilities.Best, up, gate);

    internal static void Apply(SimdLevel level, ReadOnlySpan<float> up, Span<float> gate) =>
        InPlaceBinary.Apply<SiluMulOperator>("SiluMul", level, up, gate);

    private readonly struct SiluMulOperator : IInPlaceBinaryOperator
    {
        public static TV Invoke<TS, TV>(TV gate, TV up)
            where TS : ISimd<TV>
            where TV : unmanaged
        {
            TV silu = TS.Divide(gate, TS.Add(TS.Broadcast(1f), TS.Exp(TS.Multiply(gate, TS.Broadcast(-1f)))));
            return TS.Multiply(silu, up);
        }
    }
}
