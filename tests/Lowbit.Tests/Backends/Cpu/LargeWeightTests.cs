using Lowbit.Backends.Cpu;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cpu;

/// <summary>Rows that start past 2^31 bytes: an int byte offset would wrap negative. One 2 GiB weight, so
/// this runs alone (in the non-parallel collection) and skips where memory is short.</summary>
[Collection(nameof(AllocationCollection))]
public class LargeWeightTests
{
    [Fact]
    public void RowsPastTwoGigabytesAreAddressedWithNativeOffsets()
    {
        const int n = 65540, k = 16384; // 2^31 + 6·32 KiB bytes of bf16
        if (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes < (8L << 30))
            Assert.Skip("Needs 8 GiB of memory for a 2 GiB weight.");
        using Tensor w = Tensor.Allocate(DType.BF16, n, k);
        Assert.True(w.ByteLength > (1L << 31));

        var rng = new Random(51);
        float[] x = CpuTestData.Floats(rng, k);
        var expected = new double[n];
        for (int r = n - 9; r < n; r++) // the last 9 rows hold data, the rest are zeros
        {
            for (int i = 0; i < k; i++)
            {
                ushort bits = (ushort)(BitConverter.SingleToUInt32Bits(rng.NextSingle() - 0.5f) >> 16);
                w.ElementRef<ushort>(((long)r * k) + i) = bits;
                expected[r] += x[i] * (double)BitConverter.UInt32BitsToSingle((uint)bits << 16);
            }
        }

        var y = new float[n];
        MatMul.Compute(CpuCapabilities.Best, CpuTestData.Pool3, x, 1, w, y);
        for (int r = n - 9; r < n; r++)
            Assert.True(Math.Abs(y[r] - expected[r]) <= 1e-3, $"row {r}: {y[r]} vs {expected[r]}"); // |Σ| ≲ 40, f32 over 16384 terms
        Assert.Equal(0f, y[n - 10]);

        var row = new float[k];
        Embedding.Lookup(w, n - 1, row);
        Assert.Equal(BitConverter.UInt32BitsToSingle((uint)w.ElementRef<ushort>(((long)(n - 1) * k) + 5) << 16), row[5]);
    }
}
