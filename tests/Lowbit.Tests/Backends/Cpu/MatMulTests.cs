using Lowbit.Backends.Cpu;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cpu;

public class MatMulTests
{
    private static readonly int[] Ks = [1, 3, 17, 63, 65, 129, 1000];
    private static readonly int[] Ns = [1, 7, 33, 250];
    private static readonly int[] Ms = [1, 2, 5, 9, 17];

    public static TheoryData<string, string> LevelsAndDTypes()
    {
        var data = new TheoryData<string, string>();
        foreach (string level in Enum.GetNames<SimdLevel>())
        {
            foreach (string dtype in new[] { "F32", "BF16", "F16" })
                data.Add(level, dtype);
        }

        return data;
    }

    /// <summary>Every (K, N, m) against Σ_k x·w in double. Tolerance: f32 FMA accumulation over K terms in
    /// several partial sums has a typical error of a few ulp·sqrt(K) of the sum of |x·w| (worst case K ulp);
    /// 1e-6·sqrt(K)·Σ|x·w| is ~16 ulp·sqrt(K). A dropped or doubled term costs ~Σ|x·w|/K, which is 30× over
    /// the tolerance at K = 1000 and far more at small K, so an indexing bug fails.</summary>
    [Theory]
    [MemberData(nameof(LevelsAndDTypes))]
    public void MatchesFloat64Reference(string levelName, string dtypeName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        DType dtype = Enum.Parse<DType>(dtypeName);
        var rng = new Random(1234);
        foreach (int k in Ks)
        {
            foreach (int n in Ns)
            {
                using Tensor w = CpuTestData.Weights(dtype, n, k, rng, out double[] exact);
                foreach (int m in Ms)
                {
                    float[] x = CpuTestData.Floats(rng, m * k);
                    var y = new float[m * n];
                    MatMul.Compute(level, CpuTestData.Pool3, x, m, w, y);
                    for (int t = 0; t < m; t++)
                    {
                        for (int r = 0; r < n; r++)
                        {
                            double sum = 0, sumAbs = 0;
                            for (int i = 0; i < k; i++)
                            {
                                double p = x[(t * k) + i] * exact[(r * k) + i];
                                sum += p;
                                sumAbs += Math.Abs(p);
                            }

                            double error = Math.Abs(y[(t * n) + r] - sum);
                            double tolerance = 1e-6 * Math.Sqrt(k) * sumAbs;
                            Assert.True(error <= tolerance, $"{dtype} {level} K={k} N={n} m={m}: y[{t},{r}] = {y[(t * n) + r]}, reference {sum}, error {error:E2} > {tolerance:E2}");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void PublicEntryUsesTheSharedPool()
    {
        var rng = new Random(7);
        using Tensor w = CpuTestData.Weights(DType.BF16, 37, 50, rng, out double[] exact);
        float[] x = CpuTestData.Floats(rng, 2 * 50);
        var y = new float[2 * 37];
        MatMul.Compute(x, 2, w, y);
        double reference = 0;
        for (int i = 0; i < 50; i++)
            reference += x[50 + i] * exact[(36 * 50) + i];
        Assert.Equal(reference, y[(1 * 37) + 36], 1e-4);
    }

    [Fact]
    public void ZeroKGivesZeros()
    {
        using Tensor w = Tensor.Allocate(DType.F32, 3, 0);
        float[] y = [1, 2, 3];
        MatMul.Compute([], 1, w, y);
        Assert.Equal([0f, 0f, 0f], y);
    }

    [Fact]
    public void RejectsWrongSizes()
    {
        using Tensor w = Tensor.Allocate(DType.BF16, 4, 8);
        using Tensor rank3 = Tensor.Allocate(DType.BF16, 2, 4, 8);
        using Tensor int8 = Tensor.Allocate(DType.I8, 4, 8);
        Assert.Throws<ArgumentException>(() => MatMul.Compute(new float[7], 1, w, new float[4]));
        Assert.Throws<ArgumentException>(() => MatMul.Compute(new float[16], 1, w, new float[4]));
        Assert.Throws<ArgumentException>(() => MatMul.Compute(new float[16], 2, w, new float[4]));
        Assert.Throws<ArgumentException>(() => MatMul.Compute(new float[8], 1, w, new float[5]));
        Assert.Throws<ArgumentException>(() => MatMul.Compute(new float[8], 1, rank3, new float[8]));
        Assert.ThrowsAny<ArgumentException>(() => MatMul.Compute(new float[8], -1, w, new float[4]));
        Assert.Throws<NotSupportedException>(() => MatMul.Compute(new float[8], 1, int8, new float[4]));
    }
}
