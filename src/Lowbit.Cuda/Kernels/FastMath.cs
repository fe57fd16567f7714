using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>Math that ILGPU's PTX backend lacks without the ILGPU.Algorithms package: MathF.Exp has no
/// intrinsic there (InternalCompilerException "ExpF", seen on the H100), so exp is written out.</summary>
public static class FastMath
{
    /// <summary>e^x as Cephes' expf: x = n·ln2 + r (ln2 split in two for exactness), e^r by a degree-6
    /// polynomial (about 1 ulp), 2^n built in the exponent bits. Inputs are clamped to [-87.3, 88.7]: below,
    /// the result is ~1e-38 instead of a subnormal or 0 (harmless in softmax and silu).</summary>
    public static float Exp(float x)
    {
        x = MathF.Min(MathF.Max(x, -87.3f), 88.7f);
        float t = x * 1.44269504f;
        int n = (int)(t + (t >= 0f ? 0.5f : -0.5f));
        float r = x - n * 0.693359375f + n * 2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        float y = p * r * r + r + 1f;
        return y * Interop.IntAsFloat((uint)(n + 127) << 23);
    }
}
