using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Tests.Quantization.Formats;

public class Fp6PerRowWeightTests
{
    [Fact]
    public void Layout_packs_4_codes_in_3_bytes()
    {
        // Row [28, −28, 1, 0]: scale 1; codes 0x1F, 0x3F, 0x0C (1.0 = exponent 3, mantissa 0), 0.
        using var dense = Tensor.Allocate(DType.F32, 1, 4);
        float[] values = [28f, -28f, 1f, 0f];
        values.CopyTo(dense.AsSpan<float>());
        using var w = Fp6PerRowWeight.Quantize(dense);
        Assert.Equal("fp6", w.FormatName);
        Assert.Equal(1f, w.Scales.AsSpan<float>()[0]);
        byte c0 = 0x1F, c1 = 0x3F, c2 = 0x0C, c3 = 0;
        Assert.Equal([(byte)(c0 | (c1 << 6)), (byte)((c1 >> 2) | (c2 << 4)), (byte)((c2 >> 4) | (c3 << 2))], w.Codes.AsSpan<byte>().ToArray());
    }

    [Fact]
    public void Quantize_follows_the_floatx_primitives_row_by_row()
    {
        using Tensor dense = QuantTestData.Gaussian(DType.BF16, 5, 172, new Random(13), out float[] exact);
        using var w = Fp6PerRowWeight.Quantize(dense);
        Assert.Equal((5L * 129) + (5 * 4), w.ByteLength);
        var codes = new byte[172];
        var row = new float[172];
        for (int r = 0; r < 5; r++)
        {
            var source = exact.AsSpan(r * 172, 172);
            float scale = FloatScaling.ChooseScale(FloatX.Fp6E3M2, source);
            Assert.Equal(scale, w.Scales.Row<float>(r)[0]);
            FloatX.Fp6E3M2.Unpack(w.Codes.Row<byte>(r), codes);
            w.Dequantize(r, row);
            for (int i = 0; i < 172; i++)
            {
                Assert.Equal(FloatX.Fp6E3M2.Encode(source[i] / scale), codes[i]);
                Assert.Equal(FloatX.Fp6E3M2.Decode(codes[i]) * scale, row[i]);
            }
        }
    }

    /// <summary>Measured 25.3 dB on Gaussian weights (2 mantissa bits, 3 exponent bits); floor 22.</summary>
    [Fact]
    public void Sqnr_of_the_layer_output_is_above_the_floor()
    {
        double sqnr = QuantTestData.LayerSqnr(new Random(14), dense => Fp6PerRowWeight.Quantize(dense));
        Assert.True(sqnr > 22, $"SQNR {sqnr:F1} dB");
    }

    [Fact]
    public void K_not_a_multiple_of_4_is_refused_and_the_quantizer_says_why()
    {
        Assert.Equal("K=174 not a multiple of 4", Fp6PerRowWeight.Incompatibility(174));
        using var dense = Tensor.Allocate(DType.F32, 2, 174);
        Assert.Contains("K=174", Assert.Throws<ArgumentException>(() => Quantizer.QuantizeWeight(new FpxWeightOnlyConfig(), dense)).Message);
    }
}
