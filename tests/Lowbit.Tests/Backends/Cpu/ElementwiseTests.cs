using Lowbit.Backends.Cpu;

namespace Lowbit.Tests.Backends.Cpu;

/// <summary>RmsNorm, SiluMul, Softmax and Residual.Add against float64 references at every length from 1 to
/// 33 (all tails of 8- and 16-wide vectors) and 1000, at every SIMD level this CPU has.</summary>
public class ElementwiseTests
{
    private const double F32Epsilon = 5.96e-8; // 2^-24, the unit roundoff of f32

    /// <summary>Tolerance: the mean of squares is an f32 sum of n terms (a few ulp·sqrt(n) relative), then a
    /// sqrt, a divide and two multiplies (≤ 1 ulp each): 8 ulp·(1 + sqrt(n)) of |y|.</summary>
    [Theory]
    [InlineData("Scalar")]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void RmsNormMatchesFloat64Reference(string levelName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var rng = new Random(11);
        const float eps = 1e-5f;
        foreach (int n in CpuTestData.ElementwiseLengths)
        {
            foreach (int m in new[] { 1, 2, 5 })
            {
                float[] x = CpuTestData.Floats(rng, m * n, -3f, 3f);
                float[] w = CpuTestData.Floats(rng, n, 0.5f, 1.5f);
                var y = new float[m * n];
                RmsNorm.Apply(level, x, w, m, n, eps, y);
                for (int r = 0; r < m; r++)
                {
                    double meanSquare = 0;
                    for (int i = 0; i < n; i++)
                        meanSquare += (double)x[(r * n) + i] * x[(r * n) + i];
                    double scale = 1 / Math.Sqrt((meanSquare / n) + eps);
                    for (int i = 0; i < n; i++)
                    {
                        double expected = x[(r * n) + i] * scale * w[i];
                        double tolerance = 8 * F32Epsilon * (1 + Math.Sqrt(n)) * Math.Abs(expected);
                        Assert.True(Math.Abs(y[(r * n) + i] - expected) <= tolerance, $"{level} n={n} m={m} [{r},{i}]: {y[(r * n) + i]} vs {expected}");
                    }
                }

                RmsNorm.Apply(level, x, w, m, n, eps, x); // in place gives the same bits
                Assert.Equal(y, x);
            }
        }
    }

    /// <summary>Tolerance: relative 1e-6 (the vector exp is within ~2 ulp; 1 + e^-g, the divide and the
    /// multiply add ~3 ulp), plus 1e-37 absolute for results that underflow (g = −100 gives −0 in f32).</summary>
    [Theory]
    [InlineData("Scalar")]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void SiluMulMatchesFloat64Reference(string levelName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var rng = new Random(12);
        foreach (int n in CpuTestData.ElementwiseLengths)
        {
            float[] gate = CpuTestData.Floats(rng, n, -20f, 20f);
            float[] special = [0f, -0f, 100f, -100f, 88f, -88f, 1e-30f];
            if (n >= 2 * special.Length)
            {
                special.CopyTo(gate, 0); // in the vector body
                special.CopyTo(gate, n - special.Length); // partly in the scalar tail
            }
            float[] up = CpuTestData.Floats(rng, n, -2f, 2f);
            float[] original = (float[])gate.Clone();
            SiluMul.Apply(level, up, gate);
            for (int i = 0; i < n; i++)
            {
                double g = original[i];
                double expected = g / (1 + Math.Exp(-g)) * up[i];
                Assert.True(Math.Abs(gate[i] - expected) <= (1e-6 * Math.Abs(expected)) + 1e-37, $"{level} n={n} [{i}]: silu({g})·{up[i]} = {gate[i]}, expected {expected}");
            }
        }
    }

    /// <summary>Tolerance, relative: each output is e^(x−max)/Σ. x − max is rounded to f32 (half an ulp of
    /// |x − max|, which e^ turns into a relative error of |x − max|·2^-24), then an exp (~2 ulp), an f32 sum
    /// of n terms and a multiply by the reciprocal: 1e-6 + 4 ulp·sqrt(n) + 2 ulp·|x − max|.</summary>
    [Theory]
    [InlineData("Scalar")]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void SoftmaxMatchesFloat64Reference(string levelName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var rng = new Random(13);
        foreach (int n in CpuTestData.ElementwiseLengths)
        {
            foreach (float range in new[] { 30f, 1e4f })
            {
                float[] x = CpuTestData.Floats(rng, n, -range, range);
                x[rng.Next(n)] = range; // the max may sit in the scalar tail
                float[] original = (float[])x.Clone();
                Softmax.Apply(level, x);
                double max = original.Max(), sum = 0;
                foreach (float v in original)
                    sum += Math.Exp(v - max);
                for (int i = 0; i < n; i++)
                {
                    double expected = Math.Exp(original[i] - max) / sum;
                    double relative = 1e-6 + (4 * F32Epsilon * Math.Sqrt(n)) + (2 * F32Epsilon * (max - original[i]));
                    double tolerance = (relative * expected) + 1e-38;
                    Assert.True(Math.Abs(x[i] - expected) <= tolerance, $"{level} n={n} range={range} [{i}]: {x[i]} vs {expected}");
                }
            }
        }
    }

    /// <summary>One f32 add is correctly rounded, and so is the double sum rounded to float: exact.</summary>
    [Theory]
    [InlineData("Scalar")]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void ResidualAddIsExact(string levelName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var rng = new Random(14);
        foreach (int n in CpuTestData.ElementwiseLengths)
        {
            float[] x = CpuTestData.Floats(rng, n);
            float[] y = CpuTestData.Floats(rng, n);
            float[] expected = new float[n];
            for (int i = 0; i < n; i++)
                expected[i] = (float)((double)x[i] + y[i]);
            Residual.Add(level, x, y);
            Assert.Equal(expected, y);
        }
    }

    [Fact]
    public void PublicEntriesWork()
    {
        float[] x = [3f, 4f];
        float[] y = new float[2];
        RmsNorm.Apply(x, [1f, 2f], 1, 2, 0f, y);
        Assert.Equal(3 / Math.Sqrt(12.5), y[0], 1e-6);
        float[] gate = [1f];
        SiluMul.Apply([2f], gate);
        Assert.Equal(2 / (1 + Math.Exp(-1)), gate[0], 1e-6);
        float[] scores = [0f, 0f];
        Softmax.Apply(scores);
        Assert.Equal([0.5f, 0.5f], scores);
        Residual.Add([1f], gate);
        Assert.Equal(1 + (2 / (1 + Math.Exp(-1))), gate[0], 1e-6);
    }

    [Fact]
    public void RejectsWrongSizes()
    {
        Assert.Throws<ArgumentException>(() => RmsNorm.Apply(new float[6], new float[3], 2, 3, 1e-5f, new float[5]));
        Assert.Throws<ArgumentException>(() => RmsNorm.Apply(new float[5], new float[3], 2, 3, 1e-5f, new float[6]));
        Assert.Throws<ArgumentException>(() => RmsNorm.Apply(new float[6], new float[2], 2, 3, 1e-5f, new float[6]));
        Assert.Throws<ArgumentException>(() => SiluMul.Apply(new float[3], new float[4]));
        Assert.Throws<ArgumentException>(() => Residual.Add(new float[3], new float[4]));
    }
}
