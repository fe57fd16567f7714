using Lowbit.Backends.Cpu.Kernels;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;
using Lowbit.Tests.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Formats;

public class Int4GroupedA8WeightTests
{
    [Fact]
    public unsafe void Weight_is_int4wo_and_the_activations_follow_the_affine_primitives_per_block_of_32()
    {
        using Tensor dense = QuantTestData.Gaussian(DType.BF16, 3, 192, new Random(9), out _);
        using var a8 = Int4GroupedA8Weight.Quantize(dense, 64);
        using var wo = Int4GroupedWeight.Quantize(dense, 64);
        Assert.Equal("int4wo-a8-64", a8.FormatName);
        Assert.Equal(wo.Packed.AsBytes().ToArray(), a8.Weight.Packed.AsBytes().ToArray());
        Assert.Equal(wo.Scales.AsBytes().ToArray(), a8.Weight.Scales.AsBytes().ToArray());
        Assert.Equal(wo.Zeros.AsBytes().ToArray(), a8.Weight.Zeros.AsBytes().ToArray());

        // K = 192: one whole block of 128 and a half one, padded to 256 codes.
        var rng = new Random(10);
        foreach (float sigma in new[] { 1f, 1e-3f, 0f })
        {
            float[] x = Enumerable.Range(0, 192).Select(_ => sigma * (float)AffineTests.Gaussian(rng)).ToArray();
            float[] expected = QuantTestData.FakeQuantizedPerToken(x, 6, 32);
            var xhat = new float[192];
            var codes = new sbyte[256];
            var laneScales = new float[32];
            fixed (float* px = xhat, ps = laneScales)
            fixed (sbyte* pc = codes)
                Int4GroupedA8Gemv.Quantize(x, px, pc, ps);
            Assert.Equal(expected, xhat);
            for (int i = 0; i < 256; i++)
            {
                // Element of code i: block i / 128, then 64 low-nibble partners and 64 high ones, 16 per chunk.
                int b = i / 128, h = i % 128 / 64, c = i % 64 / 16, j = i % 16;
                int e = (128 * b) + (32 * c) + (16 * h) + j;
                float s = e < 192 ? laneScales[(16 * b) + (4 * c)] : 0;
                Assert.Equal(e < 192 ? expected[e] : 0, codes[i] * s);
            }
        }
    }

    /// <summary>Measured 20.4 dB on Gaussian weights and activations (int4wo-64's 20.6 less the activation
    /// rounding); floor 18, as int4wo.</summary>
    [Fact]
    public void Sqnr_of_the_layer_output_is_above_18_dB()
    {
        double sqnr = QuantTestData.KernelLayerSqnr(new Random(11), dense => Int4GroupedA8Weight.Quantize(dense, 64));
        Assert.True(sqnr > 18, $"SQNR {sqnr:F1} dB");
    }
}
