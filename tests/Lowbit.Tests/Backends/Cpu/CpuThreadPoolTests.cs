using Lowbit.Backends.Cpu;

namespace Lowbit.Tests.Backends.Cpu;

public unsafe class CpuThreadPoolTests
{
    private struct Visits
    {
        public int* Counts;
        public int Calls;
    }

    private static void Visit(void* context, int start, int end)
    {
        var visits = (Visits*)context;
        Assert.True(start < end);
        Interlocked.Increment(ref visits->Calls);
        for (int i = start; i < end; i++)
            Interlocked.Increment(ref visits->Counts[i]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void VisitsEveryItemOnceInAtMostThreadCountChunks(int threads)
    {
        using var pool = new CpuThreadPool(threads);
        Assert.Equal(threads, pool.ThreadCount);
        for (int count = 0; count <= 40; count++)
        {
            for (int repeat = 0; repeat < 20; repeat++)
            {
                var counts = new int[count];
                fixed (int* p = counts)
                {
                    var visits = new Visits { Counts = p };
                    pool.Run(&Visit, &visits, count);
                    Assert.InRange(visits.Calls, Math.Min(count, 1), Math.Min(count, threads));
                }

                Assert.All(counts, c => Assert.Equal(1, c));
            }
        }
    }

    [Fact]
    public void ConcurrentCallersBothComplete()
    {
        using var pool = new CpuThreadPool(2);
        void Caller()
        {
            var counts = new int[100];
            for (int repeat = 0; repeat < 500; repeat++)
            {
                fixed (int* p = counts)
                {
                    var visits = new Visits { Counts = p };
                    pool.Run(&Visit, &visits, counts.Length);
                }
            }

            Assert.All(counts, c => Assert.Equal(500, c));
        }

        var other = new Thread(Caller);
        other.Start();
        Caller();
        other.Join();
    }

    [Fact]
    public void WorkersWakeAfterSleeping()
    {
        using var pool = new CpuThreadPool(2);
        for (int repeat = 0; repeat < 3; repeat++)
        {
            Thread.Sleep((CpuThreadPool.SpinMicroseconds / 1000) + 20); // past the spin: the worker sleeps
            var counts = new int[10];
            fixed (int* p = counts)
            {
                var visits = new Visits { Counts = p };
                pool.Run(&Visit, &visits, counts.Length);
                Assert.Equal(2, visits.Calls);
            }
        }
    }

    [Fact]
    public void RejectsBadArgumentsAndUseAfterDispose()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuThreadPool(0));
        var pool = new CpuThreadPool(2);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Run(&Visit, null, -1));
        pool.Dispose();
        Assert.Throws<ObjectDisposedException>(() => pool.Run(&Visit, null, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => CpuThreadPool.SetSharedThreadCount(0));
    }
}
