using System.Runtime.InteropServices;
using Lowbit.Backends.Cpu;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cpu;

public class AttentionTests
{
    /// <summary>Causal GQA over a cache against a float64 reference. Tolerance: scores are f32 dots over D
    /// terms (≤ ~1e-6 absolute for |q|,|k| ≤ 1, D ≤ 64), which move the softmax weights by about that
    /// relatively; the output is a weighted mean of |v| ≤ 1, so 1e-5 absolute is ~10× the expected error,
    /// while a wrong kv head, position or scale changes outputs by ~0.1. A BF16 cache is read widened: the
    /// reference takes the same bf16 values, so the bound is the same.</summary>
    [Theory]
    [InlineData("Scalar", DType.F32)]
    [InlineData("Avx2", DType.F32)]
    [InlineData("Avx512", DType.F32)]
    [InlineData("Scalar", DType.BF16)]
    [InlineData("Avx2", DType.BF16)]
    [InlineData("Avx512", DType.BF16)]
    public void MatchesFloat64Reference(string levelName, DType cacheType)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var rng = new Random(41);
        foreach ((int heads, int kvHeads) in new[] { (2, 2), (3, 1), (4, 2) })
        {
            foreach (int d in new[] { 1, 17, 64 })
            {
                foreach (int m in new[] { 1, 2, 5, 9 })
                {
                    foreach (int startPos in new[] { 0, 6 })
                    {
                        foreach (bool fullScratch in new[] { true, false })
                            Check(level, cacheType, rng, heads, kvHeads, d, m, startPos, fullScratch);
                    }
                }
            }
        }
    }

    private static void Check(SimdLevel level, DType cacheType, Random rng, int heads, int kvHeads, int d, int m, int startPos, bool fullScratch)
    {
        int maxSeq = startPos + m + 3, kvDim = kvHeads * d;
        float[] q = CpuTestData.Floats(rng, m * heads * d);
        float[] k = CpuTestData.Floats(rng, maxSeq * kvDim);
        float[] v = CpuTestData.Floats(rng, maxSeq * kvDim);
        var output = new float[m * heads * d];
        var scratch = new float[fullScratch ? Attention.ScratchLength(CpuTestData.Pool3.ThreadCount, maxSeq) : maxSeq];
        if (cacheType == DType.F32)
        {
            Attention.Compute(level, CpuTestData.Pool3, q, k, v, m, heads, kvHeads, d, startPos, scratch, output);
        }
        else
        {
            ushort[] kBits = Bf16(k), vBits = Bf16(v);
            Attention.Compute(level, CpuTestData.Pool3, q, MemoryMarshal.AsBytes(kBits.AsSpan()), MemoryMarshal.AsBytes(vBits.AsSpan()), DType.BF16,
                m, heads, kvHeads, d, startPos, scratch, output);
        }

        var scores = new double[maxSeq];
        for (int j = 0; j < m; j++)
        {
            for (int h = 0; h < heads; h++)
            {
                int g = h / (heads / kvHeads), length = startPos + j + 1;
                double max = double.NegativeInfinity, sum = 0;
                for (int t = 0; t < length; t++)
                {
                    double s = 0;
                    for (int i = 0; i < d; i++)
                        s += (double)q[(((j * heads) + h) * d) + i] * k[(t * kvDim) + (g * d) + i];
                    scores[t] = s / Math.Sqrt(d);
                    max = Math.Max(max, scores[t]);
                }

                for (int t = 0; t < length; t++)
                {
                    scores[t] = Math.Exp(scores[t] - max);
                    sum += scores[t];
                }

                for (int i = 0; i < d; i++)
                {
                    double expected = 0;
                    for (int t = 0; t < length; t++)
                        expected += scores[t] / sum * v[(t * kvDim) + (g * d) + i];
                    float actual = output[(((j * heads) + h) * d) + i];
                    Assert.True(Math.Abs(actual - expected) <= 1e-5, $"{level} heads={heads}/{kvHeads} D={d} m={m} start={startPos} token {j} head {h} [{i}]: {actual} vs {expected}");
                }
            }
        }
    }

    /// <summary>Rounds <paramref name="values"/> to bf16 in place (the reference then reads what the cache holds) and
    /// returns their bits.</summary>
    private static ushort[] Bf16(float[] values)
    {
        var bits = new ushort[values.Length];
        DTypeConversion.FromSingle(values, DType.BF16, bits);
        for (int i = 0; i < values.Length; i++)
            values[i] = DTypeConversion.BFloat16ToSingle(bits[i]);
        return bits;
    }

    [Fact]
    public void PublicEntryAttendsToTheOnlyPosition()
    {
        float[] value = [0.25f, -2f];
        var output = new float[2];
        Attention.Compute([1f, 1f], [3f, 4f], value, 1, 1, 1, 2, 0, new float[Attention.ScratchLength(CpuThreadPool.Shared.ThreadCount, 1)], output);
        Assert.Equal(value, output);
    }

    [Fact]
    public void RejectsWrongSizes()
    {
        float[] cache = new float[4 * 8]; // maxSeq 4, kvDim 8 (2 kv heads of 4)
        Assert.Throws<ArgumentException>(() => Attention.Compute(new float[12], cache, cache, 1, 3, 2, 4, 0, new float[4], new float[12]));
        Assert.Throws<ArgumentException>(() => Attention.Compute(new float[15], cache, cache, 1, 4, 2, 4, 0, new float[4], new float[16]));
        Assert.Throws<ArgumentException>(() => Attention.Compute(new float[16], cache, cache, 1, 4, 2, 4, 0, new float[4], new float[15]));
        Assert.Throws<ArgumentException>(() => Attention.Compute(new float[16], cache, new float[30], 1, 4, 2, 4, 0, new float[4], new float[16]));
        Assert.Throws<ArgumentException>(() => Attention.Compute(new float[32], cache, cache, 2, 4, 2, 4, 3, new float[4], new float[32]));
        Assert.Throws<ArgumentException>(() => Attention.Compute(new float[16], cache, cache, 1, 4, 2, 4, 0, new float[3], new float[16]));
        Assert.ThrowsAny<ArgumentException>(() => Attention.ScratchLength(0, 4));
    }
}
