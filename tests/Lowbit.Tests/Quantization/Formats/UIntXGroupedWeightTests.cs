using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Tests.Quantization.Formats;

public class UIntXGroupedWeightTests
{
    [Fact]
    public void Layout_is_a_little_endian_bit_stream_per_row()
    {
        // uint3, one group of 32: values 0..7 on the grid (min 0 → zero 0, scale 1), q = value.
        using var dense = Tensor.Allocate(DType.F32, 1, 32);
        for (int k = 0; k < 32; k++)
            dense.AsSpan<float>()[k] = k % 8;
        using var w = UIntXGroupedWeight.Quantize(dense, 3, 32);
        Assert.Equal("uintx-3-32", w.FormatName);
        Assert.Equal(12, w.Codes.Shape[1]);
        // Elements 0..7 = 0..7 fill 24 bits: 0b111_110_101_100_011_010_001_000 = 0xFAC688, little-endian.
        Assert.Equal([0x88, 0xC6, 0xFA], w.Codes.AsSpan<byte>()[..3].ToArray());
        Assert.Equal(1f, w.Scales.AsSpan<float>()[0]);
        Assert.Equal(0f, w.Zeros!.AsSpan<float>()[0]);
    }

    [Theory]
    [InlineData(1, 32)]
    [InlineData(2, 64)]
    [InlineData(5, 32)]
    [InlineData(7, 128)]
    public void Quantize_follows_the_affine_primitives_group_by_group(int bits, int g)
    {
        int k = 3 * g;
        using Tensor dense = QuantTestData.Gaussian(DType.BF16, 4, k, new Random(bits), out float[] exact);
        using var w = UIntXGroupedWeight.Quantize(dense, bits, g);
        Assert.Equal((4L * k * bits / 8) + (2 * 4 * 3 * 4), w.ByteLength);
        var scheme = UIntXGroupedWeight.Scheme(bits, DType.BF16);
        var q = new int[g];
        var codes = new byte[k];
        var row = new float[k];
        for (int r = 0; r < 4; r++)
        {
            BitPacking.Unpack(w.Codes.Row<byte>(r), bits, codes);
            w.Dequantize(r, row);
            for (int group = 0; group < 3; group++)
            {
                var source = exact.AsSpan((r * k) + (group * g), g);
                QParams p = Affine.ChooseQParams(source, scheme, DType.BF16);
                Affine.Quantize(source, p, scheme, DType.BF16, q);
                Assert.Equal(p.Scale, w.Scales.Row<float>(r)[group]);
                Assert.Equal(p.ZeroPoint, w.Zeros!.Row<float>(r)[group]);
                for (int i = 0; i < g; i++)
                {
                    Assert.Equal(q[i], codes[(group * g) + i]);
                    Assert.Equal(Affine.Dequantize(q[i], p, scheme), row[(group * g) + i]);
                }
            }
        }
    }

    /// <summary>Layer-output SQNR on Gaussian weights at group 64, measured (floor): uint2 7.2 dB (6), uint3 15.2 (13),
    /// uint4 21.8 (18; torchao's 4-bit floor), uint7 40.1 (35): about 6 dB a bit from 3 bits on.</summary>
    [Theory]
    [InlineData(2, 6)]
    [InlineData(3, 13)]
    [InlineData(4, 18)]
    [InlineData(7, 35)]
    public void Sqnr_of_the_layer_output_is_above_the_floor_at_group_64(int bits, double floor)
    {
        double sqnr = QuantTestData.LayerSqnr(new Random(12), dense => UIntXGroupedWeight.Quantize(dense, bits, 64));
        Assert.True(sqnr > floor, $"uint{bits}: SQNR {sqnr:F1} dB");
    }

    [Fact]
    public void Incompatible_shapes_are_refused_and_the_quantizer_says_why()
    {
        Assert.Equal("K=172 not a multiple of 32", UIntXGroupedWeight.Incompatibility(172, 3, 32));
        Assert.Equal("8 bits is outside 1..7", UIntXGroupedWeight.Incompatibility(64, 8, 32));
        using var dense = Tensor.Allocate(DType.F32, 2, 172);
        Assert.Contains("K=172", Assert.Throws<ArgumentException>(() => UIntXGroupedWeight.Quantize(dense, 3, 32)).Message);
        Assert.Contains("K=172", Assert.Throws<ArgumentException>(() => Quantizer.QuantizeWeight(new UIntXWeightOnlyConfig(3, 32), dense)).Message);
    }
}
