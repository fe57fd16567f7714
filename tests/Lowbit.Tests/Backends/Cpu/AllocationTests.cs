using Lowbit.Backends.Cpu;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cpu;

[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public class AllocationCollection;

/// <summary>Decode must not allocate: GC.GetTotalAllocatedBytes(precise: true) counts every thread,
/// workers included, so any allocation in a call or a handoff moves it. Not parallel with other tests,
/// whose allocations would be counted too. The test runner's own threads may still allocate now and then
/// (reporting results), so each check takes the least of three attempts: an allocation in our code would
/// show in every attempt.</summary>
[Collection(nameof(AllocationCollection))]
public unsafe class AllocationTests
{
    private static void Nothing(void* context, int start, int end)
    {
        Interlocked.Add(ref *(int*)context, end - start);
    }

    [Fact]
    public void ThreadPoolRunAllocatesNothing()
    {
        using var pool = new CpuThreadPool(2);
        int sum = 0;
        pool.Run(&Nothing, &sum, 1000);
        Thread.Sleep(10); // let the worker go to sleep once, so its first monitor wait is behind us
        pool.Run(&Nothing, &sum, 1000);

        long least = long.MaxValue;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int i = 0; i < 10_000; i++)
                pool.Run(&Nothing, &sum, 1000);
            for (int i = 0; i < 3; i++)
            {
                Thread.Sleep(5); // and the sleep-and-wake path
                pool.Run(&Nothing, &sum, 1000);
            }

            least = Math.Min(least, GC.GetTotalAllocatedBytes(precise: true) - before);
        }

        Assert.Equal(0, least);
        Assert.Equal(3 * 10_003 * 1000, sum - 2000);
    }

    /// <summary>Here because it swaps the process-wide pool: no other test runs meanwhile.</summary>
    [Fact]
    public void SharedThreadCountCanBeSet()
    {
        CpuThreadPool before = CpuThreadPool.Shared;
        int threads = before.ThreadCount + 1;
        try
        {
            CpuThreadPool.SetSharedThreadCount(threads);
            Assert.Equal(threads, CpuThreadPool.Shared.ThreadCount);
            Assert.Throws<ObjectDisposedException>(() => before.Run(&Nothing, null, 100)); // not a hang
        }
        finally
        {
            CpuThreadPool.SetSharedThreadCount(Environment.ProcessorCount);
        }

        Assert.Equal(Environment.ProcessorCount, CpuThreadPool.Shared.ThreadCount);
        Assert.True(CpuCapabilities.IsSupported(CpuCapabilities.Best));
    }

    [Fact]
    public void DecodeKernelsAllocateNothing()
    {
        using var pool = new CpuThreadPool(2);
        SimdLevel level = CpuCapabilities.Best;
        const int dim = 256, heads = 4, kvHeads = 2, d = 64, maxSeq = 32;
        using Tensor w = Tensor.Allocate(DType.BF16, dim, dim);
        var x = new float[dim];
        var y = new float[dim];
        var norm = new float[dim];
        var cos = new float[maxSeq * d / 2];
        var sin = new float[maxSeq * d / 2];
        var cache = new float[maxSeq * kvHeads * d];
        var scratch = new float[Attention.ScratchLength(pool.ThreadCount, maxSeq)];

        void Step(int pos)
        {
            Embedding.Lookup(level, w, pos, x);
            RmsNorm.Apply(level, x, norm, 1, dim, 1e-5f, y);
            MatMul.Compute(level, pool, y, 1, w, x);
            Rope.Apply(level, x, 1, heads, d, cos, sin, pos);
            Attention.Compute(level, pool, x, cache, cache, 1, heads, kvHeads, d, pos, scratch, y);
            SiluMul.Apply(level, x, y);
            Residual.Add(level, y, x);
            Softmax.Apply(level, x);
        }

        Step(0);
        long least = long.MaxValue;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            long before = GC.GetTotalAllocatedBytes(precise: true);
            for (int pos = 1; pos < 17; pos++)
                Step(pos);
            least = Math.Min(least, GC.GetTotalAllocatedBytes(precise: true) - before);
        }

        Assert.Equal(0, least);
    }
}
