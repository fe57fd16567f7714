using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// int8dq's weight side on the device: stored and decoded exactly as int8wo (<see cref="Int8PerRowValues"/>),
/// but x holds the token's int8 codes c (as floats, from <see cref="ActivationQuantizer"/>), so every product
/// c·q is an integer below 2^14 and a lane's f32 sum stays an exact integer below 2^24 while the lane sums at
/// most 1024 products (K ≤ 32 768 × the GEMV's split); the warp sums in f64, then y = (f32)Σ·(s_x·s_w): the
/// CPU kernel's int32 dot and scales, to the bit, for such K (larger K rounds like an f32 dot).
/// </summary>
public readonly struct Int8DynamicCodes : IByteValues
{
    public bool Codes => true;

    public float Value(uint word, int j) => default(Int8PerRowValues).Value(word, j);
}

/// <summary>
/// int8dq's activations, one group of 256 threads a token, as the CPU's DynamicActivation (torchao's
/// _int8_symm_per_token_reduced_range_quant): s = max(max|x| / 127, 1e−5), c = clamp(round(x·(1/s)), ±127)
/// with round half to even; writes c (for the GEMV) or c·s (prefill: the CPU's f32 path, then int8wo's GEMM)
/// and s. x·(1/s) is formed in f64 and rounded to f32 once: a plain f32 product could be fused by ptxas into
/// the rounding's add (an FMA), which rounds once instead of twice and can move a code by one.
/// </summary>
public sealed class ActivationQuantizer
{
    private const int GroupSize = 256;

    /// <summary>1.5·2^23: adding and subtracting it rounds an f32 below 2^22 to an integer, ties to even.</summary>
    private const float RoundingMagic = 12582912f;

    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _kernel;

    public ActivationQuantizer(Accelerator accelerator) =>
        _kernel = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(Kernel);

    /// <param name="x">[m, k].</param>
    /// <param name="codes">[m, k]: c, or c·s when <paramref name="dequantized"/>.</param>
    /// <param name="scales">[m]: s.</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> x, ArrayView<float> codes, ArrayView<float> scales, int m, int k, bool dequantized) =>
        _kernel(stream, new KernelConfig(m, GroupSize), x, codes, scales, k, dequantized ? 1 : 0);

    private static void Kernel(ArrayView<float> x, ArrayView<float> codes, ArrayView<float> scales, int k, int dequantized)
    {
        var shared = SharedMemory.Allocate<float>(32);
        long row = (long)Grid.IdxX * k;
        float amax = 0f;
        for (int c = Group.IdxX; c < k; c += Group.DimX)
            amax = MathF.Max(amax, MathF.Abs(x[row + c]));
        amax = BlockReduce.Max(amax, shared);
        // f32 quotients through f64 (exactly rounded like the CPU's f32 division, whatever the GPU's f32 divide).
        float s = MathF.Max((float)((double)amax / 127.0), 1e-5f), inverse = (float)(1.0 / s);
        for (int c = Group.IdxX; c < k; c += Group.DimX)
        {
            float v = (float)((double)x[row + c] * inverse);
            // Round half to even by the 1.5·2^23 trick (exact for |v| < 2^22) rather than MathF.Round, whose PTX
            // mapping gave codes off by one on the H100 (int8dq checks 4e-3 off the CPU; ILGPU's CPU accelerator exact).
            float q = MathF.Min(MathF.Max((v + RoundingMagic) - RoundingMagic, -127f), 127f);
            codes[row + c] = dequantized != 0 ? q * s : q;
        }
        if (Group.IdxX == 0)
            scales[Grid.IdxX] = s;
    }
}
