using Lowbit.Backends.Cpu;

namespace Lowbit.Tests.Backends.Cpu;

public class RopeTests
{
    /// <summary>Every half width 1..33 (all vector tails), m tokens from startPos, against the rotate-half
    /// formula in double. Tolerance: each output is a·c ± b·s in f32 (two roundings and a fused or plain
    /// add), so a few ulp of |a| + |b| (|c|, |s| ≤ 1); 4 ulp is used.</summary>
    [Theory]
    [InlineData("Scalar")]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void MatchesRotateHalfReference(string levelName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var rng = new Random(21);
        const int maxPos = 20;
        for (int half = 1; half <= 33; half++)
        {
            int d = 2 * half;
            var cos = new float[maxPos * half];
            var sin = new float[maxPos * half];
            for (int p = 0; p < maxPos; p++)
            {
                for (int i = 0; i < half; i++)
                {
                    double angle = p * Math.Pow(10000, -2.0 * i / d);
                    cos[(p * half) + i] = (float)Math.Cos(angle);
                    sin[(p * half) + i] = (float)Math.Sin(angle);
                }
            }

            foreach ((int m, int heads, int startPos) in new[] { (1, 1, 0), (2, 3, 7), (5, 2, 15) })
            {
                float[] x = CpuTestData.Floats(rng, m * heads * d);
                float[] original = (float[])x.Clone();
                Rope.Apply(level, x, m, heads, d, cos, sin, startPos);
                for (int j = 0; j < m; j++)
                {
                    for (int h = 0; h < heads; h++)
                    {
                        int o = ((j * heads) + h) * d, t = (startPos + j) * half;
                        for (int i = 0; i < half; i++)
                        {
                            double a = original[o + i], b = original[o + half + i], c = cos[t + i], s = sin[t + i];
                            double tolerance = (4 * 5.96e-8 * (Math.Abs(a) + Math.Abs(b))) + 1e-30; // |c|, |s| ≤ 1
                            Assert.True(Math.Abs(x[o + i] - ((a * c) - (b * s))) <= tolerance, $"{level} D={d} m={m} token {j} head {h} [{i}]");
                            Assert.True(Math.Abs(x[o + half + i] - ((b * c) + (a * s))) <= tolerance, $"{level} D={d} m={m} token {j} head {h} [{half + i}]");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void PublicEntryRotatesByTheTable()
    {
        float[] x = [1f, 0f];
        Rope.Apply(x, 1, 1, 2, [1f, 0f], [0f, 1f], 1); // position 1: a quarter turn
        Assert.Equal([0f, 1f], x);
    }

    [Fact]
    public void RejectsWrongSizes()
    {
        float[] table = new float[4 * 2];
        Assert.Throws<ArgumentException>(() => Rope.Apply(new float[8], 1, 2, 3, table, table, 0));
        Assert.Throws<ArgumentException>(() => Rope.Apply(new float[7], 1, 2, 4, table, table, 0));
        Assert.Throws<ArgumentException>(() => Rope.Apply(new float[8], 1, 2, 4, table, table, 4));
        Assert.Throws<ArgumentException>(() => Rope.Apply(new float[8], 1, 2, 4, table, new float[6], 0));
    }
}
