using Lowbit.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>Nf4 against a brute-force nearest level (first minimum of the float32 distances, as torch's min),
/// on random values and around every midpoint; blockwise round trips; double quantization of the scales.</summary>
public class Nf4Tests
{
    // torchao NF4Tensor.from_tensor's levels, typed in again from torchao/dtypes/nf4tensor.py.
    private static readonly float[] TorchaoLevels =
    [
        -1.0000f, -0.6962f, -0.5251f, -0.3949f, -0.2844f, -0.1848f, -0.0911f, 0.0000f,
        0.0796f, 0.1609f, 0.2461f, 0.3379f, 0.4407f, 0.5626f, 0.7230f, 1.0000f,
    ];

    private static int BruteForceNearest(float v)
    {
        int best = 0;
        for (int k = 1; k < 16; k++)
        {
            if (MathF.Abs(v - TorchaoLevels[k]) < MathF.Abs(v - TorchaoLevels[best]))
                best = k;
        }

        return best;
    }

    private static float[] Gaussian(Random rng, int n, float sigma)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = sigma * (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return x;
    }

    [Fact]
    public void TableIsTorchaos()
    {
        Assert.Equal(TorchaoLevels, Nf4.Table.ToArray());
        Assert.Equal(0f, Nf4.Table[Nf4.Zero]);
        float maxGap = 0;
        for (int k = 0; k < 15; k++)
            maxGap = Math.Max(maxGap, Nf4.Table[k + 1] - Nf4.Table[k]);
        Assert.Equal(maxGap, Nf4.MaxGap);
    }

    [Fact]
    public void NearestMatchesBruteForceAtMidpointsAndRandomly()
    {
        for (int k = 0; k < 15; k++)
        {
            float mid = (TorchaoLevels[k] + TorchaoLevels[k + 1]) / 2;
            for (float v = MathF.BitDecrement(MathF.BitDecrement(mid)), step = 0; step < 5; step++, v = MathF.BitIncrement(v))
                Assert.True(Nf4.Nearest(v) == BruteForceNearest(v), $"v={v:R} near the midpoint of {k} and {k + 1}: {Nf4.Nearest(v)} vs {BruteForceNearest(v)}");
            Assert.Equal(k, Nf4.Nearest(MathF.BitDecrement(mid)));
            Assert.Equal(k + 1, Nf4.Nearest(MathF.BitIncrement(mid)));
        }

        var rng = new Random(1);
        for (int t = 0; t < 100_000; t++)
        {
            float v = (rng.NextSingle() * 2.2f) - 1.1f;
            Assert.Equal(BruteForceNearest(v), Nf4.Nearest(v));
        }
    }

    [Fact]
    public void ExactTiesGoToTheLowerCode()
    {
        // 0.0398f: |0.0398 − 0| and |0.0796 − 0.0398| are the same float32 (0.0398 is exactly half of 0.0796f).
        float half = TorchaoLevels[8] / 2;
        Assert.Equal(MathF.Abs(half - TorchaoLevels[7]), MathF.Abs(half - TorchaoLevels[8]));
        Assert.Equal(7, Nf4.Nearest(half));
        Assert.Equal(0, Nf4.Nearest(-1.5f));
        Assert.Equal(15, Nf4.Nearest(1.5f));
    }

    [Fact]
    public void PacksElement2kInTheHighNibble()
    {
        var packed = new byte[2];
        var scales = new float[1];
        Nf4.Quantize([2f, -2f, 0f, 0.7230f * 2], 4, packed, scales);
        Assert.Equal(2f, scales[0]);
        Assert.Equal([0xF0, 0x7E], packed);
    }

    [Theory]
    [InlineData(1, 64)]
    [InlineData(3, 64)]
    [InlineData(5, 32)]
    [InlineData(7, 2)]
    public void RepresentableValuesRoundTripExactly(int blocks, int blockSize)
    {
        var rng = new Random(blocks);
        var x = new float[blocks * blockSize];
        var codes = new int[x.Length];
        for (int b = 0; b < blocks; b++)
        {
            float absmax = (float)Math.Pow(10, rng.Next(-3, 3)) * (1 + rng.NextSingle());
            for (int i = 0; i < blockSize; i++)
            {
                int j = (b * blockSize) + i;
                codes[j] = i == 0 ? 15 - (15 * (b % 2)) : rng.Next(16); // element 0 is ±absmax, so the scale is absmax
                x[j] = TorchaoLevels[codes[j]] * absmax;
            }
        }

        var packed = new byte[Nf4.PackedLength(x.Length)];
        var scales = new float[blocks];
        Nf4.Quantize(x, blockSize, packed, scales);
        var y = new float[x.Length];
        Nf4.Dequantize(packed, scales, blockSize, y);
        for (int j = 0; j < x.Length; j++)
        {
            int code = (j % 2 == 0) ? packed[j / 2] >> 4 : packed[j / 2] & 0xF;
            Assert.Equal(codes[j], code);
            Assert.Equal(x[j], y[j]);
        }
    }

    [Theory]
    [InlineData(1, 64)]
    [InlineData(9, 64)]
    [InlineData(4, 128)]
    public void RoundTripErrorIsAtMostHalfTheLargestGap(int blocks, int blockSize)
    {
        float[] x = Gaussian(new Random(blocks), blocks * blockSize, 0.02f);
        var packed = new byte[x.Length / 2];
        var scales = new float[blocks];
        Nf4.Quantize(x, blockSize, packed, scales);
        var y = new float[x.Length];
        Nf4.Dequantize(packed, scales, blockSize, y);
        for (int j = 0; j < x.Length; j++)
        {
            float scale = scales[j / blockSize];
            Assert.True(Math.Abs(x[j] - y[j]) <= (Nf4.MaxGap / 2 * scale * (1 + 1e-6)), $"[{j}] {x[j]} → {y[j]}, scale {scale}");
            Assert.Equal(BruteForceNearest(x[j] / scale), (j % 2 == 0) ? packed[j / 2] >> 4 : packed[j / 2] & 0xF);
        }
    }

    [Fact]
    public void ZeroBlockAndNonFiniteValues()
    {
        var packed = new byte[4];
        var scales = new float[2];
        Nf4.Quantize([0f, 0f, -0f, 0f, 1f, 0f, 0f, -1f], 4, packed, scales);
        Assert.Equal([0f, 1f], scales);
        Assert.Equal([0x77, 0x77, 0xF7, 0x70], packed);
        var e = Assert.Throws<ArgumentException>(() => Nf4.Quantize([0f, 0f, 1f, float.NaN], 2, packed[..2], scales));
        Assert.Contains("block 1 (elements 2..3)", e.Message);
        Assert.Throws<ArgumentException>(() => Nf4.Quantize([float.PositiveInfinity, 0f], 2, packed[..1], scales[..1]));
    }

    [Fact]
    public void ShapesAreChecked()
    {
        var x = new float[8];
        Assert.Throws<ArgumentException>(() => Nf4.Quantize(x, 3, new byte[4], new float[2]));
        Assert.Throws<ArgumentException>(() => Nf4.Quantize(x, 4, new byte[3], new float[2]));
        Assert.Throws<ArgumentException>(() => Nf4.Quantize(x, 4, new byte[4], new float[1]));
        Assert.Throws<ArgumentException>(() => Nf4.Dequantize(new byte[4], new float[2], 4, new float[6]));
        Assert.Throws<ArgumentException>(() => Nf4.QuantizeScales(new float[5], 2, new sbyte[5], new float[2]));
        Assert.Throws<ArgumentException>(() => Nf4.QuantizeScales(new float[5], 0, new sbyte[5], new float[1]));
    }

    [Fact]
    public void DoubleQuantizationHandWorked()
    {
        var q = new sbyte[4];
        var factors = new float[1];
        float mean = Nf4.QuantizeScales([1f, 2f, 3f, 4f], 4, q, factors);
        Assert.Equal(2.5f, mean);
        Assert.Equal(256f / 3f, factors[0]); // 256 / (2·1.5)
        Assert.Equal([-128, -43, 43, 127], q); // +1.5·factor = 128 is clamped to 127, as in torchao
        var s = new float[4];
        Nf4.DequantizeScales(q, factors, mean, 4, s);
        Assert.Equal((-128 / (256f / 3f)) + 2.5f, s[0]);
        Assert.Equal((127 / (256f / 3f)) + 2.5f, s[3]);
    }

    [Theory]
    [InlineData(1, 256)]
    [InlineData(512, 256)]
    [InlineData(700, 256)] // a shorter last group
    [InlineData(37, 8)]
    public void DoubleQuantizedScalesAreWithinAStep(int count, int groupSize)
    {
        var rng = new Random(count);
        var scales = new float[count];
        for (int j = 0; j < count; j++)
            scales[j] = 0.01f + (0.05f * rng.NextSingle());
        var q = new sbyte[count];
        var factors = new float[(count + groupSize - 1) / groupSize];
        float mean = Nf4.QuantizeScales(scales, groupSize, q, factors);
        var back = new float[count];
        Nf4.DequantizeScales(q, factors, mean, groupSize, back);
        for (int j = 0; j < count; j++)
        {
            int g = j / groupSize;
            float absDeviation = 0;
            for (int i = g * groupSize; i < Math.Min(count, (g + 1) * groupSize); i++)
                absDeviation = Math.Max(absDeviation, Math.Abs(scales[i] - mean));
            float halfStep = absDeviation / 256, clamped = absDeviation / 128;
            float bound = q[j] == 127 ? clamped : halfStep;
            Assert.True(Math.Abs(scales[j] - back[j]) <= (bound * 1.001f) + 1e-7f, $"[{j}] {scales[j]} → {back[j]}, q {q[j]}, bound {bound}");
        }

        // A group whose scales all equal the mean decodes exactly.
        var one = new float[1];
        var zeros = new sbyte[3];
        Assert.Equal(0.5f, Nf4.QuantizeScales([0.5f, 0.5f, 0.5f], 4, zeros, one));
        Assert.Equal(1f, one[0]);
        Assert.Equal(new sbyte[3], zeros);
    }
}
