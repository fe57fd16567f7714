using Lowbit.Quantization.Formats;
using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Tests.Quantization.Formats;

public class Int4GroupedWeightTests
{
    [Fact]
    public void Layout_puts_element_k_where_the_doc_says()
    {
        // Chunk c of 32 elements is 16 bytes: element 32c + j in the low nibble of byte 16c + j,
        // element 32c + 16 + j in its high nibble.
        Assert.Equal((0, 0), Int4GroupedWeight.Locate(0));
        Assert.Equal((15, 0), Int4GroupedWeight.Locate(15));
        Assert.Equal((0, 4), Int4GroupedWeight.Locate(16));
        Assert.Equal((15, 4), Int4GroupedWeight.Locate(31));
        Assert.Equal((16, 0), Int4GroupedWeight.Locate(32));
        Assert.Equal((16 + 5, 4), Int4GroupedWeight.Locate(32 + 16 + 5));

        // A row 0..31 of values on the grid, G = 32: q[k] ends up as the byte formula says.
        using var dense = Tensor.Allocate(DType.F32, 1, 32);
        for (int k = 0; k < 32; k++)
            dense.AsSpan<float>()[k] = k % 16; // min 0, max 15: scale 1, zero 8, q = value
        using var w = Int4GroupedWeight.Quantize(dense, 32);
        Span<byte> bytes = w.Packed.AsSpan<byte>();
        for (int j = 0; j < 16; j++)
            Assert.Equal((byte)(j | (j << 4)), bytes[j]);
        Assert.Equal(1f, DTypeConversion.BFloat16ToSingle(w.Scales.AsSpan<ushort>()[0]));
        Assert.Equal(8f, DTypeConversion.BFloat16ToSingle(w.Zeros.AsSpan<ushort>()[0]));
    }

    [Theory]
    [InlineData("F32", 32)]
    [InlineData("BF16", 64)]
    [InlineData("F16", 128)]
    public void Quantize_follows_the_affine_primitives_group_by_group(string dtypeName, int g)
    {
        DType dtype = Enum.Parse<DType>(dtypeName);
        int k = 3 * g;
        using Tensor dense = QuantTestData.Gaussian(dtype, 5, k, new Random(2), out float[] exact);
        using var w = Int4GroupedWeight.Quantize(dense, g);
        Assert.Equal($"int4wo-{g}", w.FormatName);
        Assert.Equal((5L * k / 2) + (2 * 5 * 3 * 2), w.ByteLength);
        var scheme = AffineScheme.UInt4Tinygemm;
        var q = new int[g];
        var row = new float[k];
        for (int r = 0; r < 5; r++)
        {
            w.Dequantize(r, row);
            for (int group = 0; group < 3; group++)
            {
                var source = exact.AsSpan((r * k) + (group * g), g);
                QParams p = Affine.ChooseQParams(source, scheme, dtype);
                Affine.Quantize(source, p, scheme, dtype, q);
                for (int i = 0; i < g; i++)
                {
                    int col = (group * g) + i;
                    Assert.Equal(q[i], w.Quantized(r, col));
                    Assert.Equal(Affine.Dequantize(q[i], p, scheme), row[col]);
                    // Half a scale, plus what rounding scale and zero to bf16 can shift the grid by.
                    float bound = (p.Scale / 2) + (Math.Abs(p.ZeroPoint) / 256) + (16 * p.Scale / 256);
                    Assert.True(Math.Abs(source[i] - row[col]) <= bound, $"row {r} col {col}: {source[i]} vs {row[col]}");
                }
            }
        }
    }

    /// <summary>torchao's int4 weight-only floor: layer-output SQNR over 18 dB at group 64.</summary>
    [Fact]
    public void Sqnr_of_the_layer_output_is_above_18_dB_at_group_64()
    {
        double sqnr = QuantTestData.LayerSqnr(new Random(6), dense => Int4GroupedWeight.Quantize(dense, 64));
        Assert.True(sqnr > 18, $"SQNR {sqnr:F1} dB");
    }

    [Fact]
    public void Incompatible_shapes_are_refused_with_the_reason()
    {
        Assert.Equal("K=172 not a multiple of 64", Int4GroupedWeight.Incompatibility(172, 64));
        Assert.Equal("group size 48 is not a multiple of 32", Int4GroupedWeight.Incompatibility(96, 48));
        Assert.Null(Int4GroupedWeight.Incompatibility(192, 64));
        using var dense = Tensor.Allocate(DType.F32, 2, 172);
        var e = Assert.Throws<ArgumentException>(() => Int4GroupedWeight.Quantize(dense, 64));
        Assert.Contains("K=172", e.Message);
    }
}
