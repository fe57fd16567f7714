using System.Diagnostics;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// Fixed worker threads for the CPU kernels. <see cref="Run"/> splits <c>count</c> work items into
/// <see cref="ThreadCount"/> contiguous chunks, chunk c = [count·c/T, count·(c+1)/T); the calling thread
/// runs chunk 0 and worker c runs chunk c. The work is an unmanaged function pointer plus a context
/// pointer (usually to a struct on the caller's stack, which stays alive because Run returns only when
/// every chunk is done), so a call allocates nothing.
/// Handoff: the caller bumps a generation counter; workers spin on it for <see cref="SpinMicroseconds"/>
/// after their last job (decode issues a matmul every few microseconds), then sleep on a monitor.
/// A call made while the pool is busy (another thread's call, or a kernel calling a kernel) runs every
/// chunk inline on the calling thread: slower, never wrong. Work must not throw on a worker thread.
/// </summary>
public sealed unsafe class CpuThreadPool : IDisposable
{
    /// <summary>How long an idle worker spins before it sleeps.</summary>
    public const int SpinMicroseconds = 200;

    private static readonly long SpinTicks = Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
    private static CpuThreadPool? s_shared;

    private readonly Thread[] _workers;
    private readonly object _gate = new();
    private delegate*<void*, int, int, void> _work;
    private void* _context;
    private int _count;
    private int _generation;
    private int _pending;
    private int _sleepers;
    private int _busy;
    private int _disposed;
    private volatile bool _stopping;

    /// <param name="threadCount">Threads that work, the caller included (so threadCount − 1 are started).</param>
    public CpuThreadPool(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ThreadCount = threadCount;
        _workers = new Thread[threadCount - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int chunk = i + 1;
            _workers[i] = new Thread(() => WorkerLoop(chunk)) { IsBackground = true, Name = $"lowbit-cpu-{chunk}" };
            _workers[i].Start();
        }
    }

    /// <summary>The pool the public kernel entry points use; <see cref="Environment.ProcessorCount"/> threads
    /// unless <see cref="SetSharedThreadCount"/> said otherwise.</summary>
    public static CpuThreadPool Shared
    {
        get
        {
            CpuThreadPool? pool = Volatile.Read(ref s_shared);
            if (pool != null)
                return pool;
            var created = new CpuThreadPool(Environment.ProcessorCount);
            pool = Interlocked.CompareExchange(ref s_shared, created, null);
            if (pool == null)
                return created;
            created.Dispose();
            return pool;
        }
    }

    /// <summary>Threads that work in a call, the caller included.</summary>
    public int ThreadCount { get; }

    /// <summary>Replaces <see cref="Shared"/> by a pool of <paramref name="threads"/> threads (the CLI's
    /// <c>--threads N</c>). Call it at start-up, not while kernels run.</summary>
    public static void SetSharedThreadCount(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (Volatile.Read(ref s_shared)?.ThreadCount == threads)
            return;
        Interlocked.Exchange(ref s_shared, new CpuThreadPool(threads))?.Dispose();
    }

    /// <summary>Runs <c>work(context, start, end)</c> over contiguous chunks of [0, count) on every thread
    /// and returns when all are done. Empty chunks are not called.</summary>
    public void Run(delegate*<void*, int, int, void> work, void* context, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ObjectDisposedException.ThrowIf(_stopping, this);
        if (count == 0)
            return;
        if (_workers.Length == 0 || count == 1 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            work(context, 0, count);
            return;
        }

        try
        {
            _work = work;
            _context = context;
            _count = count;
            Volatile.Write(ref _pending, _workers.Length);
            Interlocked.Increment(ref _generation); // full fence: the job fields above are visible first
            if (Volatile.Read(ref _sleepers) > 0)
            {
                lock (_gate)
                    Monitor.PulseAll(_gate);
            }

            RunChunk(0);
        }
        finally
        {
            // Wait even if chunk 0 threw: workers still read the caller's context. Chunks are even, so
            // the wait is short; pause rather than yield, unless a worker has lost its core.
            long yieldAfter = Stopwatch.GetTimestamp() + SpinTicks;
            int spins = 0;
            while (Volatile.Read(ref _pending) != 0)
            {
                if ((++spins & 63) != 0 || Stopwatch.GetTimestamp() < yieldAfter)
                    Thread.SpinWait(1);
                else
                    Thread.Yield();
            }

            Volatile.Write(ref _busy, 0);
        }
    }

    private void RunChunk(int chunk)
    {
        int start = (int)((long)_count * chunk / ThreadCount);
        int end = (int)((long)_count * (chunk + 1) / ThreadCount);
        if (end > start)
            _work(_context, start, end);
    }

    private void WorkerLoop(int chunk)
    {
        int seen = 0;
        while (true)
        {
            int generation = WaitForJob(seen);
            seen = generation;
            if (_stopping)
                return;
            RunChunk(chunk);
            Interlocked.Decrement(ref _pending);
        }
    }

    private int WaitForJob(int seen)
    {
        long spinUntil = Stopwatch.GetTimestamp() + SpinTicks;
        int generation;
        int spins = 0;
        while ((generation = Volatile.Read(ref _generation)) == seen)
        {
            Thread.SpinWait(8);
            if ((++spins & 63) != 0 || Stopwatch.GetTimestamp() < spinUntil)
                continue;
            lock (_gate)
            {
                // Dekker with Run: we publish _sleepers then read _generation; Run bumps _generation then
                // reads _sleepers, both with full fences, so one of us sees the other.
                Interlocked.Increment(ref _sleepers);
                while (Volatile.Read(ref _generation) == seen)
                    Monitor.Wait(_gate);
                Interlocked.Decrement(ref _sleepers);
            }
        }

        return generation;
    }

    /// <summary>Stops the workers. Waits for a call in progress first, and keeps the pool marked busy, so a
    /// call racing with Dispose runs inline instead of waiting for workers that have gone.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        var spin = default(SpinWait);
        while (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            spin.SpinOnce();
        _stopping = true;
        Interlocked.Increment(ref _generation);
        lock (_gate)
            Monitor.PulseAll(_gate);
        foreach (Thread worker in _workers)
            worker.Join();
    }
}
