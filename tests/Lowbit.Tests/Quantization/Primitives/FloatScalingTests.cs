using Lowbit.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>FloatScaling per-tensor and per-row (one row, odd K, rows not a multiple of 8) for FP8 and FP6:
/// scale = max(amax, 1e−12)/max, codes = Encode(x/scale) exactly, and the round-trip error within half a
/// code step.</summary>
public class FloatScalingTests
{
    public static TheoryData<string, int, int> Cases => new()
    {
        { "e4m3", 1, 1 }, { "e4m3", 1, 64 }, { "e4m3", 3, 37 }, { "e4m3", 11, 96 },
        { "e5m2", 5, 33 }, { "fp6e3m2", 7, 65 }, { "fp4e2m1", 9, 16 },
    };

    private static FloatX Format(string name) => name switch
    {
        "e4m3" => Float8E4M3.Format,
        "e5m2" => Float8E5M2.Format,
        "fp6e3m2" => FloatX.Fp6E3M2,
        _ => FloatX.Fp4E2M1,
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void PerRowQuantizeMatchesDefinitionAndBoundsError(string name, int rows, int k)
    {
        FloatX format = Format(name);
        var rng = new Random(rows * k);
        var x = new float[rows * k];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(10, (i / k % 3) - 1)); // rows of different magnitude
        var codes = new byte[x.Length];
        var scales = new float[rows];
        FloatScaling.Quantize(format, x, k, codes, scales);
        var y = new float[x.Length];
        FloatScaling.Dequantize(format, codes, scales, k, y);

        // Relative spacing of the format is 2^−M within a binade; below the normal range the step is the
        // smallest subnormal. Both scaled back by the row's scale.
        double halfRelativeStep = Math.Pow(2, -format.MantissaBits - 1);
        double halfSubnormal = Math.Pow(2, 1 - format.Bias - format.MantissaBits) / 2;
        for (int r = 0; r < rows; r++)
        {
            float amax = 0;
            for (int i = 0; i < k; i++)
                amax = Math.Max(amax, Math.Abs(x[(r * k) + i]));
            Assert.Equal(Math.Max(amax, 1e-12f) / format.MaxFinite, scales[r]);
            for (int i = 0; i < k; i++)
            {
                int j = (r * k) + i;
                Assert.Equal(format.Encode(x[j] / scales[r]), codes[j]);
                Assert.Equal(format.Decode(codes[j]) * scales[r], y[j]);
                double bound = (halfRelativeStep * Math.Abs(x[j])) + (halfSubnormal * scales[r]);
                Assert.True(Math.Abs(x[j] - y[j]) <= bound + (1e-6 * Math.Abs(x[j])), $"{format} [{r},{i}]: {x[j]} → {y[j]}");
            }
        }
    }

    [Fact]
    public void PerTensorIsOneBlockAndTheAmaxElementIsExact()
    {
        float[] x = [0.5f, -3f, 1.25f, 2f, -0.1f];
        var codes = new byte[5];
        var scale = new float[1];
        FloatScaling.Quantize(Float8E4M3.Format, x, x.Length, codes, scale);
        Assert.Equal(3f / 448f, scale[0]);
        Assert.Equal(0xFE, codes[1]); // −amax maps to −448
        Assert.Equal(3f / 448f, FloatScaling.ChooseScale(Float8E4M3.Format, x));
    }

    [Fact]
    public void ZeroBlockGetsTheFlooredScaleAndZeroCodes()
    {
        var codes = new byte[4];
        var scales = new float[2];
        FloatScaling.Quantize(Float8E4M3.Format, [0f, 0f, 1f, -1f], 2, codes, scales);
        Assert.Equal(1e-12f / 448f, scales[0]);
        Assert.Equal([0, 0, 0x7E, 0xFE], codes);
    }

    [Fact]
    public void ShapesAreChecked()
    {
        FloatX f = Float8E4M3.Format;
        var x = new float[6];
        Assert.Throws<ArgumentException>(() => FloatScaling.Quantize(f, x, 4, new byte[6], new float[1]));
        Assert.Throws<ArgumentException>(() => FloatScaling.Quantize(f, x, 3, new byte[5], new float[2]));
        Assert.Throws<ArgumentException>(() => FloatScaling.Quantize(f, x, 3, new byte[6], new float[3]));
        Assert.Throws<ArgumentException>(() => FloatScaling.Quantize(f, x, 0, new byte[6], new float[0]));
        var e = Assert.Throws<ArgumentException>(() => FloatScaling.Dequantize(f, new byte[6], new float[1], 3, x));
        Assert.Contains("2 scales", e.Message);
    }
}
