using Lowbit.Quantization.Formats;
using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Tests.Quantization.Formats;

public class Int8PerRowWeightTests
{
    [Theory]
    [InlineData("F32")]
    [InlineData("BF16")]
    [InlineData("F16")]
    public void Quantize_follows_the_affine_primitives_row_by_row(string dtypeName)
    {
        DType dtype = Enum.Parse<DType>(dtypeName);
        using Tensor dense = QuantTestData.Gaussian(dtype, 7, 172, new Random(1), out float[] exact);
        using var w = Int8PerRowWeight.Quantize(dense);
        Assert.Equal(dtype, w.Scales.DType);
        Assert.Equal("int8wo", w.FormatName);
        Assert.Equal((7L * 172) + (7L * dtype.Size()), w.ByteLength);
        var scheme = AffineScheme.Int8Symmetric(dtype);
        var row = new float[172];
        var q = new int[172];
        for (int r = 0; r < 7; r++)
        {
            var source = exact.AsSpan(r * 172, 172);
            QParams p = Affine.ChooseQParams(source, scheme, dtype);
            Affine.Quantize(source, p, scheme, dtype, q);
            Assert.Equal(p.Scale, w.Scale(r));
            Assert.Equal(q, w.Data.Row<sbyte>(r).ToArray().Select(v => (int)v).ToArray());
            w.Dequantize(r, row);
            for (int i = 0; i < 172; i++)
            {
                Assert.Equal(q[i] * p.Scale, row[i]);
                // Half a scale; for BF16/F16 weights torch also rounds 1/scale and x·(1/scale) to the half type
                // (relative 2⁻⁹ each for bf16), which can move q by a fraction more.
                float slack = dtype == DType.F32 ? 1e-7f : Math.Abs(source[i]) / 128;
                Assert.True(Math.Abs(source[i] - row[i]) <= (p.Scale / 2 * 1.0001f) + slack, $"row {r} col {i}: {source[i]} vs {row[i]}");
            }
        }
    }

    [Fact]
    public void Row_maximum_maps_to_127_and_minimum_to_minus_128()
    {
        // Row [1.275, −1.275, 0.01]: scale = 1.275 / 127.5 = 0.01; ±127.5 → 127 (clamped) and −128.
        using var dense = Tensor.Allocate(DType.F32, 1, 3);
        dense.AsSpan<float>()[0] = 1.275f;
        dense.AsSpan<float>()[1] = -1.275f;
        dense.AsSpan<float>()[2] = 0.01f;
        using var w = Int8PerRowWeight.Quantize(dense);
        Assert.Equal([127, -128, 1], w.Data.AsSpan<sbyte>().ToArray().Select(v => (int)v));
    }

    /// <summary>torchao's int8 weight-only floor: layer-output SQNR over 35 dB on Gaussian weights.</summary>
    [Fact]
    public void Sqnr_of_the_layer_output_is_above_35_dB()
    {
        double sqnr = QuantTestData.LayerSqnr(new Random(5), dense => Int8PerRowWeight.Quantize(dense));
        Assert.True(sqnr > 35, $"SQNR {sqnr:F1} dB");
    }

    [Fact]
    public void Constructor_checks_shapes()
    {
        using var data = Tensor.Allocate(DType.I8, 4, 8);
        using var scales = Tensor.Allocate(DType.F32, 3);
        Assert.Throws<ArgumentException>(() => new Int8PerRowWeight(data, scales));
        using var notDense = Tensor.Allocate(DType.I8, 4, 8);
        Assert.Throws<ArgumentException>(() => Int8PerRowWeight.Quantize(notDense));
    }
}
