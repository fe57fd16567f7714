using Lowbit.Backends.Cpu;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cpu;

public class EmbeddingTests
{
    /// <summary>Widening is exact, so the row must equal the exact values bit for bit.</summary>
    [Theory]
    [MemberData(nameof(MatMulTests.LevelsAndDTypes), MemberType = typeof(MatMulTests))]
    public void LooksUpTheExactRow(string levelName, string dtypeName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        DType dtype = Enum.Parse<DType>(dtypeName);
        var rng = new Random(31);
        foreach (int dim in CpuTestData.ElementwiseLengths)
        {
            using Tensor table = CpuTestData.Weights(dtype, 5, dim, rng, out double[] exact);
            foreach (int token in new[] { 0, 3, 4 })
            {
                var row = new float[dim];
                Embedding.Lookup(level, table, token, row);
                for (int i = 0; i < dim; i++)
                    Assert.True(row[i] == (float)exact[(token * dim) + i], $"{dtype} {level} dim={dim} token {token} [{i}]");
            }
        }
    }

    [Fact]
    public void RejectsBadArguments()
    {
        using Tensor table = Tensor.Allocate(DType.BF16, 4, 8);
        using Tensor int8 = Tensor.Allocate(DType.I8, 4, 8);
        using Tensor rank1 = Tensor.Allocate(DType.F32, 8);
        Assert.Throws<ArgumentException>(() => Embedding.Lookup(table, 0, new float[7]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Lookup(table, 4, new float[8]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Embedding.Lookup(table, -1, new float[8]));
        Assert.Throws<ArgumentException>(() => Embedding.Lookup(rank1, 0, new float[8]));
        Assert.Throws<NotSupportedException>(() => Embedding.Lookup(int8, 0, new float[8]));
    }
}
