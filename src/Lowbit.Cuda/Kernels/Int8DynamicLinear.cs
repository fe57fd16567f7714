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
    /// <summary>Threads a token: as many as a group takes (1024 on a GPU), so a decode token's K is a few loads a thread.</summary>
    private readonly int _groupSize;

    /// <summary>1.5·2^23: adding and subtracting it rounds an f32 below 2^22 to an integer, ties to even.</summary>
    private const float RoundingMagic = 12582912f;

    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int> _kernel;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<byte>, ArrayView<int>, ArrayView<float>, int> _bytes;

    public ActivationQuantizer(Accelerator accelerator)
    {
        _groupSize = BlockReduce.PowerOfTwoGroup(accelerator, 1024);
        _kernel = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(Kernel);
        _bytes = accelerator.LoadKernel<ArrayView<float>, ArrayView<byte>, ArrayView<int>, ArrayView<float>, int>(BytesKernel);
    }

    /// <param name="x">[m, k].</param>
    /// <param name="codes">[m, k]: c, or c·s when <paramref name="dequantized"/>.</param>
    /// <param name="scales">[m]: s.</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> x, ArrayView<float> codes, ArrayView<float> scales, int m, int k, bool dequantized) =>
        _kernel(stream, new KernelConfig(m, _groupSize), x, codes, scales, k, dequantized ? 1 : 0);

    /// <summary>The codes as int8 bytes (two's complement) with each token's Σ c, for the int8 tensor-core GEMM
    /// (<see cref="Ptx.TensorCoreGemmPtx.Int8Entry"/>).</summary>
    /// <param name="codes">[m, k] bytes.</param>
    /// <param name="sums">[m]: Σ_k c (exact: a float sum of integers below 2^24).</param>
    /// <param name="scales">[m]: s.</param>
    public void LaunchBytes(AcceleratorStream stream, ArrayView<float> x, ArrayView<byte> codes, ArrayView<int> sums, ArrayView<float> scales, int m, int k) =>
        _bytes(stream, new KernelConfig(m, _groupSize), x, codes, sums, scales, k);

    private static void Kernel(ArrayView<float> x, ArrayView<float> codes, ArrayView<float> scales, int k, int dequantized)
    {
        var shared = SharedMemory.Allocate<float>(32);
        long row = (long)Grid.IdxX * k;
        float s = TokenScale(x, row, k, shared), inverse = (float)(1.0 / s), factor = dequantized != 0 ? s : 1f;
        int step = Group.DimX, c = Group.IdxX;
        for (; c + (3 * step) < k; c += 4 * step)
        {
            var v = Strided.Four(x, row + c, step);
            codes[row + c] = Code(v.X, inverse) * factor;
            codes[row + c + step] = Code(v.Y, inverse) * factor;
            codes[row + c + (2 * step)] = Code(v.Z, inverse) * factor;
            codes[row + c + (3 * step)] = Code(v.W, inverse) * factor;
        }
        for (; c < k; c += step)
            codes[row + c] = Code(x[row + c], inverse) * factor;
        if (Group.IdxX == 0)
            scales[Grid.IdxX] = s;
    }

    private static void BytesKernel(ArrayView<float> x, ArrayView<byte> codes, ArrayView<int> sums, ArrayView<float> scales, int k)
    {
        var shared = SharedMemory.Allocate<float>(32);
        long row = (long)Grid.IdxX * k;
        float s = TokenScale(x, row, k, shared), inverse = (float)(1.0 / s), sum = 0f;
        int step = Group.DimX, c = Group.IdxX;
        for (; c + (3 * step) < k; c += 4 * step)
        {
            var v = Strided.Four(x, row + c, step);
            float q0 = Code(v.X, inverse), q1 = Code(v.Y, inverse), q2 = Code(v.Z, inverse), q3 = Code(v.W, inverse);
            codes[row + c] = (byte)((int)q0 & 0xFF);
            codes[row + c + step] = (byte)((int)q1 & 0xFF);
            codes[row + c + (2 * step)] = (byte)((int)q2 & 0xFF);
            codes[row + c + (3 * step)] = (byte)((int)q3 & 0xFF);
            sum += (q0 + q1) + (q2 + q3);
        }
        for (; c < k; c += step)
        {
            float q = Code(x[row + c], inverse);
            codes[row + c] = (byte)((int)q & 0xFF);
            sum += q;
        }
        sum = BlockReduce.Sum(sum, shared);
        if (Group.IdxX == 0)
        {
            scales[Grid.IdxX] = s;
            sums[Grid.IdxX] = (int)sum;
        }
    }

    /// <summary>s = max(max|x| / 127, 1e−5) over the group's row (every thread gets it).</summary>
    private static float TokenScale(ArrayView<float> x, long row, int k, ArrayView<float> shared)
    {
        float a0 = 0f, a1 = 0f;
        int step = Group.DimX, c = Group.IdxX;
        for (; c + (3 * step) < k; c += 4 * step)
        {
            var v = Strided.Four(x, row + c, step);
            a0 = MathF.Max(a0, MathF.Max(MathF.Abs(v.X), MathF.Abs(v.Y)));
            a1 = MathF.Max(a1, MathF.Max(MathF.Abs(v.Z), MathF.Abs(v.W)));
        }
        for (; c < k; c += step)
            a0 = MathF.Max(a0, MathF.Abs(x[row + c]));
        float amax = BlockReduce.Max(MathF.Max(a0, a1), shared);
        // f32 quotients through f64 (exactly rounded like the CPU's f32 division, whatever the GPU's f32 divide).
        return MathF.Max((float)((double)amax / 127.0), 1e-5f);
    }

    /// <summary>c = clamp(round(v·(1/s)), ±127), ties to even, as a float.</summary>
    private static float Code(float v, float inverse)
    {
        float scaled = (float)((double)v * inverse);
        // Round half to even by the 1.5·2^23 trick (exact for |v| < 2^22) rather than MathF.Round, whose PTX
        // mapping gave codes off by one on the H100 (int8dq checks 4e-3 off the CPU; ILGPU's CPU accelerator exact).
        return MathF.Min(MathF.Max((scaled + RoundingMagic) - RoundingMagic, -127f), 127f);
    }
}
