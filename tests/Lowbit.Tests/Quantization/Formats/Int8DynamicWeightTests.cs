using Lowbit.Backends.Cpu.Kernels;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;
using Lowbit.Tests.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Formats;

public class Int8DynamicWeightTests
{
    [Fact]
    public void Weight_is_int8wo_and_the_token_quantization_matches_the_affine_primitives()
    {
        using Tensor dense = QuantTestData.Gaussian(DType.BF16, 3, 100, new Random(9), out _);
        using var dq = Int8DynamicWeight.Quantize(dense);
        using var wo = Int8PerRowWeight.Quantize(dense);
        Assert.Equal("int8dq", dq.FormatName);
        Assert.Equal(wo.Data.AsBytes().ToArray(), dq.Weight.Data.AsBytes().ToArray());
        Assert.Equal(wo.Scales.AsBytes().ToArray(), dq.Weight.Scales.AsBytes().ToArray());

        var rng = new Random(10);
        foreach (float sigma in new[] { 1f, 1e-3f, 0f })
        {
            float[] x = Enumerable.Range(0, 100).Select(_ => sigma * (float)AffineTests.Gaussian(rng)).ToArray();
            var codes = new short[100];
            float s = DynamicActivation.QuantizeToken(DynamicActivation.Scheme.Symmetric127, x, codes);
            float[] expected = QuantTestData.FakeQuantizedPerToken(x, 1, 100);
            for (int i = 0; i < 100; i++)
                Assert.Equal(expected[i], codes[i] * s);
        }
    }

    /// <summary>Measured 39.8 dB on Gaussian weights and activations (both int8); floor 33.</summary>
    [Fact]
    public void Sqnr_of_the_layer_output_is_above_33_dB()
    {
        double sqnr = QuantTestData.KernelLayerSqnr(new Random(11), Int8DynamicWeight.Quantize);
        Assert.True(sqnr > 33, $"SQNR {sqnr:F1} dB");
    }
}
